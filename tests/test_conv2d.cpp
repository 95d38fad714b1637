// nn::Conv2d: finite-difference checks of every pass (module_check.hpp) on awkward shapes, forward and
// backward against a direct convolution written here with nested loops, init bounds, constructor
// errors, and a timing of a ResNet-like layer against the same GEMM shapes alone (printed, not asserted).
#include "module_check.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/rng.hpp"
#include "sama/nn/layers/conv2d.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using sama::Rng;
using sama::Vec;
using sama::VecU;
using sama::MatU;
using sama::nn::Conv2d;
using sama::nn::Shape;
using sama::test::check_module;
using sama::test::ModuleCheck;
using sama::test::to_device;
using sama::test::to_host;

namespace {

struct ConvCase {
  std::string name;
  Shape in;
  std::size_t cout, kh, kw, stride, pad;
  bool bias;
  std::size_t batch;
  std::size_t budget = 0;  // scratch budget (0: the default); small values force chunks of samples
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

template <class T>
std::unique_ptr<Conv2d<T>> make(const ConvCase& c) {
  auto m = std::make_unique<Conv2d<T>>(c.in, c.cout, c.kh, c.kw, c.stride, c.pad, c.bias);
  if (c.budget) m->set_scratch_budget(c.budget);
  return m;
}

const std::vector<ConvCase>& cases() {
  static const std::vector<ConvCase> v = {
      {"k3_s1_p1_odd7x5_b3", {2, 7, 5}, 3, 3, 3, 1, 1, true, 3},
      {"k3_s2_p1_cin1_b1", {1, 7, 5}, 2, 3, 3, 2, 1, true, 1},
      {"k3_s2_p1_b3", {2, 7, 5}, 3, 3, 3, 2, 1, true, 3},
      {"k5_s1_p2_nobias_b3", {3, 6, 7}, 2, 5, 5, 1, 2, false, 3},
      {"k5_s2_p2_cout1_b3", {2, 7, 5}, 1, 5, 5, 2, 2, true, 3},
      {"k1_pointwise_b3", {3, 5, 4}, 2, 1, 1, 1, 0, true, 3},
      {"k1_pointwise_nobias_cin1_b1", {1, 7, 5}, 3, 1, 1, 1, 0, false, 1},
      {"k1_s2_b3", {2, 7, 5}, 3, 1, 1, 2, 0, true, 3},
      {"k1_p1_b3", {2, 3, 5}, 2, 1, 1, 1, 1, true, 3},
      {"rect2x3_s2_p2_b3", {2, 7, 5}, 2, 2, 3, 2, 2, true, 3},
      {"rect3x1_s1_p0_b3", {2, 5, 4}, 3, 3, 1, 1, 0, false, 3},
      {"cin1_cout1_k3_nobias_b3", {1, 5, 5}, 1, 3, 3, 1, 0, false, 3},
      {"s3_k3_p1_b3", {2, 7, 8}, 2, 3, 3, 3, 1, true, 3},
      {"kernel_fills_padded_input", {2, 3, 3}, 2, 5, 5, 1, 1, true, 3},
      {"pad_ge_kernel", {1, 4, 3}, 2, 2, 2, 1, 3, true, 2},
      // Chunked: one sample per chunk, and two per chunk with a remainder chunk of one.
      {"chunks_of_1", {2, 7, 5}, 3, 3, 3, 2, 1, true, 3, 1},
      {"chunks_of_2", {2, 7, 5}, 3, 3, 3, 1, 1, true, 3, 2 * (35 * 18 + 35 * 3 + 3 * 18) + 35 * 18},
      {"pointwise_chunks_of_2", {3, 5, 4}, 2, 1, 1, 1, 0, true, 3, 2 * 2 * 3},
  };
  return v;
}

class Conv2dCheck : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dCheck, AllPassesMatchFiniteDifferences) {
  const auto& c = GetParam();
  const auto m = make<double>(c);
  if (c.budget) {
    EXPECT_LT(m->chunk(c.batch), c.batch) << "the case is meant to run in chunks";
  }
  ModuleCheck o;
  o.batch = c.batch;
  check_module(*m, o);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dCheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& i) { return i.param.name; });

// ---------------------------------------------------------------------------------------------------
// A direct convolution on the host.

struct Naive {
  Shape in, out;
  std::size_t kh, kw, s, p;
  bool bias;
  std::size_t widx(std::size_t o, std::size_t ci, std::size_t u, std::size_t v) const {
    return ((o * in.c + ci) * kh + u) * kw + v;
  }
  // Calls f(n, o, oh, ow, ci, ih, iw, u, v) for every in-bounds tap.
  template <class F>
  void taps(std::size_t batch, F&& f) const {
    for (std::size_t n = 0; n < batch; ++n)
      for (std::size_t o = 0; o < out.c; ++o)
        for (std::size_t oh = 0; oh < out.h; ++oh)
          for (std::size_t ow = 0; ow < out.w; ++ow)
            for (std::size_t ci = 0; ci < in.c; ++ci)
              for (std::size_t u = 0; u < kh; ++u)
                for (std::size_t v = 0; v < kw; ++v) {
                  const long ih = long(oh * s + u) - long(p), iw = long(ow * s + v) - long(p);
                  if (ih < 0 || iw < 0 || ih >= long(in.h) || iw >= long(in.w)) continue;
                  f(n, o, oh, ow, ci, std::size_t(ih), std::size_t(iw), u, v);
                }
  }
  std::size_t xi(std::size_t n, std::size_t ci, std::size_t ih, std::size_t iw) const {
    return n * in.size() + (ci * in.h + ih) * in.w + iw;
  }
  std::size_t yi(std::size_t n, std::size_t o, std::size_t oh, std::size_t ow) const {
    return n * out.size() + (o * out.h + oh) * out.w + ow;
  }
  std::vector<double> forward(const std::vector<double>& prm, const std::vector<double>& x, std::size_t batch) const {
    std::vector<double> y(batch * out.size(), 0.0);
    const std::size_t nw = out.c * in.c * kh * kw;
    if (bias)
      for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t o = 0; o < out.c; ++o)
          for (std::size_t q = 0; q < out.h * out.w; ++q) y[n * out.size() + o * out.h * out.w + q] = prm[nw + o];
    taps(batch, [&](auto n, auto o, auto oh, auto ow, auto ci, auto ih, auto iw, auto u, auto v) {
      y[yi(n, o, oh, ow)] += prm[widx(o, ci, u, v)] * x[xi(n, ci, ih, iw)];
    });
    return y;
  }
  // dp, dx for upstream dy.
  void backward(const std::vector<double>& prm, const std::vector<double>& x, const std::vector<double>& dy,
                std::size_t batch, std::vector<double>& dp, std::vector<double>& dx) const {
    const std::size_t nw = out.c * in.c * kh * kw;
    dp.assign(nw + (bias ? out.c : 0), 0.0);
    dx.assign(batch * in.size(), 0.0);
    if (bias)
      for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t o = 0; o < out.c; ++o)
          for (std::size_t q = 0; q < out.h * out.w; ++q) dp[nw + o] += dy[n * out.size() + o * out.h * out.w + q];
    taps(batch, [&](auto n, auto o, auto oh, auto ow, auto ci, auto ih, auto iw, auto u, auto v) {
      dp[widx(o, ci, u, v)] += dy[yi(n, o, oh, ow)] * x[xi(n, ci, ih, iw)];
      dx[xi(n, ci, ih, iw)] += dy[yi(n, o, oh, ow)] * prm[widx(o, ci, u, v)];
    });
  }
};

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
void expect_near_all(const std::vector<T>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  int shown = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::fabs(double(got[i]) - want[i]) > tol * (1.0 + scale) && shown++ < 8)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
}

/// Runs forward and backward of a Conv2d<T> on host vectors.
template <class T>
struct Runner {
  const Conv2d<T>& m;
  std::size_t batch;
  Vec<T> scratch;
  Runner(const Conv2d<T>& mod, std::size_t b)
      : m(mod), batch(b), scratch("test::scratch", std::max<std::size_t>(1, mod.sizes(b).scratch)) {}
  sama::nn::ModuleCtx<T> ctx(const Vec<T>& p) const {
    sama::nn::ModuleCtx<T> c;
    c.p = VecU<const T>(p.data(), p.extent(0));
    c.scratch = VecU<T>(scratch.data(), m.sizes(batch).scratch);
    return c;
  }
  std::vector<T> forward(const std::vector<T>& p, const std::vector<T>& x) {
    auto pv = to_device(p), xv = to_device(x);
    Vec<T> y("test::y", batch * m.out());
    m.forward(ctx(pv), MatU<const T>(xv.data(), batch, m.in()), MatU<T>(y.data(), batch, m.out()));
    return to_host(y);
  }
  void backward(const std::vector<T>& p, const std::vector<T>& x, const std::vector<T>& dy, std::vector<T>& dp,
                std::vector<T>& dx) {
    auto pv = to_device(p), xv = to_device(x), dyv = to_device(dy);
    Vec<T> y("test::y", batch * m.out()), dpv("test::dp", m.num_params()), dxv("test::dx", batch * m.in());
    const MatU<const T> xm(xv.data(), batch, m.in());
    m.forward(ctx(pv), xm, MatU<T>(y.data(), batch, m.out()));
    m.backward(ctx(pv), xm, MatU<const T>(y.data(), batch, m.out()), MatU<const T>(dyv.data(), batch, m.out()),
               MatU<T>(dxv.data(), batch, m.in()), VecU<T>(dpv.data(), m.num_params()));
    dp = to_host(dpv);
    dx = to_host(dxv);
  }
};

template <class T>
void compare_with_naive(const ConvCase& c, double tol) {
  SCOPED_TRACE(c.name);
  const auto m = make<T>(c);
  const Naive ref{c.in, m->out_shape(), c.kh, c.kw, c.stride, c.pad, c.bias};
  Rng rng(5, 3);
  const auto p = sama::test::check_normal(rng, m->num_params());
  const auto x = sama::test::check_normal(rng, c.batch * m->in());
  const auto dy = sama::test::check_normal(rng, c.batch * m->out());
  Runner<T> run(*m, c.batch);
  expect_near_all(run.forward(cast<T>(p), cast<T>(x)), ref.forward(p, x, c.batch), tol, "forward");
  std::vector<T> dp, dx;
  run.backward(cast<T>(p), cast<T>(x), cast<T>(dy), dp, dx);
  std::vector<double> rdp, rdx;
  ref.backward(p, x, dy, c.batch, rdp, rdx);
  expect_near_all(dp, rdp, tol, "backward dp");
  expect_near_all(dx, rdx, tol, "backward dx");
}

const std::vector<ConvCase>& naive_cases() {
  static const std::vector<ConvCase> v = {
      {"k3_s2_p1", {3, 9, 8}, 4, 3, 3, 2, 1, true, 2},
      {"rect5x3_s1_p2_nobias", {2, 6, 7}, 3, 5, 3, 1, 2, false, 3},
      {"pointwise", {4, 5, 6}, 3, 1, 1, 1, 0, true, 2},
      {"k3_s1_p1_chunked", {3, 8, 7}, 5, 3, 3, 1, 1, true, 5, 1},
  };
  return v;
}

TEST(Conv2d, ForwardAndBackwardMatchDirectConvolutionDouble) {
  for (const auto& c : naive_cases()) compare_with_naive<double>(c, 1e-12);
}

TEST(Conv2d, ForwardAndBackwardMatchDirectConvolutionFloat) {
  for (const auto& c : naive_cases()) compare_with_naive<float>(c, 2e-5);
}

TEST(Conv2d, InitWithinPyTorchBounds) {
  const Conv2d<double> m({3, 8, 8}, 4, 3, 3, 1, 1, true);
  ASSERT_EQ(m.num_params(), 4u * 3 * 3 * 3 + 4);
  Vec<double> p("test::p", m.num_params());
  Rng rng(11, 0);
  m.init(VecU<double>(p.data(), m.num_params()), VecU<double>(), rng);
  const auto h = to_host(p);
  const double bound = 1.0 / std::sqrt(27.0);
  double lo = 0, hi = 0;
  for (double v : h) {
    EXPECT_LE(std::fabs(v), bound);
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  EXPECT_LT(lo, -0.5 * bound);
  EXPECT_GT(hi, 0.5 * bound);
  // The same draws in θ order as a float layer with the same seed.
  const Conv2d<float> mf({3, 8, 8}, 4, 3, 3, 1, 1, true);
  Vec<float> pf("test::pf", mf.num_params());
  Rng rng2(11, 0);
  mf.init(VecU<float>(pf.data(), mf.num_params()), VecU<float>(), rng2);
  const auto hf = to_host(pf);
  for (std::size_t i = 0; i < h.size(); ++i) EXPECT_EQ(hf[i], static_cast<float>(h[i]));
}

TEST(Conv2d, ShapesAndDescriptions) {
  const Conv2d<float> a({3, 7, 5}, 16, 3, 3, 2, 1, true);
  EXPECT_EQ(a.out_shape(), (Shape{16, 4, 3}));
  EXPECT_EQ(a.describe(), "conv3x3(16, stride 2, pad 1)");
  EXPECT_EQ(a.kind(), "conv2d");
  EXPECT_FALSE(a.pointwise());
  const Conv2d<float> b({64, 8, 8}, 32, 1);
  EXPECT_EQ(b.out_shape(), (Shape{32, 8, 8}));
  EXPECT_EQ(b.describe(), "conv1x1(32)");
  EXPECT_TRUE(b.pointwise());
  EXPECT_EQ(b.num_params(), 32u * 64 + 32);
  const Conv2d<float> c({2, 7, 5}, 3, 2, 3, 1, 0, false);
  EXPECT_EQ(c.out_shape(), (Shape{3, 6, 3}));
  EXPECT_EQ(c.describe(), "conv2x3(3, no bias)");
  EXPECT_EQ(c.num_params(), 3u * 2 * 2 * 3);
  const Conv2d<float> e({3, 8, 8}, 4, 3, 2, 1);  // square: kernel, stride, padding
  EXPECT_EQ(e.out_shape(), (Shape{4, 4, 4}));
  EXPECT_EQ(e.describe(), "conv3x3(4, stride 2, pad 1)");
  // Six sizes (a rectangular kernel without its bias flag) name no constructor.
  using S = std::size_t;
  static_assert(!std::is_constructible_v<Conv2d<float>, Shape, S, S, S, S, S>);
  static_assert(std::is_constructible_v<Conv2d<float>, Shape, S, S, S, S, S, bool>);
  // Scratch: bounded by the budget, non-decreasing in the batch, one sample at least.
  Conv2d<float> d({16, 28, 28}, 16, 3, 3, 1, 1, true);
  const std::size_t per = 784 * 144 + 784 * 16 + 16 * 144;
  const std::size_t one = 784 * 144;  // one sample's col, for the per-sample shares
  EXPECT_EQ(d.sizes(1).scratch, per + one);
  EXPECT_LE(d.sizes(4096).scratch, std::max(Conv2d<float>::kDefaultScratchBudget, per + one));
  EXPECT_EQ(d.sizes(4096).scratch, d.chunk(4096) * per + one);
  d.set_scratch_budget(std::size_t(1) << 23);
  EXPECT_EQ(d.chunk(4096), ((std::size_t(1) << 23) - one) / per);
  EXPECT_LE(d.sizes(4096).scratch, std::size_t(1) << 23);
  EXPECT_EQ(d.sizes(3).scratch, 3 * per + one);
  d.set_scratch_budget(1);
  EXPECT_EQ(d.chunk(128), 1u);
  EXPECT_EQ(d.sizes(128).scratch, per + one);
  EXPECT_EQ(b.sizes(3).scratch, 3u * 32 * 64);  // pointwise: the per-sample shares only
  EXPECT_EQ(d.sizes(0).scratch, 0u);
}

TEST(Conv2d, ConstructorErrors) {
  using sama::test::expect_error;
  expect_error([] { Conv2d<float>({0, 5, 5}, 2, 3); }, {"conv2d", "zero extent", "0"});
  expect_error([] { Conv2d<float>({1, 5, 0}, 2, 3); }, {"conv2d", "input shape"});
  expect_error([] { Conv2d<float>({1, 5, 5}, 0, 3); }, {"conv2d", "output channels"});
  expect_error([] { Conv2d<float>({1, 5, 5}, 2, 0, 3, 1, 0, true); }, {"conv2d", "kernel 0x3"});
  expect_error([] { Conv2d<float>({1, 5, 5}, 2, 3, 3, 0, 0, true); }, {"conv2d", "stride"});
  expect_error([] { Conv2d<float>({1, 5, 5}, 2, 7, 7, 1, 0, true); },
               {"conv2d", "kernel 7x7 is larger than the padded input 5x5"});
  expect_error([] { Conv2d<float>({1, 5, 4}, 2, 3, 7, 1, 1, true); }, {"kernel 3x7", "padded input 7x6"});
  // The kernel exactly as large as the padded input is fine (one output pixel).
  const Conv2d<float> ok({1, 5, 4}, 2, 7, 6, 1, 1, true);
  EXPECT_EQ(ok.out_shape(), (Shape{2, 1, 1}));
}

TEST(Conv2d, TooSmallScratchIsAnError) {
  const Conv2d<double> m({2, 5, 5}, 2, 3, 3, 1, 1, true);
  Vec<double> p("test::p", m.num_params()), x("test::x", 2 * m.in()), y("test::y", 2 * m.out());
  Vec<double> s("test::s", m.sizes(2).scratch - 1);
  sama::nn::ModuleCtx<double> c;
  c.p = VecU<const double>(p.data(), m.num_params());
  c.scratch = VecU<double>(s.data(), s.extent(0));
  sama::test::expect_error(
      [&] { m.forward(c, MatU<const double>(x.data(), 2, m.in()), MatU<double>(y.data(), 2, m.out())); },
      {"conv3x3(2, pad 1)", "scratch", "needed"});
}

// ---------------------------------------------------------------------------------------------------
// Timing (printed only): a ResNet-like layer against the same GEMM shapes alone.

/// Seconds per call of f: wall clock, and this process's CPU time (robust to other jobs on a shared
/// machine when everything runs on one thread).
struct Times {
  double wall, cpu;
};
Times times_of(const std::function<void()>& f, int reps) {
  f();  // warm-up
  Kokkos::fence();
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int i = 0; i < reps; ++i) f();
  Kokkos::fence();
  const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC / reps;
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps, cpu};
}
double seconds_of(const std::function<void()>& f, int reps) { return times_of(f, reps).wall; }

// Disabled by default (it takes seconds); run with
//   test_conv2d --gtest_also_run_disabled_tests --gtest_filter='Conv2dPerf.*'
TEST(Conv2dPerf, DISABLED_ResNetLikeLayerVersusSgemm) {
  const std::size_t B = 128;
  Conv2d<float> m({16, 28, 28}, 16, 3, 3, 1, 1, true);
  if (const char* b = std::getenv("SAMA_CONV_BUDGET")) m.set_scratch_budget(std::stoul(b));  // elements
  Rng rng(3, 1);
  const auto p = cast<float>(sama::test::check_normal(rng, m.num_params(), 0.1));
  const auto xh = cast<float>(sama::test::check_normal(rng, B * m.in()));
  auto pv = to_device(p), xv = to_device(xh), dyv = to_device(xh);  // dy: same size (16×28×28 in and out)
  Vec<float> y("perf::y", B * m.out()), dx("perf::dx", B * m.in()), dp("perf::dp", m.num_params());
  Vec<float> sq("perf::sq", B), scratch("perf::scratch", m.sizes(B).scratch);
  sama::nn::ModuleCtx<float> c;
  c.p = VecU<const float>(pv.data(), m.num_params());
  c.scratch = VecU<float>(scratch.data(), scratch.extent(0));
  const MatU<const float> xm(xv.data(), B, m.in()), dym(dyv.data(), B, m.out()), ym(y.data(), B, m.out());
  const MatU<float> yw(y.data(), B, m.out()), dxm(dx.data(), B, m.in());
  const VecU<float> dpm(dp.data(), m.num_params());
  const double conv_flops = 2.0 * 16 * 144 * 784 * B;  // one convolution-sized GEMM

  struct Pass {
    const char* name;
    std::function<void()> f;
    double flops;
  };
  auto c_sq = c;
  c_sq.sample_sq = VecU<float>(sq.data(), B);
  const std::vector<Pass> passes = {
      {"forward", [&] { m.forward(c, xm, yw); }, conv_flops},
      {"backward (dW, db, dx)", [&] { m.backward(c, xm, ym, dym, dxm, dpm); }, 2 * conv_flops},
      {"backward (dW, db)", [&] { m.backward(c, xm, ym, dym, MatU<float>(), dpm); }, conv_flops},
      {"backward + sample_sq", [&] { m.backward(c_sq, xm, ym, dym, dxm, dpm); }, 3 * conv_flops},
  };
  // One BLAS thread, times in CPU seconds: a per-core comparison that other jobs on the machine disturb little.
  const int blas_before = sama::blas_threads();
  sama::blas_set_threads(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // OpenBLAS's idle workers stop spinning
  std::printf("conv3x3 16->16, 28x28, pad 1, batch %zu, float; chunk %zu samples, scratch %.1f MiB; one BLAS thread, "
              "time per call (wall clock; CPU time of the process in brackets)\n",
              B, m.chunk(B), m.sizes(B).scratch * 4.0 / (1 << 20));
  // The data-movement kernels alone, over the whole batch in the layer's chunks.
  {
    const std::size_t bc = m.chunk(B), P = 784, K = 144;
    float* col = scratch.data();
    float* z = col + bc * P * K;
    auto chunks = [&](const std::function<void(std::size_t, std::size_t)>& f) {
      return seconds_of(
          [&] {
            for (std::size_t n0 = 0; n0 < B; n0 += bc) f(n0, std::min(bc, B - n0));
          },
          3);
    };
    const double t_im2col = chunks([&](std::size_t n0, std::size_t k) { m.im2col(xm, n0, k, col); });
    const double t_col2im = chunks([&](std::size_t n0, std::size_t k) { m.col2im(col, n0, k, dxm); });
    const double t_fold = chunks([&](std::size_t n0, std::size_t k) { m.fold_out(dym, n0, k, z); });
    const float* b = pv.data() + 2304;
    const double t_unfold = chunks([&](std::size_t n0, std::size_t k) { m.unfold_out(z, b, n0, k, yw); });
    const double t_bias = seconds_of([&] { m.bias_sum(dym, dp.data() + 2304); }, 3);
    std::printf("  copy kernels (whole batch): im2col %.2f ms, col2im %.2f ms, fold_out %.2f ms, unfold_out %.2f ms, "
                "bias_sum %.2f ms\n",
                1e3 * t_im2col, 1e3 * t_col2im, 1e3 * t_fold, 1e3 * t_unfold, 1e3 * t_bias);
  }
  for (const auto& ps : passes) {
    sama::GemmRecorder rec;
    rec.keep_calls(true);
    ps.f();
    const auto calls = rec.calls();
    const double gemm_flops = rec.flops();
    const int reps = 5;
    rec.reset();
    const Times tt = times_of(ps.f, reps);
    const double t = tt.cpu;
    const double gemm_in_layer = rec.seconds() / (reps + 1);  // wall clock inside the BLAS calls
    // The same GEMM shapes alone, on operands reused from call to call (cache-hot, as in the layer).
    std::vector<std::function<void()>> replay;
    std::size_t na = 0, nb = 0, nc = 0;
    for (const auto& cl : calls) {
      na = std::max(na, cl.m * cl.k), nb = std::max(nb, cl.k * cl.n), nc = std::max(nc, cl.m * cl.n);
    }
    Vec<float> ga("perf::a", na), gb("perf::b", nb), gc("perf::c", nc);
    for (const auto& cl : calls) {
      const std::size_t ar = cl.op_a == sama::Op::N ? cl.m : cl.k, ac = cl.op_a == sama::Op::N ? cl.k : cl.m;
      const std::size_t br = cl.op_b == sama::Op::N ? cl.k : cl.n, bcol = cl.op_b == sama::Op::N ? cl.n : cl.k;
      const float* a = ga.data();
      const float* b = gb.data();
      float* cc = gc.data();
      replay.push_back([=] {
        sama::gemm<float>(cl.op_a, cl.op_b, 1.0f, MatU<const float>(a, ar, ac), MatU<const float>(b, br, bcol), 0.0f,
                          MatU<float>(cc, cl.m, cl.n));
      });
    }
    const Times tg = times_of(
        [&] {
          for (auto& r : replay) r();
        },
        reps);
    std::printf("  %-22s layer %7.2f ms (%7.2f) %5.1f GF/s | %3zu GEMMs inside it: %7.2f ms | the same GEMMs alone: "
                "%7.2f ms (%7.2f) %5.1f GF/s\n",
                ps.name, 1e3 * tt.wall, 1e3 * t, ps.flops / tt.wall * 1e-9, calls.size(), 1e3 * gemm_in_layer,
                1e3 * tg.wall, 1e3 * tg.cpu, gemm_flops / tg.wall * 1e-9);
  }
  {
    // For scale: the forward as one GEMM over the whole batch, W [16, 144] · col [144, 128·784].
    Vec<float> big("perf::col", 144 * B * 784), out("perf::z", 16 * B * 784);
    const double t = seconds_of(
        [&] {
          sama::gemm<float>(sama::Op::N, sama::Op::N, 1.0f, MatU<const float>(pv.data(), 16, 144),
                            MatU<const float>(big.data(), 144, B * 784), 0.0f, MatU<float>(out.data(), 16, B * 784));
        },
        3);
    std::printf("  one sgemm 16x%zux144 over the batch (cold, 58 MiB operand): %.2f ms, %.1f GF/s\n", B * 784, 1e3 * t,
                conv_flops / t * 1e-9);
  }
  if (blas_before > 0) sama::blas_set_threads(blas_before);
}

}  // namespace
