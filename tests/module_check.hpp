#pragma once
// Checks any nn::Module<double> against central finite differences of its own forward:
//   backward         dp, dx  vs  ∂(r·f(x; p))/∂p, ∂/∂x, coordinate by coordinate
//   forward_tangent  ẏ       vs  (f(p + hṗ, x + hẋ) − f(p − hṗ, x − hẋ)) / 2h, and with either tangent zero
//   backward_tangent R{dp}, R{dx} vs the same difference of backward along (ṗ, ẋ, ḋy)
//   sample_sq        sample i's squared gradient share vs ‖backward of dy restricted to row i‖²
// plus: backward without dx gives the same dp; backward keeping upstream gives the same result; a
// forward in probe or eval mode leaves the buffers untouched. Every call gets regions of exactly the
// sizes the module asks for (a module that writes past them fails the bounds-checked region views of a
// debug build and corrupts the guard values checked here).
#include "sama/core/rng.hpp"
#include "sama/nn/module.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace sama::test {

struct ModuleCheck {
  std::size_t batch = 2;
  nn::Mode mode = nn::Mode::probe;
  std::uint64_t seed = 1;
  double h = 1e-6;
  double rel_tol = 1e-5;     // relative error allowed per component ...
  double abs_tol = 1e-6;     // ... or this fraction of the largest component of the compared vector
  std::size_t max_coords = 400;  // per-coordinate differences on at most this many coordinates of p and of x
  double param_scale = 0.5;  // parameters are drawn N(0, scale²) around init's values (0: init's values only)
  const nn::BatchSum<double>* batch_sum = nullptr;
  std::vector<double> buffers;  // initial buffers (empty: init's)
  // Sample i's share equals ‖backward of dy restricted to row i‖² only where no layer couples samples:
  // false for a composite with batch norm in train or probe mode (its inner upstream gradients mix
  // samples), where the shares are checked for being finite and non-negative only.
  bool exact_sample_norms = true;
};

/// Runs one module on host-side vectors: every call starts from the given p, x and the initial buffers.
class ModuleHarness {
 public:
  static constexpr std::size_t kGuard = 8;
  static constexpr double kGuardValue = 12345.678;

  ModuleHarness(const nn::Module<double>& m, const ModuleCheck& o) : m_(m), o_(o) {
    const auto s = m.sizes(o.batch);
    saved_ = alloc(s.saved);
    tangent_ = alloc(s.tangent);
    upstream_ = alloc(s.upstream);
    scratch_ = alloc(s.scratch);
    buffers_ = alloc(m.num_buffers());
    p_ = alloc(m.num_params());
    Rng rng(o.seed, 99);
    m.init(inner(p_, m.num_params()), inner(buffers_, m.num_buffers()), rng);
    init_p_ = to_host(inner(p_, m.num_params()));
    init_buffers_ = o.buffers.empty() ? to_host(inner(buffers_, m.num_buffers())) : o.buffers;
    EXPECT_EQ(init_buffers_.size(), m.num_buffers()) << "initial buffers";
  }

  const std::vector<double>& init_params() const { return init_p_; }
  const std::vector<double>& initial_buffers() const { return init_buffers_; }
  std::vector<double> buffers_after() const { return to_host(inner(buffers_, m_.num_buffers())); }

  /// y = f(x; p) with the buffers reset to their initial values first.
  std::vector<double> forward(const std::vector<double>& p, const std::vector<double>& x) {
    set(inner(p_, p.size()), p);
    set(inner(buffers_, init_buffers_.size()), init_buffers_);
    x_ = to_device(x, "module_check::x");
    y_ = Vec<double>("module_check::y", o_.batch * m_.out());
    m_.forward(ctx(), mat(x_, m_.in()), mat(y_, m_.out()));
    check_guards("forward");
    return to_host(y_);
  }

  struct Grad {
    std::vector<double> dp, dx;
  };
  /// dp, dx of r·f at (p, x) (forward first). keep: with the upstream region; sq: per-sample shares.
  Grad backward(const std::vector<double>& p, const std::vector<double>& x, const std::vector<double>& dy,
                bool want_dx = true, bool keep = true, std::vector<double>* sq = nullptr) {
    forward(p, x);
    Vec<double> dyv = to_device(dy, "module_check::dy");
    Vec<double> dx("module_check::dx", o_.batch * m_.in()), dp("module_check::dp", m_.num_params());
    Kokkos::deep_copy(dp, kGuardValue);  // overwritten, never accumulated into
    Kokkos::deep_copy(dx, kGuardValue);
    Vec<double> sqv("module_check::sq", o_.batch);
    if (sq) Kokkos::deep_copy(sqv, 0.25);  // added to
    auto c = ctx();
    if (!keep) c.upstream = VecU<double>();
    if (sq) c.sample_sq = sqv;
    m_.backward(c, mat(x_, m_.in()), mat(y_, m_.out()), mat(dyv, m_.out()), want_dx ? mat(dx, m_.in()) : MatU<double>(),
                dp);
    check_guards("backward");
    if (sq) {
      *sq = to_host(sqv);
      for (auto& v : *sq) v -= 0.25;
    }
    return {to_host(dp), want_dx ? to_host(dx) : std::vector<double>()};
  }

  /// ẏ at (p, x) along (ṗ, ẋ); an empty vector is a zero tangent (an empty view).
  std::vector<double> forward_tangent(const std::vector<double>& p, const std::vector<double>& x,
                                      const std::vector<double>& p_dot, const std::vector<double>& x_dot) {
    forward(p, x);
    return tangent_forward(p_dot, x_dot);
  }

  /// R{dp}, R{dx} at (p, x, dy) along (ṗ, ẋ, ḋy): forward, backward keeping upstream, forward_tangent,
  /// backward_tangent.
  Grad backward_tangent(const std::vector<double>& p, const std::vector<double>& x, const std::vector<double>& dy,
                        const std::vector<double>& p_dot, const std::vector<double>& x_dot,
                        const std::vector<double>& dy_dot) {
    backward(p, x, dy);
    Vec<double> dyv = to_device(dy, "module_check::dy");
    tangent_forward(p_dot, x_dot);
    Vec<double> dyd = to_device(dy_dot, "module_check::dy_dot");
    Vec<double> dxd("module_check::dx_dot", o_.batch * m_.in()), dpd("module_check::dp_dot", m_.num_params());
    Kokkos::deep_copy(dpd, kGuardValue);
    Kokkos::deep_copy(dxd, kGuardValue);
    m_.backward_tangent(ctx(), opt(pd_), mat(x_, m_.in()), opt_mat(xd_, m_.in()), mat(y_, m_.out()),
                        mat(yd_, m_.out()), mat(dyv, m_.out()), mat(dyd, m_.out()), mat(dxd, m_.in()), dpd);
    check_guards("backward_tangent");
    return {to_host(dpd), to_host(dxd)};
  }

 private:
  const nn::Module<double>& m_;
  ModuleCheck o_;
  Vec<double> saved_, tangent_, upstream_, scratch_, buffers_, p_, x_, y_, pd_, xd_, yd_;
  std::vector<double> init_p_, init_buffers_;

  static Vec<double> alloc(std::size_t n) {
    Vec<double> v("module_check::region", n + kGuard);
    Kokkos::deep_copy(v, kGuardValue);
    return v;
  }
  static VecU<double> inner(const Vec<double>& v, std::size_t n) {
    return n == 0 ? VecU<double>() : VecU<double>(v.data(), n);
  }
  static void set(VecU<double> v, const std::vector<double>& h) {
    if (h.empty()) return;
    Kokkos::deep_copy(v, Kokkos::View<const double*, Kokkos::LayoutRight, HostSpace,
                                      Kokkos::MemoryTraits<Kokkos::Unmanaged>>(h.data(), h.size()));
  }
  MatU<double> mat(const Vec<double>& v, std::size_t cols) const { return MatU<double>(v.data(), o_.batch, cols); }
  MatU<const double> opt_mat(const Vec<double>& v, std::size_t cols) const {
    return v.extent(0) == 0 ? MatU<const double>() : MatU<const double>(v.data(), o_.batch, cols);
  }
  static VecU<const double> opt(const Vec<double>& v) {
    return v.extent(0) == 0 ? VecU<const double>() : VecU<const double>(v.data(), v.extent(0));
  }
  nn::ModuleCtx<double> ctx() const {
    const auto s = m_.sizes(o_.batch);
    nn::ModuleCtx<double> c;
    c.mode = o_.mode;
    c.p = VecU<const double>(p_.data(), m_.num_params());
    c.buffers = inner(buffers_, m_.num_buffers());
    c.saved = inner(saved_, s.saved);
    c.tangent = inner(tangent_, s.tangent);
    c.upstream = inner(upstream_, s.upstream);
    c.scratch = inner(scratch_, s.scratch);
    c.batch_sum = o_.batch_sum;
    return c;
  }
  std::vector<double> tangent_forward(const std::vector<double>& p_dot, const std::vector<double>& x_dot) {
    pd_ = p_dot.empty() ? Vec<double>() : to_device(p_dot, "module_check::p_dot");
    xd_ = x_dot.empty() ? Vec<double>() : to_device(x_dot, "module_check::x_dot");
    yd_ = Vec<double>("module_check::y_dot", o_.batch * m_.out());
    Kokkos::deep_copy(yd_, kGuardValue);
    m_.forward_tangent(ctx(), opt(pd_), mat(x_, m_.in()), opt_mat(xd_, m_.in()), mat(y_, m_.out()), mat(yd_, m_.out()));
    check_guards("forward_tangent");
    return to_host(yd_);
  }
  void check_guards(const char* pass) const {
    const auto s = m_.sizes(o_.batch);
    const std::pair<const Vec<double>*, std::size_t> regions[] = {
        {&saved_, s.saved}, {&tangent_, s.tangent}, {&upstream_, s.upstream}, {&scratch_, s.scratch},
        {&buffers_, m_.num_buffers()}};
    const char* names[] = {"saved", "tangent", "upstream", "scratch", "buffers"};
    for (int r = 0; r < 5; ++r) {
      const auto h = to_host(*regions[r].first);
      for (std::size_t i = regions[r].second; i < h.size(); ++i)
        EXPECT_EQ(h[i], kGuardValue) << m_.describe() << ": " << pass << " wrote past its " << names[r] << " region ("
                                     << regions[r].second << " elements asked for)";
    }
  }
};

/// |a − b| within rel_tol of the larger, or abs_tol of the vector's largest component.
inline void expect_close(const std::vector<double>& analytic, const std::vector<double>& reference,
                         const ModuleCheck& o, const std::string& what) {
  ASSERT_EQ(analytic.size(), reference.size()) << what;
  double scale = 0;
  for (double v : reference) scale = std::max(scale, std::fabs(v));
  int shown = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double a = analytic[i], b = reference[i];
    const bool ok = std::fabs(a - b) <= o.rel_tol * std::max(std::fabs(a), std::fabs(b)) + o.abs_tol * scale;
    if (!ok && shown++ < 8) ADD_FAILURE() << what << "[" << i << "]: analytic " << a << ", reference " << b;
  }
  if (!reference.empty()) {
    EXPECT_GT(scale, 1e-6) << what << ": the reference is (nearly) zero everywhere, so the check is vacuous";
  }
}

inline std::vector<double> check_normal(Rng& rng, std::size_t n, double scale = 1.0) {
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

/// All of the checks above for one module at o.batch; `x` empty draws N(0, 1) inputs.
inline void check_module(const nn::Module<double>& m, const ModuleCheck& o, std::vector<double> x = {}) {
  SCOPED_TRACE(m.describe() + " batch " + std::to_string(o.batch) + " mode " + nn::to_string(o.mode));
  ModuleHarness hm(m, o);
  Rng rng(o.seed, 7);
  const std::size_t np = m.num_params(), nx = o.batch * m.in(), ny = o.batch * m.out();
  std::vector<double> p = hm.init_params();
  for (auto& v : p) v += o.param_scale * rng.normal();
  if (x.empty()) x = check_normal(rng, nx);
  ASSERT_EQ(x.size(), nx);
  const std::vector<double> r = check_normal(rng, ny), r2 = check_normal(rng, ny);
  const std::vector<double> p_dot = check_normal(rng, np), x_dot = check_normal(rng, nx);
  const double h = o.h;
  auto objective = [&](const std::vector<double>& pp, const std::vector<double>& xx) {
    const auto y = hm.forward(pp, xx);
    double s = 0;
    for (std::size_t i = 0; i < ny; ++i) s += r[i] * y[i];
    return s;
  };
  // Coordinates checked one at a time (all, or an evenly spread subset).
  auto coords = [&](std::size_t n) {
    std::vector<std::size_t> c;
    const std::size_t step = n <= o.max_coords ? 1 : (n + o.max_coords - 1) / o.max_coords;
    for (std::size_t i = 0; i < n; i += step) c.push_back(i);
    return c;
  };
  auto fd_grad = [&](bool wrt_p, const std::vector<std::size_t>& at) {
    std::vector<double> g;
    std::vector<double> pp = p, xx = x;
    std::vector<double>& v = wrt_p ? pp : xx;
    for (std::size_t i : at) {
      const double v0 = v[i];
      v[i] = v0 + h;
      const double fp = objective(pp, xx);
      v[i] = v0 - h;
      const double fm = objective(pp, xx);
      v[i] = v0;
      g.push_back((fp - fm) / (2 * h));
    }
    return g;
  };
  auto pick = [](const std::vector<double>& v, const std::vector<std::size_t>& at) {
    std::vector<double> out;
    for (std::size_t i : at) out.push_back(v[i]);
    return out;
  };

  // Backward.
  const auto g = hm.backward(p, x, r);
  const auto cp = coords(np), cx = coords(nx);
  if (np > 0) expect_close(pick(g.dp, cp), fd_grad(true, cp), o, "backward dp");
  expect_close(pick(g.dx, cx), fd_grad(false, cx), o, "backward dx");
  // Without dx and without keeping upstream: the same dp, to the bit.
  const auto g_nodx = hm.backward(p, x, r, false, false);
  EXPECT_EQ(g_nodx.dp, g.dp) << "backward without dx or upstream gives another dp";

  // Forward tangent, with both tangents and with each alone.
  auto fd_y = [&](const std::vector<double>& pd, const std::vector<double>& xd) {
    std::vector<double> pp = p, pm = p, xp = x, xm = x;
    for (std::size_t i = 0; i < pd.size(); ++i) pp[i] += h * pd[i], pm[i] -= h * pd[i];
    for (std::size_t i = 0; i < xd.size(); ++i) xp[i] += h * xd[i], xm[i] -= h * xd[i];
    const auto yp = hm.forward(pp, xp), ym = hm.forward(pm, xm);
    std::vector<double> d(ny);
    for (std::size_t i = 0; i < ny; ++i) d[i] = (yp[i] - ym[i]) / (2 * h);
    return d;
  };
  const std::vector<double> none;
  expect_close(hm.forward_tangent(p, x, p_dot, x_dot), fd_y(p_dot, x_dot), o, "forward_tangent (ṗ, ẋ)");
  expect_close(hm.forward_tangent(p, x, none, x_dot), fd_y(none, x_dot), o, "forward_tangent (0, ẋ)");
  if (np > 0) expect_close(hm.forward_tangent(p, x, p_dot, none), fd_y(p_dot, none), o, "forward_tangent (ṗ, 0)");

  // Backward tangent: the difference of backward along (ṗ, ẋ, ḋy = r2).
  auto fd_back = [&](const std::vector<double>& pd, const std::vector<double>& xd) {
    std::vector<double> pp = p, pm = p, xp = x, xm = x, dyp = r, dym = r;
    for (std::size_t i = 0; i < pd.size(); ++i) pp[i] += h * pd[i], pm[i] -= h * pd[i];
    for (std::size_t i = 0; i < xd.size(); ++i) xp[i] += h * xd[i], xm[i] -= h * xd[i];
    for (std::size_t i = 0; i < ny; ++i) dyp[i] += h * r2[i], dym[i] -= h * r2[i];
    const auto gp = hm.backward(pp, xp, dyp), gm = hm.backward(pm, xm, dym);
    ModuleHarness::Grad d{std::vector<double>(np), std::vector<double>(nx)};
    for (std::size_t i = 0; i < np; ++i) d.dp[i] = (gp.dp[i] - gm.dp[i]) / (2 * h);
    for (std::size_t i = 0; i < nx; ++i) d.dx[i] = (gp.dx[i] - gm.dx[i]) / (2 * h);
    return d;
  };
  for (int variant = 0; variant < 3; ++variant) {
    if (variant == 2 && np == 0) break;
    const auto& pd = variant == 1 ? none : p_dot;
    const auto& xd = variant == 2 ? none : x_dot;
    const std::string tag = variant == 0 ? " (ṗ, ẋ)" : variant == 1 ? " (0, ẋ)" : " (ṗ, 0)";
    const auto gt = hm.backward_tangent(p, x, r, pd, xd, r2);
    const auto ref = fd_back(pd, xd);
    if (np > 0) expect_close(gt.dp, ref.dp, o, "backward_tangent dp" + tag);
    expect_close(gt.dx, ref.dx, o, "backward_tangent dx" + tag);
  }

  // Per-sample squared gradient shares: sample i's term is backward of dy restricted to row i.
  if (np > 0) {
    std::vector<double> sq;
    const auto g_sq = hm.backward(p, x, r, true, true, &sq);
    EXPECT_EQ(g_sq.dp, g.dp) << "recording per-sample norms changed the gradient";
    const std::size_t out = m.out();
    for (std::size_t i = 0; i < o.batch; ++i) {
      std::vector<double> ri(ny, 0.0);
      std::copy(r.begin() + static_cast<long>(i * out), r.begin() + static_cast<long>((i + 1) * out),
                ri.begin() + static_cast<long>(i * out));
      const auto gi = hm.backward(p, x, ri, false, false);
      double n2 = 0;
      for (double v : gi.dp) n2 += v * v;
      if (o.exact_sample_norms) {
        EXPECT_NEAR(sq[i], n2, 1e-9 * std::max(1.0, n2)) << "sample " << i << "'s squared gradient share";
      } else {
        EXPECT_TRUE(std::isfinite(sq[i]) && sq[i] >= 0) << "sample " << i << "'s squared gradient share " << sq[i];
      }
    }
  }

  // Buffers: untouched by a forward in probe or eval mode.
  if (o.mode != nn::Mode::train && m.num_buffers() > 0) {
    ModuleHarness fresh(m, o);
    fresh.forward(p, x);
    EXPECT_EQ(fresh.buffers_after(), fresh.initial_buffers()) << "a forward in mode " << nn::to_string(o.mode) << " changed the buffers";
  }
}

}  // namespace sama::test
