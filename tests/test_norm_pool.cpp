// Batch norm, pooling and flatten modules: every module through the finite-difference harness
// (module_check.hpp) on awkward shapes and in every mode; batch norm's forward and running-statistics
// update against a host computation; sync batch norm over two emulated ranks against one full batch;
// max and average pooling against naive host loops (with ties).
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"
#include "sama/nn/layers/batch_norm.hpp"
#include "sama/nn/layers/flatten.hpp"
#include "sama/nn/layers/pool.hpp"
#include "module_check.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace sama;
using nn::Mode;
using nn::Shape;
using sama::test::check_module;
using sama::test::ModuleCheck;
using sama::test::to_device;
using sama::test::to_host;

std::vector<double> normal(std::uint64_t seed, std::size_t n, double scale = 1.0, double shift = 0.0) {
  Rng rng(seed, 3);
  std::vector<double> v(n);
  for (auto& x : v) x = shift + scale * rng.normal();
  return v;
}

/// Running statistics that are not init's: mean [C] then variance [C].
std::vector<double> running_stats(std::size_t C) {
  std::vector<double> b(2 * C);
  for (std::size_t c = 0; c < C; ++c) b[c] = 0.3 - 0.2 * double(c), b[C + c] = 0.5 + 0.7 * double(c);
  return b;
}

/// Calls one module directly, every pass over one batch, on regions of exactly the sizes it asks for.
template <class T>
struct Runner {
  const nn::Module<T>& m;
  std::size_t batch;
  Mode mode;
  const nn::BatchSum<T>* batch_sum = nullptr;
  Vec<T> p, buffers, saved, tangent, upstream, scratch, x, y, dy, pd, xd, yd;

  Runner(const nn::Module<T>& mod, std::size_t b, Mode md, const std::vector<T>& params, const std::vector<T>& bufs)
      : m(mod), batch(b), mode(md) {
    const auto s = m.sizes(b);
    p = to_device(params, "p");
    buffers = to_device(bufs, "buffers");
    saved = Vec<T>("saved", s.saved);
    tangent = Vec<T>("tangent", s.tangent);
    upstream = Vec<T>("upstream", s.upstream);
    scratch = Vec<T>("scratch", s.scratch);
  }
  static VecU<T> u(const Vec<T>& v) { return v.extent(0) == 0 ? VecU<T>() : VecU<T>(v.data(), v.extent(0)); }
  MatU<T> mat(const Vec<T>& v, std::size_t cols) const {
    return v.extent(0) == 0 ? MatU<T>() : MatU<T>(v.data(), batch, cols);
  }
  MatU<const T> cmat(const Vec<T>& v, std::size_t cols) const { return nn::as_const(mat(v, cols)); }
  nn::ModuleCtx<T> ctx() const {
    nn::ModuleCtx<T> c;
    c.mode = mode;
    c.p = nn::as_const(u(p));
    c.buffers = u(buffers);
    c.saved = u(saved);
    c.tangent = u(tangent);
    c.upstream = u(upstream);
    c.scratch = u(scratch);
    c.batch_sum = batch_sum;
    return c;
  }
  std::vector<T> forward(const std::vector<T>& xh) {
    x = to_device(xh, "x");
    y = Vec<T>("y", batch * m.out());
    m.forward(ctx(), cmat(x, m.in()), mat(y, m.out()));
    return to_host(y);
  }
  struct Grad {
    std::vector<T> dp, dx;
  };
  Grad backward(const std::vector<T>& dyh) {
    dy = to_device(dyh, "dy");
    Vec<T> dx("dx", batch * m.in()), dp("dp", m.num_params());
    m.backward(ctx(), cmat(x, m.in()), cmat(y, m.out()), cmat(dy, m.out()), mat(dx, m.in()), u(dp));
    return {to_host(dp), to_host(dx)};
  }
  std::vector<T> forward_tangent(const std::vector<T>& pdh, const std::vector<T>& xdh) {
    pd = to_device(pdh, "p_dot");
    xd = to_device(xdh, "x_dot");
    yd = Vec<T>("y_dot", batch * m.out());
    m.forward_tangent(ctx(), nn::as_const(u(pd)), cmat(x, m.in()), cmat(xd, m.in()), cmat(y, m.out()),
                      mat(yd, m.out()));
    return to_host(yd);
  }
  Grad backward_tangent(const std::vector<T>& ddyh) {
    Vec<T> ddy = to_device(ddyh, "dy_dot");
    Vec<T> dxd("dx_dot", batch * m.in()), dpd("dp_dot", m.num_params());
    m.backward_tangent(ctx(), nn::as_const(u(pd)), cmat(x, m.in()), cmat(xd, m.in()), cmat(y, m.out()),
                       cmat(yd, m.out()), cmat(dy, m.out()), cmat(ddy, m.out()), mat(dxd, m.in()), u(dpd));
    return {to_host(dpd), to_host(dxd)};
  }
};

/// γ, β drawn around init's (1, 0).
std::vector<double> bn_params(std::size_t C, std::uint64_t seed) {
  auto p = normal(seed, 2 * C, 0.5);
  for (std::size_t c = 0; c < C; ++c) p[c] += 1.0;
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Batch norm through the finite-difference harness.

struct BnCase {
  Shape shape;
  std::size_t batch;
};

TEST(BatchNorm, FiniteDifferencesInEveryMode) {
  const BnCase cases[] = {
      {{1, 1, 1}, 3},  // one feature, batch 3
      {{4, 1, 1}, 2},  // [B, F], the smallest batch with a variance
      {{3, 1, 1}, 5},  // [B, F]
      {{1, 7, 5}, 1},  // one channel, one sample, odd H, W
      {{3, 7, 5}, 2},
      {{2, 3, 3}, 3},
  };
  for (const auto& k : cases) {
    nn::BatchNorm<double> bn(k.shape);
    for (Mode mode : {Mode::train, Mode::probe, Mode::eval}) {
      ModuleCheck o;
      o.batch = k.batch;
      o.mode = mode;
      o.seed = 11 + k.batch;
      if (mode == Mode::eval) o.buffers = running_stats(k.shape.c);
      check_module(bn, o);
    }
  }
}

TEST(BatchNorm, FiniteDifferencesWithBatchSum) {
  // A batch_sum on one rank is the identity: the synchronised code paths (the running-mean shift, the
  // reductions in scratch) must give the same derivatives; the shift is non-trivial here.
  int calls = 0;
  const nn::BatchSum<double> one_rank = [&](double*, std::size_t) { ++calls; };
  for (const auto& k : {BnCase{{3, 7, 5}, 2}, BnCase{{2, 1, 1}, 3}}) {
    nn::BatchNorm<double> bn(k.shape);
    for (Mode mode : {Mode::train, Mode::probe}) {
      ModuleCheck o;
      o.batch = k.batch;
      o.mode = mode;
      o.batch_sum = &one_rank;
      o.buffers = running_stats(k.shape.c);
      check_module(bn, o);
    }
  }
  EXPECT_GT(calls, 0);
}

TEST(BatchNorm, ForwardMatchesHostComputation) {
  const Shape s{3, 5, 3};
  const std::size_t B = 4, C = s.c, HW = s.h * s.w, n = B * HW;
  nn::BatchNorm<double> bn(s, 1e-3, 0.25);
  const auto p = bn_params(C, 5);
  const auto bufs = running_stats(C);
  const auto x = normal(6, B * s.size(), 2.0, 0.7);
  std::vector<double> mean(C, 0.0), var(C, 0.0);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t k = 0; k < HW; ++k) mean[c] += x[(b * C + c) * HW + k] / double(n);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t k = 0; k < HW; ++k) {
        const double d = x[(b * C + c) * HW + k] - mean[c];
        var[c] += d * d / double(n);
      }

  Runner<double> train(bn, B, Mode::train, p, bufs), probe(bn, B, Mode::probe, p, bufs), eval(bn, B, Mode::eval, p, bufs);
  const auto yt = train.forward(x), yp = probe.forward(x), ye = eval.forward(x);
  EXPECT_EQ(yt, yp) << "train and probe normalise differently";
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t k = 0; k < HW; ++k) {
        const std::size_t i = (b * C + c) * HW + k;
        const double want = p[c] * (x[i] - mean[c]) / std::sqrt(var[c] + 1e-3) + p[C + c];
        EXPECT_NEAR(yt[i], want, 1e-12) << i;
        const double want_eval = p[c] * (x[i] - bufs[c]) / std::sqrt(bufs[C + c] + 1e-3) + p[C + c];
        EXPECT_NEAR(ye[i], want_eval, 1e-12) << i;
      }
  // PyTorch's running update: unbiased variance, momentum 0.25.
  const auto after = to_host(train.buffers);
  for (std::size_t c = 0; c < C; ++c) {
    EXPECT_NEAR(after[c], 0.75 * bufs[c] + 0.25 * mean[c], 1e-14);
    EXPECT_NEAR(after[C + c], 0.75 * bufs[C + c] + 0.25 * var[c] * double(n) / double(n - 1), 1e-14);
  }
  EXPECT_EQ(to_host(probe.buffers), bufs) << "probe changed the running statistics";
  EXPECT_EQ(to_host(eval.buffers), bufs) << "eval changed the running statistics";
}

TEST(BatchNorm, OneValuePerChannel) {
  // n = 1: train mode has no unbiased variance (an error, like PyTorch); probe mode is well defined:
  // x̂ = 0, y = β, dx = 0.
  const Shape s{3, 1, 1};
  nn::BatchNorm<double> bn(s);
  const auto p = bn_params(3, 2);
  const auto bufs = running_stats(3);
  Runner<double> train(bn, 1, Mode::train, p, bufs);
  sama::test::expect_error([&] { train.forward({1.0, 2.0, 3.0}); }, {"batch norm", "more than one value per channel"});
  EXPECT_EQ(to_host(train.buffers), bufs);
  Runner<double> probe(bn, 1, Mode::probe, p, bufs);
  const auto y = probe.forward({1.0, -2.0, 3.0});
  for (std::size_t c = 0; c < 3; ++c) EXPECT_EQ(y[c], p[3 + c]);
  const auto g = probe.backward({0.5, 1.5, -1.0});
  for (double v : g.dx) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(g.dp, (std::vector<double>{0.0, 0.0, 0.0, 0.5, 1.5, -1.0}));
  // Eval mode needs no batch statistics at all.
  Runner<double> eval(bn, 1, Mode::eval, p, bufs);
  const auto ye = eval.forward({1.0, 2.0, 3.0});
  EXPECT_NEAR(ye[0], p[0] * (1.0 - bufs[0]) / std::sqrt(bufs[3] + 1e-5) + p[3], 1e-12);
}

TEST(BatchNorm, RejectsBadArguments) {
  sama::test::expect_error([] { nn::BatchNorm<double>(Shape{2, 1, 1}, 0.0); }, {"eps"});
  sama::test::expect_error([] { nn::BatchNorm<double>(Shape{2, 1, 1}, 1e-5, 1.5); }, {"momentum"});
  sama::test::expect_error([] { nn::BatchNorm<double>(Shape{0, 1, 1}); }, {"empty"});
}

// ---------------------------------------------------------------------------------------------------
// Sync batch norm: two ranks emulated in one process.

/// A rank's batch_sum: records this rank's values at each call and adds the other rank's recorded values.
struct EmulatedRank {
  std::vector<std::vector<double>> local;        // this rank's values, per call
  const std::vector<std::vector<double>>* other = nullptr;
  nn::BatchSum<double> fn = [this](double* data, std::size_t n) {
    VecU<double> v(data, n);
    auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    const std::size_t k = local.size();
    local.emplace_back(h.data(), h.data() + n);
    if (other != nullptr) {
      EXPECT_LT(k, other->size());
      EXPECT_EQ((*other)[k].size(), n) << "the ranks disagree on the size of call " << k;
      if (k < other->size() && (*other)[k].size() == n)
        for (std::size_t i = 0; i < n; ++i) h(i) += (*other)[k][i];
    }
    Kokkos::deep_copy(v, h);
  };
};

std::vector<double> rows(const std::vector<double>& v, std::size_t from, std::size_t to, std::size_t width) {
  return std::vector<double>(v.begin() + long(from * width), v.begin() + long(to * width));
}

void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << "[" << i << "]";
}

TEST(BatchNorm, SyncOverTwoEmulatedRanksMatchesOneBatch) {
  for (const Shape s : {Shape{3, 3, 2}, Shape{4, 1, 1}}) {
    SCOPED_TRACE(to_string(s));
    const std::size_t B = 6, half = 3, F = s.size();
    nn::BatchNorm<double> bn(s);
    const auto p = bn_params(s.c, 8), bufs = running_stats(s.c);
    const auto x = normal(9, B * F, 1.5, 0.4), dy = normal(10, B * F), pd = normal(11, 2 * s.c),
               xd = normal(12, B * F), ddy = normal(13, B * F);

    Runner<double> full(bn, B, Mode::train, p, bufs);
    const auto y = full.forward(x);
    const auto g = full.backward(dy);
    const auto yd = full.forward_tangent(pd, xd);
    const auto gd = full.backward_tangent(ddy);

    // The ranks run one after the other, alternately, each adding the other's values recorded in its
    // latest run. A pass's local sums are right once the passes before it saw the whole batch: rank
    // a's first run gets only its forward's sums right, b's first run everything up to forward_tangent,
    // a's second run everything but backward_tangent's total, b's second run and a's third run
    // everything. Those two are compared with the full batch.
    std::array<EmulatedRank, 5> r;
    for (std::size_t k = 1; k < r.size(); ++k) r[k].other = &r[k - 1].local;
    struct Out {
      std::vector<double> y, yd, buffers;
      Runner<double>::Grad g, gd;
    };
    auto run = [&](EmulatedRank& r, std::size_t from, std::size_t to) {
      Runner<double> h(bn, to - from, Mode::train, p, bufs);
      h.batch_sum = &r.fn;
      Out o;
      o.y = h.forward(rows(x, from, to, F));
      EXPECT_EQ(r.local.size(), 1u) << "batch_sum calls in forward";
      o.g = h.backward(rows(dy, from, to, F));
      EXPECT_EQ(r.local.size(), 2u) << "batch_sum calls in backward";
      o.yd = h.forward_tangent(pd, rows(xd, from, to, F));
      EXPECT_EQ(r.local.size(), 3u) << "batch_sum calls in forward_tangent";
      o.gd = h.backward_tangent(rows(ddy, from, to, F));
      EXPECT_EQ(r.local.size(), 4u) << "batch_sum calls in backward_tangent";
      o.buffers = to_host(h.buffers);
      return o;
    };
    run(r[0], 0, half);
    run(r[1], half, B);
    run(r[2], 0, half);
    const Out ob = run(r[3], half, B);
    const Out oa = run(r[4], 0, half);
    const auto& a = r[4];
    // Sizes of the reductions: 2C + 1, 2C, 2C, 4C values.
    ASSERT_EQ(a.local.size(), 4u);
    EXPECT_EQ(a.local[0].size(), 2 * s.c + 1);
    EXPECT_EQ(a.local[1].size(), 2 * s.c);
    EXPECT_EQ(a.local[2].size(), 2 * s.c);
    EXPECT_EQ(a.local[3].size(), 4 * s.c);

    const double tol = 1e-12;
    expect_near(oa.y, rows(y, 0, half, F), tol, "y (rank a)");
    expect_near(ob.y, rows(y, half, B, F), tol, "y (rank b)");
    expect_near(oa.g.dx, rows(g.dx, 0, half, F), tol, "dx (rank a)");
    expect_near(ob.g.dx, rows(g.dx, half, B, F), tol, "dx (rank b)");
    expect_near(oa.yd, rows(yd, 0, half, F), tol, "y_dot (rank a)");
    expect_near(ob.yd, rows(yd, half, B, F), tol, "y_dot (rank b)");
    expect_near(oa.gd.dx, rows(gd.dx, 0, half, F), tol, "dx_dot (rank a)");
    expect_near(ob.gd.dx, rows(gd.dx, half, B, F), tol, "dx_dot (rank b)");
    std::vector<double> dp(2 * s.c), dpd(2 * s.c);
    for (std::size_t i = 0; i < 2 * s.c; ++i) dp[i] = oa.g.dp[i] + ob.g.dp[i], dpd[i] = oa.gd.dp[i] + ob.gd.dp[i];
    expect_near(dp, g.dp, tol, "dγ, dβ summed over the ranks");
    expect_near(dpd, gd.dp, tol, "R{dγ}, R{dβ} summed over the ranks");
    const auto fb = to_host(full.buffers);
    expect_near(oa.buffers, fb, tol, "running statistics (rank a)");
    expect_near(ob.buffers, fb, tol, "running statistics (rank b)");
  }
}

TEST(BatchNorm, NoBatchSumCallsWithoutBatchStatisticsOrWhenNothingIsWanted) {
  const Shape s{2, 2, 2};
  nn::BatchNorm<double> bn(s);
  EmulatedRank r;
  const auto x = normal(1, 3 * s.size());
  Runner<double> eval(bn, 3, Mode::eval, bn_params(2, 1), running_stats(2));
  eval.batch_sum = &r.fn;
  eval.forward(x);
  eval.backward(x);
  eval.forward_tangent(bn_params(2, 3), x);
  eval.backward_tangent(x);
  EXPECT_EQ(r.local.size(), 0u) << "eval mode uses the running statistics: nothing to synchronise";
}

TEST(BatchNorm, FloatSyncShiftKeepsTheVarianceAccurate) {
  // Values around 1000 with unit spread: in float, Σx² − n·mean² would lose the variance; the shift by
  // the running mean (identical on every rank) keeps it.
  const Shape s{2, 4, 4};
  const std::size_t B = 8;
  nn::BatchNorm<float> bnf(s);
  nn::BatchNorm<double> bnd(s);
  const auto xd = normal(21, B * s.size(), 1.0, 1000.0);
  std::vector<float> xf(xd.begin(), xd.end());
  std::vector<double> xr(xf.begin(), xf.end());  // the same values in double
  const std::vector<float> pf{1.f, 1.f, 0.f, 0.f}, bf{999.5f, 1000.25f, 1.f, 1.f};
  const std::vector<double> pdd{1, 1, 0, 0}, bd{999.5, 1000.25, 1, 1};
  int calls = 0;
  const nn::BatchSum<float> one_rank = [&](float*, std::size_t) { ++calls; };
  Runner<float> f(bnf, B, Mode::probe, pf, bf), fs(bnf, B, Mode::probe, pf, bf);
  fs.batch_sum = &one_rank;
  Runner<double> d(bnd, B, Mode::probe, pdd, bd);
  const auto yf = f.forward(xf), yfs = fs.forward(xf);
  const auto yd = d.forward(xr);
  EXPECT_EQ(calls, 1);
  for (std::size_t i = 0; i < yd.size(); ++i) {
    EXPECT_NEAR(yf[i], yd[i], 2e-3) << "local statistics, " << i;
    EXPECT_NEAR(yfs[i], yd[i], 2e-3) << "synchronised statistics, " << i;
  }
}

// ---------------------------------------------------------------------------------------------------
// Timing (printed only, no assertion): one ResNet-sized batch-norm layer.

/// Seconds per call of f (after one warm-up call): wall clock and this process's CPU time.
std::pair<double, double> bn_times(const std::function<void()>& f, int reps) {
  f();
  Kokkos::fence();
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int i = 0; i < reps; ++i) f();
  Kokkos::fence();
  const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC / reps;
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps, cpu};
}

// Disabled by default; run with
//   test_norm_pool --gtest_also_run_disabled_tests --gtest_filter='BatchNormPerf.*'
TEST(BatchNormPerf, DISABLED_ResNetSizedLayer) {
  const Shape s{16, 28, 28};
  const std::size_t B = 128, C = s.c;
  nn::BatchNorm<float> bn(s);
  const auto cast = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  Runner<float> r(bn, B, Mode::train, cast(bn_params(C, 1)), cast(running_stats(C)));
  const auto xh = cast(normal(2, B * s.size(), 1.5, 0.5));
  r.forward(xh);
  r.backward(xh);
  r.forward_tangent(cast(bn_params(C, 3)), xh);
  Vec<float> dx("perf::dx", B * s.size()), dp("perf::dp", 2 * C), sq("perf::sq", B);
  Vec<float> dxd("perf::dx_dot", B * s.size()), dpd("perf::dp_dot", 2 * C), yd("perf::y_dot", B * s.size());
  const auto u = [](const Vec<float>& v) { return VecU<float>(v.data(), v.extent(0)); };
  const auto x = r.cmat(r.x, s.size()), y = r.cmat(r.y, s.size()), dy = r.cmat(r.dy, s.size());
  const auto pd = nn::as_const(u(r.pd));
  int calls = 0;
  const nn::BatchSum<float> one_rank = [&](float*, std::size_t) { ++calls; };
  auto train = r.ctx(), probe = r.ctx(), sync = r.ctx(), with_sq = r.ctx();
  probe.mode = sync.mode = with_sq.mode = Mode::probe;
  sync.batch_sum = &one_rank;
  with_sq.sample_sq = u(sq);
  const Vec<float> buffers0("perf::buffers", 2 * C);
  Kokkos::deep_copy(buffers0, r.buffers);
  struct Pass {
    const char* name;
    std::function<void()> f;
  };
  const std::vector<Pass> passes = {
      {"forward (train, local statistics)", [&] { bn.forward(train, x, r.mat(r.y, s.size())); }},
      {"forward (probe, batch_sum)", [&] { bn.forward(sync, x, r.mat(r.y, s.size())); }},
      {"backward (dgamma, dbeta, dx)", [&] { bn.backward(probe, x, y, dy, MatU<float>(dx.data(), B, s.size()), u(dp)); }},
      {"backward (dgamma, dbeta)", [&] { bn.backward(probe, x, y, dy, MatU<float>(), u(dp)); }},
      {"backward + sample_sq", [&] { bn.backward(with_sq, x, y, dy, MatU<float>(dx.data(), B, s.size()), u(dp)); }},
      {"forward_tangent", [&] { bn.forward_tangent(probe, pd, x, x, y, MatU<float>(yd.data(), B, s.size())); }},
      {"backward_tangent", [&] {
         bn.backward_tangent(probe, pd, x, x, y, nn::as_const(MatU<float>(yd.data(), B, s.size())), dy, dy,
                             MatU<float>(dxd.data(), B, s.size()), u(dpd));
       }},
  };
  std::printf("batch norm [%zu, %zu, %zu, %zu], float, %s; time per call (wall clock; CPU time in brackets)\n", B,
              s.c, s.h, s.w, ExecSpace::name());
  for (const auto& ps : passes) {
    const auto t = bn_times(ps.f, 20);
    std::printf("  %-36s %7.3f ms (%7.3f ms)\n", ps.name, 1e3 * t.first, 1e3 * t.second);
  }
  Kokkos::deep_copy(r.buffers, buffers0);
}

// ---------------------------------------------------------------------------------------------------
// Pooling and flatten.

struct PoolCase {
  Shape shape;
  std::size_t batch, k, stride, pad;
};
const PoolCase kPoolCases[] = {
    {{1, 7, 5}, 1, 3, 2, 1},  // one channel, one sample, odd sides, stride 2, padding
    {{2, 7, 5}, 3, 2, 2, 0},
    {{2, 7, 5}, 2, 3, 1, 1},
    {{3, 4, 4}, 2, 1, 1, 0},  // k = 1
    {{1, 5, 6}, 3, 2, 1, 1},  // k = 2, padding 1, overlapping windows
    {{2, 3, 3}, 1, 3, 3, 0},  // one window
};

TEST(Pool, FiniteDifferences) {
  for (const auto& k : kPoolCases) {
    ModuleCheck o;
    o.batch = k.batch;
    o.seed = 3 + k.k;
    check_module(nn::MaxPool2d<double>(k.shape, k.k, k.stride, k.pad), o);
    check_module(nn::AvgPool2d<double>(k.shape, k.k, k.stride, k.pad), o);
  }
  const std::vector<std::pair<Shape, std::size_t>> flat_cases{{{3, 7, 5}, 3}, {{1, 1, 1}, 1}, {{2, 2, 3}, 2}};
  for (const auto& [s, b] : flat_cases) {
    ModuleCheck o;
    o.batch = b;
    check_module(nn::GlobalAvgPool<double>(s), o);
    check_module(nn::Flatten<double>(s), o);
  }
}

TEST(Pool, Shapes) {
  EXPECT_EQ(nn::MaxPool2d<double>(Shape{3, 7, 5}, 3, 2, 1).out_shape(), (Shape{3, 4, 3}));
  EXPECT_EQ(nn::AvgPool2d<double>(Shape{3, 7, 5}, 2, 2, 0).out_shape(), (Shape{3, 3, 2}));
  EXPECT_EQ(nn::GlobalAvgPool<double>(Shape{3, 7, 5}).out_shape(), (Shape{3, 1, 1}));
  EXPECT_EQ(nn::Flatten<double>(Shape{3, 7, 5}).out_shape(), (Shape{105, 1, 1}));
  EXPECT_EQ(nn::MaxPool2d<float>(Shape{3, 7, 5}, 3, 2, 1).describe(), "maxpool3x3(stride 2, pad 1)");
  sama::test::expect_error([] { nn::MaxPool2d<double>(Shape{1, 4, 4}, 2, 1, 2); }, {"padding"});
  sama::test::expect_error([] { nn::AvgPool2d<double>(Shape{1, 2, 4}, 3, 1, 0); }, {"does not fit"});
  sama::test::expect_error([] { nn::AvgPool2d<double>(Shape{1, 4, 4}, 2, 0, 0); }, {"stride"});
}

/// Naive pooling: y and dx (of dy) by plain loops; max: −∞ padding, the first maximum wins.
void naive_pool(bool max, const PoolCase& k, const std::vector<double>& x, const std::vector<double>& dy,
                std::vector<double>& y, std::vector<double>& dx, std::vector<std::size_t>& arg) {
  const long H = long(k.shape.h), W = long(k.shape.w), K = long(k.k), S = long(k.stride), P = long(k.pad);
  const long OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
  const std::size_t planes = k.batch * k.shape.c;
  y.assign(planes * std::size_t(OH * OW), 0.0);
  arg.assign(y.size(), 0);
  dx.assign(x.size(), 0.0);
  for (std::size_t pl = 0; pl < planes; ++pl)
    for (long oh = 0; oh < OH; ++oh)
      for (long ow = 0; ow < OW; ++ow) {
        const std::size_t o = pl * std::size_t(OH * OW) + std::size_t(oh * OW + ow);
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        std::size_t at = 0;
        for (long i = oh * S - P; i < oh * S - P + K; ++i)
          for (long j = ow * S - P; j < ow * S - P + K; ++j) {
            if (i < 0 || i >= H || j < 0 || j >= W) continue;
            const std::size_t idx = pl * std::size_t(H * W) + std::size_t(i * W + j);
            sum += x[idx];
            if (x[idx] > best) best = x[idx], at = idx;
          }
        arg[o] = at;
        if (max) {
          y[o] = best;
          dx[at] += dy[o];
        } else {
          y[o] = sum / double(K * K);
          for (long i = oh * S - P; i < oh * S - P + K; ++i)
            for (long j = ow * S - P; j < ow * S - P + K; ++j)
              if (i >= 0 && i < H && j >= 0 && j < W) dx[pl * std::size_t(H * W) + std::size_t(i * W + j)] += dy[o] / double(K * K);
        }
      }
}

TEST(Pool, MatchesNaiveLoopsWithTies) {
  for (const auto& k : kPoolCases) {
    SCOPED_TRACE(to_string(k.shape) + " k " + std::to_string(k.k) + " stride " + std::to_string(k.stride) + " pad " +
                 std::to_string(k.pad) + " batch " + std::to_string(k.batch));
    // Small integers, so windows often hold tied maxima (and negative values, so −∞ padding matters).
    auto x = normal(17, k.batch * k.shape.size());
    for (auto& v : x) v = std::round(v) - 1.0;
    nn::MaxPool2d<double> mp(k.shape, k.k, k.stride, k.pad);
    nn::AvgPool2d<double> ap(k.shape, k.k, k.stride, k.pad);
    for (const nn::Module<double>* m : {static_cast<const nn::Module<double>*>(&mp), static_cast<const nn::Module<double>*>(&ap)}) {
      const bool max = m == &mp;
      const auto dy = normal(18, k.batch * m->out());
      std::vector<double> y, dx;
      std::vector<std::size_t> arg;
      naive_pool(max, k, x, dy, y, dx, arg);
      Runner<double> r(*m, k.batch, Mode::probe, {}, {});
      expect_near(r.forward(x), y, 1e-14, max ? "max y" : "avg y");
      const auto g = r.backward(dy);
      expect_near(g.dx, dx, 1e-14, max ? "max dx" : "avg dx");
      // The tangents: ẋ at the first argmax of x (max), the pooling of ẋ (avg).
      const auto xd = normal(19, x.size());
      std::vector<double> yd_ref, unused;
      if (max) {
        for (std::size_t o = 0; o < y.size(); ++o) yd_ref.push_back(xd[arg[o]]);
      } else {
        naive_pool(false, k, xd, dy, yd_ref, unused, arg);
      }
      expect_near(r.forward_tangent({}, xd), yd_ref, 1e-14, max ? "max y_dot" : "avg y_dot");
      // R{dx} = backward of ḋy.
      const auto ddy = normal(20, dy.size());
      std::vector<double> y2, dx2;
      naive_pool(max, k, x, ddy, y2, dx2, arg);
      expect_near(r.backward_tangent(ddy).dx, dx2, 1e-14, max ? "max dx_dot" : "avg dx_dot");
    }
  }
}

TEST(Pool, FloatInstantiationsAgreeWithDouble) {
  const PoolCase k{{2, 7, 5}, 2, 3, 2, 1};
  const auto xd = normal(31, k.batch * k.shape.size());
  const std::vector<float> xf(xd.begin(), xd.end());
  std::vector<double> xr(xf.begin(), xf.end());
  nn::MaxPool2d<float> mf(k.shape, k.k, k.stride, k.pad);
  nn::MaxPool2d<double> md(k.shape, k.k, k.stride, k.pad);
  nn::AvgPool2d<float> af(k.shape, k.k, k.stride, k.pad);
  nn::AvgPool2d<double> ad(k.shape, k.k, k.stride, k.pad);
  nn::GlobalAvgPool<float> gf(k.shape);
  nn::GlobalAvgPool<double> gd(k.shape);
  nn::Flatten<float> ff(k.shape);
  nn::Flatten<double> fd(k.shape);
  const std::pair<const nn::Module<float>*, const nn::Module<double>*> pairs[] = {
      {&mf, &md}, {&af, &ad}, {&gf, &gd}, {&ff, &fd}};
  for (const auto& [f, d] : pairs) {
    Runner<float> rf(*f, k.batch, Mode::probe, {}, {});
    Runner<double> rd(*d, k.batch, Mode::probe, {}, {});
    const auto yf = rf.forward(xf);
    const auto yd = rd.forward(xr);
    ASSERT_EQ(yf.size(), yd.size());
    for (std::size_t i = 0; i < yd.size(); ++i) EXPECT_NEAR(yf[i], yd[i], 1e-6) << f->describe();
  }
}

}  // namespace
