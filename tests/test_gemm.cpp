// sama::gemm against a naive triple loop (all transposition combinations, odd shapes, alpha/beta,
// k = 0, shape errors, views over the first rows of a larger buffer) and the GemmRecorder.
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"
#include "sama/core/vector_ops.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using sama::GemmRecorder;
using sama::Mat;
using sama::MatU;
using sama::Op;
using sama::Rng;

template <class T>
using HostMatU = Kokkos::View<T**, Kokkos::LayoutRight, sama::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

/// A host row-major matrix: the test's own storage, independent of Kokkos.
template <class T>
struct HostMat {
  std::size_t rows = 0, cols = 0;
  std::vector<T> v;
  HostMat(std::size_t r, std::size_t c) : rows(r), cols(c), v(r * c) {}
  T& operator()(std::size_t i, std::size_t j) { return v[i * cols + j]; }
  T operator()(std::size_t i, std::size_t j) const { return v[i * cols + j]; }
};

template <class T>
HostMat<T> random_host(std::size_t r, std::size_t c, Rng& rng) {
  HostMat<T> m(r, c);
  for (auto& x : m.v) x = static_cast<T>(rng.uniform(-1.0, 1.0));
  return m;
}

/// A device matrix with `extra` more rows than `h` (filled with `pad`), holding `h` in its first rows.
template <class T>
Mat<T> to_device(const HostMat<T>& h, std::size_t extra = 0, T pad = T(0)) {
  Mat<T> m("gemm_test", h.rows + extra, h.cols);
  auto mh = Kokkos::create_mirror_view(m);
  for (std::size_t i = 0; i < h.rows + extra; ++i)
    for (std::size_t j = 0; j < h.cols; ++j) mh(i, j) = i < h.rows ? h(i, j) : pad;
  Kokkos::deep_copy(m, mh);
  return m;
}

template <class T>
HostMat<T> to_host(const Mat<T>& m) {
  HostMat<T> h(m.extent(0), m.extent(1));
  if (h.v.empty()) return h;
  HostMatU<T> hv(h.v.data(), h.rows, h.cols);
  Kokkos::deep_copy(hv, m);
  return h;
}

/// op(A)(i, l) for A stored as given.
template <class T>
T op_at(const HostMat<T>& a, Op op, std::size_t i, std::size_t l) {
  return op == Op::N ? a(i, l) : a(l, i);
}

/// C = alpha op(A) op(B) + beta C0, accumulated in long double; `mag` receives, per entry, the
/// magnitude sum |alpha| Σ|a||b| + |beta||c0| that bounds the rounding error.
template <class T>
HostMat<T> reference(Op op_a, Op op_b, T alpha, const HostMat<T>& a, const HostMat<T>& b, T beta,
                     const HostMat<T>& c0, std::size_t m, std::size_t n, std::size_t k, HostMat<T>& mag) {
  HostMat<T> c(m, n);
  mag = HostMat<T>(m, n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      long double s = 0, ms = 0;
      for (std::size_t l = 0; l < k; ++l) {
        const long double p = static_cast<long double>(op_at(a, op_a, i, l)) * op_at(b, op_b, l, j);
        s += p;
        ms += std::fabs(p);
      }
      c(i, j) = static_cast<T>(alpha * s + beta * static_cast<long double>(c0(i, j)));
      mag(i, j) = static_cast<T>(std::fabs(alpha) * ms + std::fabs(beta) * std::fabs(c0(i, j)));
    }
  return c;
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

const char* name(Op op) { return op == Op::N ? "N" : "T"; }

/// Run one GEMM case and compare every entry of C with the reference; returns the number of failures.
/// With `extra` > 0 every operand is a rows_of view over a larger buffer, whose spare rows must stay
/// untouched.
template <class T>
int check_case(Op op_a, Op op_b, std::size_t m, std::size_t n, std::size_t k, T alpha, T beta, Rng& rng,
               std::size_t extra = 0) {
  const auto a = op_a == Op::N ? random_host<T>(m, k, rng) : random_host<T>(k, m, rng);
  const auto b = op_b == Op::N ? random_host<T>(k, n, rng) : random_host<T>(n, k, rng);
  const auto c0 = random_host<T>(m, n, rng);
  const T pad = T(12345);
  auto da = to_device(a, extra, pad);
  auto db = to_device(b, extra, pad);
  auto dc = to_device(c0, extra, pad);
  sama::gemm<T>(op_a, op_b, alpha, sama::rows_of(da, a.rows), sama::rows_of(db, b.rows), beta,
                sama::rows_of(dc, c0.rows));
  HostMat<T> mag(0, 0);
  const auto ref = reference(op_a, op_b, alpha, a, b, beta, c0, m, n, k, mag);
  const auto got = to_host(dc);
  int failures = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const double err = std::fabs(static_cast<double>(got(i, j)) - static_cast<double>(ref(i, j)));
      const double tol = tolerance<T>() * (static_cast<double>(mag(i, j)) + std::numeric_limits<T>::min());
      if (!(err <= tol)) {
        if (++failures <= 5)
          ADD_FAILURE() << "op_a=" << name(op_a) << " op_b=" << name(op_b) << " m=" << m << " n=" << n
                        << " k=" << k << " C(" << i << "," << j << ") = " << got(i, j) << ", expected "
                        << ref(i, j) << " (error " << err << " > " << tol << ")";
      }
    }
  for (std::size_t i = m; i < m + extra; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (got(i, j) != pad && ++failures <= 5)
        ADD_FAILURE() << "spare row " << i << " of C was written: " << got(i, j);
  return failures;
}

template <class T>
class GemmTyped : public ::testing::Test {};
using GemmTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTyped, GemmTypes);

constexpr Op kOps[] = {Op::N, Op::T};
constexpr std::size_t kSizes[] = {1, 3, 7, 17, 64, 65};

TYPED_TEST(GemmTyped, AllOpsAndOddShapesMatchNaiveLoop) {
  using T = TypeParam;
  Rng rng(2024, 1);
  int failures = 0;
  for (Op op_a : kOps)
    for (Op op_b : kOps)
      for (std::size_t m : kSizes)
        for (std::size_t n : kSizes)
          for (std::size_t k : kSizes) failures += check_case<T>(op_a, op_b, m, n, k, T(0.75), T(-1.25), rng);
  EXPECT_EQ(failures, 0);
}

TYPED_TEST(GemmTyped, AlphaOneBetaZeroOverwritesC) {
  using T = TypeParam;
  Rng rng(7, 2);
  for (Op op_a : kOps)
    for (Op op_b : kOps) {
      EXPECT_EQ(check_case<T>(op_a, op_b, 9, 5, 13, T(1), T(0), rng), 0);
      EXPECT_EQ(check_case<T>(op_a, op_b, 9, 5, 13, T(-2.5), T(0), rng), 0);
      EXPECT_EQ(check_case<T>(op_a, op_b, 9, 5, 13, T(1), T(1), rng), 0);
      EXPECT_EQ(check_case<T>(op_a, op_b, 9, 5, 13, T(0), T(0.5), rng), 0);
    }
}

TYPED_TEST(GemmTyped, RowsOfLargerBuffersWork) {
  using T = TypeParam;
  Rng rng(11, 3);
  for (Op op_a : kOps)
    for (Op op_b : kOps) {
      EXPECT_EQ(check_case<T>(op_a, op_b, 5, 7, 3, T(1.5), T(0.5), rng, 4), 0);
      EXPECT_EQ(check_case<T>(op_a, op_b, 17, 1, 65, T(-0.5), T(2), rng, 9), 0);
      EXPECT_EQ(check_case<T>(op_a, op_b, 1, 33, 1, T(2), T(0), rng, 1), 0);
    }
}

TYPED_TEST(GemmTyped, ZeroInnerDimensionScalesC) {
  using T = TypeParam;
  Rng rng(5, 4);
  for (Op op_a : kOps)
    for (Op op_b : kOps) {
      const std::size_t m = 4, n = 6;
      Mat<T> a("a", op_a == Op::N ? m : 0, op_a == Op::N ? 0 : m);
      Mat<T> b("b", op_b == Op::N ? 0 : n, op_b == Op::N ? n : 0);
      const auto c0 = random_host<T>(m, n, rng);
      auto dc = to_device(c0);
      sama::gemm<T>(op_a, op_b, T(3), a, b, T(-0.5), dc);
      auto got = to_host(dc);
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) EXPECT_EQ(got(i, j), T(-0.5) * c0(i, j)) << i << "," << j;

      // beta = 0 means C is not read: even NaN in C becomes zero.
      HostMat<T> nan_c(m, n);
      for (auto& x : nan_c.v) x = std::numeric_limits<T>::quiet_NaN();
      auto dn = to_device(nan_c);
      sama::gemm<T>(op_a, op_b, T(3), a, b, T(0), dn);
      got = to_host(dn);
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) EXPECT_EQ(got(i, j), T(0)) << i << "," << j;
    }
}

TYPED_TEST(GemmTyped, EmptyOutputIsANoOp) {
  using T = TypeParam;
  Mat<T> a("a", 0, 3), b("b", 3, 4), c("c", 0, 4);
  EXPECT_NO_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b, T(0), c));
  Mat<T> a2("a", 2, 3), b2("b", 3, 0), c2("c", 2, 0);
  EXPECT_NO_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a2, b2, T(0), c2));
}

TYPED_TEST(GemmTyped, ShapeMismatchThrows) {
  using T = TypeParam;
  Mat<T> a("a", 4, 3), b("b", 3, 5), c("c", 4, 5);
  EXPECT_NO_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b, T(0), c));
  // Inner dimensions disagree.
  EXPECT_THROW(sama::gemm<T>(Op::T, Op::N, T(1), a, b, T(0), c), sama::Error);
  EXPECT_THROW(sama::gemm<T>(Op::N, Op::T, T(1), a, b, T(0), c), sama::Error);
  Mat<T> b_wrong_k("b", 4, 5);
  EXPECT_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b_wrong_k, T(0), c), sama::Error);
  // C has the wrong number of rows or columns.
  Mat<T> c_rows("c", 5, 5), c_cols("c", 4, 6), c_swapped("c", 5, 4);
  EXPECT_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b, T(0), c_rows), sama::Error);
  EXPECT_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b, T(0), c_cols), sama::Error);
  EXPECT_THROW(sama::gemm<T>(Op::N, Op::N, T(1), a, b, T(0), c_swapped), sama::Error);
  // Transposed operands with consistent shapes are fine: Aᵀ is 3x4, Bᵀ is 5x3.
  Mat<T> at("at", 3, 4), bt("bt", 5, 3);
  EXPECT_NO_THROW(sama::gemm<T>(Op::T, Op::T, T(1), at, bt, T(0), c));
  EXPECT_THROW(sama::gemm<T>(Op::T, Op::T, T(1), a, bt, T(0), c), sama::Error);
}

TEST(GemmRecorder, CountsFlopsAndRecordsShapes) {
  Mat<double> a("a", 7, 5), b("b", 5, 3), c("c", 7, 3);
  Mat<float> af("af", 4, 6), bf("bf", 2, 4), cf("cf", 6, 2);
  GemmRecorder rec;
  EXPECT_EQ(rec.flops(), 0.0);
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  EXPECT_EQ(rec.flops(), 2.0 * 7 * 3 * 5);
  EXPECT_TRUE(rec.calls().empty());  // shapes are only kept on request

  rec.reset();
  rec.keep_calls(true);
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  sama::gemm<float>(Op::T, Op::T, 1.0f, af, bf, 0.0f, cf);  // op(A) 6x4, op(B) 4x2 -> m=6, n=2, k=4
  EXPECT_EQ(rec.flops(), 2.0 * 7 * 3 * 5 + 2.0 * 6 * 2 * 4);
  ASSERT_EQ(rec.calls().size(), 2u);
  const auto& c0 = rec.calls()[0];
  EXPECT_EQ(c0.op_a, Op::N);
  EXPECT_EQ(c0.op_b, Op::N);
  EXPECT_EQ(c0.m, 7u);
  EXPECT_EQ(c0.n, 3u);
  EXPECT_EQ(c0.k, 5u);
  EXPECT_TRUE(c0.is_double);
  const auto& c1 = rec.calls()[1];
  EXPECT_EQ(c1.op_a, Op::T);
  EXPECT_EQ(c1.op_b, Op::T);
  EXPECT_EQ(c1.m, 6u);
  EXPECT_EQ(c1.n, 2u);
  EXPECT_EQ(c1.k, 4u);
  EXPECT_FALSE(c1.is_double);

  rec.reset();
  EXPECT_EQ(rec.flops(), 0.0);
  EXPECT_TRUE(rec.calls().empty());
}

TEST(GemmRecorder, NestingRestoresOuterRecorder) {
  Mat<double> a("a", 3, 2), b("b", 2, 4), c("c", 3, 4);
  const double one = 2.0 * 3 * 4 * 2;
  GemmRecorder outer;
  outer.keep_calls(true);
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  {
    GemmRecorder inner;
    inner.keep_calls(true);
    sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
    sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
    EXPECT_EQ(inner.flops(), 2 * one);  // the innermost recorder wins
    EXPECT_EQ(inner.calls().size(), 2u);
    EXPECT_EQ(outer.flops(), one);
    EXPECT_EQ(outer.calls().size(), 1u);
  }
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  EXPECT_EQ(outer.flops(), 2 * one);
  EXPECT_EQ(outer.calls().size(), 2u);
}

TEST(GemmRecorder, NothingRecordedWithoutRecorder) {
  Mat<double> a("a", 3, 2), b("b", 2, 4), c("c", 3, 4);
  {
    GemmRecorder first;
    sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
    EXPECT_EQ(first.flops(), 48.0);
  }
  // With no live recorder the call must not touch a destroyed one (ASan/valgrind would catch it) and a
  // new recorder starts from zero.
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  GemmRecorder second;
  EXPECT_EQ(second.flops(), 0.0);
  sama::gemm<double>(Op::N, Op::N, 1.0, a, b, 0.0, c);
  EXPECT_EQ(second.flops(), 48.0);
}

}  // namespace

// ops::dot over lengths with every remainder mod 8 (the tail runs inside the kernel, no host read
// of the device view): the exact sum of small integers, and a host reference for random data.
TEST(VectorOps, DotEveryTailLength) {
  for (std::size_t n : {0, 1, 5, 7, 8, 9, 15, 16, 17, 23, 64, 71}) {
    sama::Vec<float> x("x", n), y("y", n);
    auto hx = Kokkos::create_mirror_view(x);
    auto hy = Kokkos::create_mirror_view(y);
    double expect = 0;
    for (std::size_t i = 0; i < n; ++i) {
      hx(i) = static_cast<float>(i + 1);
      hy(i) = static_cast<float>(i % 3 == 0 ? -2 : 3);
      expect += static_cast<double>(hx(i)) * hy(i);
    }
    Kokkos::deep_copy(x, hx);
    Kokkos::deep_copy(y, hy);
    EXPECT_EQ(sama::ops::dot<float>(x, y), expect) << "n = " << n;
    EXPECT_DOUBLE_EQ(sama::ops::norm2<float>(x), std::sqrt(sama::ops::dot<float>(x, x))) << "n = " << n;
  }
}
