// Optimizers (SGD, Adam, AdamW, Adagrad, RMSprop, Lion, LAMB) and learning-rate schedules.
//
// The adaptation D = ∂u/∂g is checked against central finite differences of the update itself
// (Lion: of its surrogate update; LAMB: its Jacobian-vector product along random directions and its
// transpose product through ⟨w, u⟩), the updates against naive scalar reference implementations,
// and the schedules against their formulas.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/optim/adagrad.hpp"
#include "sama/optim/adam.hpp"
#include "sama/optim/lamb.hpp"
#include "sama/optim/lion.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/rmsprop.hpp"
#include "sama/optim/schedule.hpp"
#include "sama/optim/sgd.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using sama::Vec;
using sama::test::to_device;
using sama::test::to_host;
using sama::optim::make_optimizer;
using sama::optim::Optimizer;
using sama::optim::OptimizerConfig;

constexpr std::size_t kN = 37;

std::vector<double> normal_vec(sama::Rng& rng, std::size_t n, double scale = 1.0) {
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

struct Case {
  std::string label;
  OptimizerConfig cfg;
  /// Lion only: step() applies the surrogate update (the update whose derivative D is).
  bool lion_smooth = false;
};

OptimizerConfig config(const std::string& name, double momentum = 0.0, bool nesterov = false, double wd = 0.0,
                       double eps = 1e-8) {
  OptimizerConfig c;
  c.name = name;
  c.momentum = momentum;
  c.nesterov = nesterov;
  c.weight_decay = wd;
  c.eps = eps;
  return c;
}

OptimizerConfig with(OptimizerConfig c, const std::function<void(OptimizerConfig&)>& f) {
  f(c);
  return c;
}

OptimizerConfig lion(const std::string& surrogate, double tau, double wd = 0.0) {
  auto c = config("lion", 0.0, false, wd);
  c.beta2 = 0.99;
  c.lion_surrogate = surrogate;
  c.lion_temperature = tau;
  return c;
}

/// LAMB over kN = 37 parameters in three groups (one a single element), like three small layers.
OptimizerConfig lamb_groups(double wd) {
  auto c = config("lamb", 0.0, false, wd);
  c.groups = {{0, 20}, {20, 16}, {36, 1}};
  return c;
}

std::vector<Case> all_cases() {
  auto centered = [](OptimizerConfig& c) { c.centered = true; };
  return {
      {"sgd", config("sgd")},
      {"sgd_momentum", config("sgd", 0.9)},
      {"sgd_nesterov", config("sgd", 0.9, true)},
      {"sgd_wd", config("sgd", 0.0, false, 5e-4)},
      {"adam", config("adam")},
      {"adam_wd", config("adam", 0.0, false, 1e-2)},
      {"adamw_wd", config("adamw", 0.0, false, 1e-2)},
      {"adamw_tiny_eps", config("adamw", 0.0, false, 1e-2, 1e-12)},
      {"adagrad", config("adagrad")},
      {"adagrad_wd", config("adagrad", 0.0, false, 1e-2)},
      {"adagrad_init", with(config("adagrad"), [](auto& c) { c.initial_accumulator = 0.1; })},
      {"adagrad_tiny_eps", config("adagrad", 0.0, false, 1e-2, 1e-12)},
      {"rmsprop", config("rmsprop")},
      {"rmsprop_wd_alpha", with(config("rmsprop", 0.0, false, 1e-2), [](auto& c) { c.alpha = 0.9; })},
      {"rmsprop_momentum", config("rmsprop", 0.9)},
      {"rmsprop_centered", with(config("rmsprop"), centered)},
      {"rmsprop_centered_momentum_wd", with(config("rmsprop", 0.5, false, 1e-2), centered)},
      // Lion: the real sign update (D of the default surrogate, tanh at τ = 1e-3, or the honest 0)
      // and the surrogate updates themselves (τ on the scale of the test gradients).
      {"lion", lion("tanh", 1e-3)},
      {"lion_zero_wd", lion("zero", 1e-3, 0.1)},
      {"lion_smooth_tanh", lion("tanh", 0.5), true},
      {"lion_smooth_tanh_wd", lion("tanh", 0.2, 0.1), true},
      {"lion_smooth_identity_wd", lion("identity", 1e-3, 0.1), true},
      {"lamb", config("lamb")},
      {"lamb_wd", config("lamb", 0.0, false, 1e-2)},
      {"lamb_groups", lamb_groups(0.0)},
      {"lamb_groups_wd", lamb_groups(1e-2)},
  };
}

bool is_adam(const OptimizerConfig& c) { return c.name == "adam" || c.name == "adamw"; }
/// Weight decay that is added to the gradient (g' = g + wd·θ); AdamW, Lion and LAMB decouple it.
double l2_of(const OptimizerConfig& c) {
  return c.name == "adamw" || c.name == "lion" || c.name == "lamb" ? 0.0 : c.weight_decay;
}
/// D is a diagonal matrix (all but LAMB).
bool diagonal(const Case& c) { return c.cfg.name != "lamb"; }
/// D is the derivative of the update step() applies (all but Lion's sign update with a nonzero
/// surrogate, whose true derivative is 0 almost everywhere).
bool d_of_real_update(const Case& c) {
  return c.cfg.name != "lion" || c.lion_smooth || c.cfg.lion_surrogate == "zero";
}
/// D ≡ 0 (Lion's honest adaptation).
bool d_is_zero(const Case& c) { return c.cfg.name == "lion" && c.cfg.lion_surrogate == "zero"; }
/// The first step's update is a function of g'/ε alone (u = lr·g'/(c·|g'| + ε)): D is resolvable
/// only for |g'| ~ ε.
bool first_step_scale_free(const Case& c) {
  const auto& n = c.cfg.name;
  return is_adam(c.cfg) || n == "rmsprop" || n == "lamb" || (n == "adagrad" && c.cfg.initial_accumulator == 0.0);
}

template <class T>
std::unique_ptr<Optimizer<T>> make(const Case& c, std::size_t n) {
  if (!c.lion_smooth) return make_optimizer<T>(c.cfg, n);
  return std::make_unique<sama::optim::Lion<T>>(n, c.cfg.beta1, c.cfg.beta2, c.cfg.weight_decay,
                                                sama::optim::parse_lion_surrogate(c.cfg.lion_surrogate),
                                                c.cfg.lion_temperature, true);
}

struct Step {
  std::vector<double> grad;
  double lr;
};

/// A random history of `steps` steps with changing gradient scales and learning rates.
std::vector<Step> random_history(sama::Rng& rng, std::size_t n, int steps) {
  std::vector<Step> h;
  for (int k = 0; k < steps; ++k) {
    const double scale = 1.0 + 0.5 * std::sin(0.7 * k);
    h.push_back({normal_vec(rng, n, scale), 0.1 * (1.0 + 0.1 * (k % 3))});
  }
  return h;
}

/// A fresh optimizer and θ with `history` replayed from theta0: every call gives bitwise the same state.
template <class T>
std::pair<std::unique_ptr<Optimizer<T>>, Vec<T>> replay(const Case& c, const std::vector<double>& theta0,
                                                          const std::vector<Step>& history) {
  auto opt = make<T>(c, theta0.size());
  std::vector<T> th(theta0.begin(), theta0.end());
  Vec<T> theta = to_device(th, "theta");
  for (const auto& s : history) {
    std::vector<T> g(s.grad.begin(), s.grad.end());
    Vec<T> grad = to_device(g, "grad");
    opt->step(theta, grad, s.lr);
  }
  return {std::move(opt), theta};
}

std::vector<double> adaptation_diag(const Optimizer<double>& opt, std::size_t n) {
  Vec<double> ones("ones", n);
  Kokkos::deep_copy(ones, 1.0);
  Vec<double> d("d", n);
  opt.apply_adaptation(ones, d);
  return to_host(d);
}

/// Checks apply_adaptation(ones) against a central difference of the update u = θ_before − θ_after
/// for the step with gradient g' (the gradient after L2 decay) taken after `history`. h_i =
/// 1e-6·(|g'_i| + hscale): the update varies with g on the scale |g'| + ε at the first Adam step and
/// on the scale of √v̂ ~ 1 later. Returns the number of elements where the check is sharp (round-off
/// in the difference well below the relative tolerance).
std::size_t check_fd(const Case& c, const std::vector<double>& theta0, const std::vector<Step>& history,
                     const std::vector<double>& gprime, double lr, double hscale) {
  const std::size_t n = theta0.size();
  // θ before the checked step (identical in every replay).
  auto [opt0, theta_v] = replay<double>(c, theta0, history);
  const auto theta_before = to_host(theta_v);
  std::vector<double> g(n), h(n), gp(n), gm(n);
  const double l2 = l2_of(c.cfg);
  for (std::size_t i = 0; i < n; ++i) {
    g[i] = gprime[i] - l2 * theta_before[i];
    h[i] = 1e-6 * (std::abs(gprime[i]) + hscale);
    gp[i] = g[i] + h[i];
    gm[i] = g[i] - h[i];
  }

  Vec<double> grad = to_device(g);
  opt0->step(theta_v, grad, lr);
  const auto theta_after = to_host(theta_v);
  const auto d = adaptation_diag(*opt0, n);

  auto [opt_p, theta_p] = replay<double>(c, theta0, history);
  EXPECT_EQ(to_host(theta_p), theta_before);
  opt_p->step(theta_p, to_device(gp), lr);
  const auto after_p = to_host(theta_p);
  auto [opt_m, theta_m] = replay<double>(c, theta0, history);
  opt_m->step(theta_m, to_device(gm), lr);
  const auto after_m = to_host(theta_m);

  std::size_t sharp = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double up = theta_before[i] - after_p[i];
    const double um = theta_before[i] - after_m[i];
    // The perturbations actually applied (g ± h rounds; the difference of nearby doubles is exact).
    const double hp = gp[i] - g[i];
    const double hm = g[i] - gm[i];
    const double d_fd = (up - um) / (hp + hm);
    // Round-off of θ_before − θ_after±, amplified by 1/(2h).
    const double u = theta_before[i] - theta_after[i];
    const double roundoff = 8.0 * DBL_EPSILON * (std::abs(theta_before[i]) + std::abs(u)) / (2.0 * h[i]);
    const double tol = 1e-6 * std::abs(d[i]) + roundoff;
    EXPECT_NEAR(d[i], d_fd, tol) << c.label << " element " << i << " step " << history.size() + 1
                                 << " g'=" << gprime[i];
    if (roundoff < 0.5e-6 * std::abs(d[i])) ++sharp;
  }
  return sharp;
}

// ------------------------------------------------------------------ D against finite differences

// Element-wise D (all but LAMB, which has its own tests below). For Lion's sign update only the
// honest surrogate "zero" is the derivative of the real update; the other surrogates are checked
// through the surrogate update (lion_smooth). D ≡ 0 has no sharp elements by construction, but any
// nonzero D would exceed the round-off tolerance of an exactly-zero difference.
TEST(OptimAdaptation, FiniteDifferenceFirstStep) {
  for (const auto& c : all_cases()) {
    if (!diagonal(c) || !d_of_real_update(c)) continue;
    sama::Rng rng(11, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    std::vector<double> gprime(kN);
    const double eps = c.cfg.eps;
    const bool scale_free = first_step_scale_free(c);
    for (auto& x : gprime) {
      // At the first Adam step u = lr·g'/(|g'|+ε): D = lr·ε/(|g'|+ε)² is only resolvable for |g'| ~ ε.
      const double mag = scale_free ? eps * std::pow(10.0, rng.uniform(-1.0, 1.0)) : 1.0;
      x = mag * rng.normal();
    }
    const double hscale = scale_free ? eps : 1.0;
    const auto sharp = check_fd(c, theta0, {}, gprime, 0.1, hscale);
    if (!d_is_zero(c)) EXPECT_GE(sharp, kN * 3 / 4) << c.label << ": finite-difference check too blunt";
  }
}

TEST(OptimAdaptation, FiniteDifferenceLateInTraining) {
  for (const auto& c : all_cases()) {
    if (!diagonal(c) || !d_of_real_update(c)) continue;
    sama::Rng rng(12, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    const auto history = random_history(rng, kN, 50);
    const auto gprime = normal_vec(rng, kN);
    const auto sharp = check_fd(c, theta0, history, gprime, 0.07, 1.0);
    if (!d_is_zero(c)) EXPECT_GE(sharp, kN * 3 / 4) << c.label << ": finite-difference check too blunt";
  }
}

TEST(OptimAdaptation, AppliesDiagonalAndAllowsAliasing) {
  for (const auto& c : all_cases()) {
    if (!diagonal(c)) continue;
    sama::Rng rng(13, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    auto [opt, theta] = replay<double>(c, theta0, random_history(rng, kN, 7));
    const auto d = adaptation_diag(*opt, kN);
    const auto vh = normal_vec(rng, kN);
    Vec<double> v = to_device(vh);
    Vec<double> out("out", kN);
    opt->apply_adaptation(v, out);
    const auto outh = to_host(out);
    for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(outh[i], d[i] * vh[i]) << c.label << " " << i;
    // out aliasing v.
    opt->apply_adaptation(v, v);
    EXPECT_EQ(to_host(v), outh) << c.label;
    // D does not change the optimizer state: the same D again.
    EXPECT_EQ(adaptation_diag(*opt, kN), d) << c.label;
  }
}

TEST(OptimAdaptation, ThrowsBeforeFirstStep) {
  for (const auto& c : all_cases()) {
    auto opt = make<double>(c, kN);
    EXPECT_EQ(opt->steps(), 0);
    Vec<double> v("v", kN);
    EXPECT_THROW(opt->apply_adaptation(v, v), sama::Error) << c.label;
  }
}

TEST(OptimAdaptation, SgdScale) {
  sama::Rng rng(14);
  for (const auto& c : all_cases()) {
    if (c.cfg.name != "sgd") continue;
    auto [opt, theta] = replay<double>(c, normal_vec(rng, kN), random_history(rng, kN, 3));
    const double lr = opt->last_lr();
    const double expect = c.cfg.nesterov ? lr * (1.0 + c.cfg.momentum) : lr;
    for (double x : adaptation_diag(*opt, kN)) EXPECT_DOUBLE_EQ(x, expect) << c.label;
  }
}

// ------------------------------------------------------------------ LAMB: the full Jacobian

/// A point at which LAMB's D is checked: the step with gradient g (after `history`) at lr.
struct LambPoint {
  std::string what;
  std::vector<double> theta0;
  std::vector<Step> history;
  std::vector<double> g;
  std::vector<double> scale;  // the scale on which u varies with g_i (for directions and h)
  double lr;
};

/// The first step (u varies with g on the scale |g| + ε, as for Adam; with several groups the last
/// one starts at θ = 0, so its trust ratio is the constant 1) and a step late in training.
std::vector<LambPoint> lamb_points(const Case& c) {
  sama::Rng rng(21, 0, std::hash<std::string>{}(c.label));
  const double eps = c.cfg.eps;
  LambPoint first{"first step", normal_vec(rng, kN, 0.5), {}, std::vector<double>(kN), std::vector<double>(kN), 0.1};
  for (std::size_t i = 0; i < kN; ++i) {
    first.g[i] = eps * std::pow(10.0, rng.uniform(-1.0, 1.0)) * rng.normal();
    first.scale[i] = std::abs(first.g[i]) + eps;
  }
  if (!c.cfg.groups.empty()) {
    const auto [off, cnt] = c.cfg.groups.back();
    for (std::size_t i = off; i < off + cnt; ++i) first.theta0[i] = 0.0;
  }
  LambPoint late{"late step", normal_vec(rng, kN, 0.5), {}, {}, std::vector<double>(kN, 1.0), 0.07};
  late.history = random_history(rng, kN, 50);
  late.g = normal_vec(rng, kN);
  return {first, late};
}

/// θ before the step and u(g) = θ_before − θ_after, from a fresh replay.
std::pair<std::vector<double>, std::vector<double>> lamb_update(const Case& c, const LambPoint& p,
                                                                const std::vector<double>& g) {
  auto [opt, theta] = replay<double>(c, p.theta0, p.history);
  const auto before = to_host(theta);
  opt->step(theta, to_device(g), p.lr);
  auto u = to_host(theta);
  for (std::size_t i = 0; i < kN; ++i) u[i] = before[i] - u[i];
  return {before, u};
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::abs(v));
  return m;
}

std::vector<double> lamb_apply(const sama::optim::Lamb<double>& opt, const std::vector<double>& v, bool transpose) {
  Vec<double> out("out", v.size());
  if (transpose) {
    opt.apply_adaptation(to_device(v), out);
  } else {
    opt.apply_jacobian(to_device(v), out);
  }
  return to_host(out);
}

TEST(OptimLamb, JacobianVectorProductMatchesFiniteDifference) {
  for (const auto& c : all_cases()) {
    if (c.cfg.name != "lamb") continue;
    for (const auto& p : lamb_points(c)) {
      const std::string what = c.label + " " + p.what;
      sama::Rng rng(22, 0, std::hash<std::string>{}(what));
      std::vector<double> v(kN), gp(kN), gm(kN);
      const double h = 1e-4;
      for (std::size_t i = 0; i < kN; ++i) {
        v[i] = p.scale[i] * rng.normal();
        gp[i] = p.g[i] + h * v[i];
        gm[i] = p.g[i] - h * v[i];
      }
      auto [opt, theta] = replay<double>(c, p.theta0, p.history);
      opt->step(theta, to_device(p.g), p.lr);
      const auto& lamb = dynamic_cast<const sama::optim::Lamb<double>&>(*opt);
      const auto dv = lamb_apply(lamb, v, false);
      const auto dtv = lamb_apply(lamb, v, true);
      const auto [before, up] = lamb_update(c, p, gp);
      const auto um = lamb_update(c, p, gm).second;
      const double dmax = max_abs(dv);
      ASSERT_GT(dmax, 0.0) << what;
      double tol_max = 0, diff_max = 0;
      for (std::size_t i = 0; i < kN; ++i) {
        const double fd = (up[i] - um[i]) / (2 * h);
        const double roundoff = 8.0 * DBL_EPSILON * (std::abs(before[i]) + std::abs(up[i])) / (2 * h);
        const double tol = 1e-6 * dmax + roundoff;
        EXPECT_NEAR(dv[i], fd, tol) << what << " element " << i;
        tol_max = std::max(tol_max, tol);
        diff_max = std::max(diff_max, std::abs(dv[i] - dtv[i]));
      }
      EXPECT_LT(tol_max, 1e-5 * dmax) << what << ": finite-difference check too blunt";
      // The check can tell D from Dᵀ (LAMB's D is not symmetric).
      EXPECT_GT(diff_max, 100 * tol_max) << what << ": D·v and Dᵀv indistinguishable";
    }
  }
}

// apply_adaptation is Dᵀw: component j is ∂⟨w, u⟩/∂g_j, checked by a central difference per j; and
// ⟨w, D v⟩ = ⟨Dᵀw, v⟩. D is block-diagonal: a direction inside one group moves only that group.
TEST(OptimLamb, AdaptationIsTheTransposeProduct) {
  for (const auto& c : all_cases()) {
    if (c.cfg.name != "lamb") continue;
    for (const auto& p : lamb_points(c)) {
      const std::string what = c.label + " " + p.what;
      sama::Rng rng(23, 0, std::hash<std::string>{}(what));
      const auto w = normal_vec(rng, kN);
      const auto v = normal_vec(rng, kN);
      auto [opt, theta] = replay<double>(c, p.theta0, p.history);
      opt->step(theta, to_device(p.g), p.lr);
      const auto& lamb = dynamic_cast<const sama::optim::Lamb<double>&>(*opt);
      const auto dtw = lamb_apply(lamb, w, true);
      const double dmax = max_abs(dtw);
      ASSERT_GT(dmax, 0.0) << what;
      std::size_t sharp = 0;
      for (std::size_t j = 0; j < kN; ++j) {
        const double h = 1e-4 * p.scale[j];
        auto gp = p.g, gm = p.g;
        gp[j] += h;
        gm[j] -= h;
        const auto [before, up] = lamb_update(c, p, gp);
        const auto um = lamb_update(c, p, gm).second;
        double fd = 0, mag = 0;
        for (std::size_t i = 0; i < kN; ++i) {
          fd += w[i] * (up[i] - um[i]);
          mag += std::abs(w[i]) * (std::abs(before[i]) + std::abs(up[i]));
        }
        fd /= (gp[j] - p.g[j]) + (p.g[j] - gm[j]);
        const double roundoff = 8.0 * DBL_EPSILON * mag / (2 * h);
        EXPECT_NEAR(dtw[j], fd, 1e-6 * dmax + roundoff) << what << " component " << j;
        if (roundoff < 1e-7 * dmax) ++sharp;
      }
      EXPECT_GE(sharp, kN * 3 / 4) << what << ": finite-difference check too blunt";

      const auto dv = lamb_apply(lamb, v, false);
      double lhs = 0, rhs = 0, mag = 0;
      for (std::size_t i = 0; i < kN; ++i) {
        lhs += w[i] * dv[i];
        rhs += dtw[i] * v[i];
        mag += std::abs(w[i] * dv[i]) + std::abs(dtw[i] * v[i]);
      }
      EXPECT_NEAR(lhs, rhs, 1e-13 * mag) << what;

      const auto groups = c.cfg.groups.empty() ? std::vector<std::pair<std::size_t, std::size_t>>{{0, kN}}
                                               : c.cfg.groups;
      for (const auto& [off, cnt] : groups) {
        std::vector<double> inside(kN, 0.0);
        for (std::size_t i = off; i < off + cnt; ++i) inside[i] = v[i];
        for (bool transpose : {false, true}) {
          const auto out = lamb_apply(lamb, inside, transpose);
          for (std::size_t i = 0; i < kN; ++i)
            if (i < off || i >= off + cnt) EXPECT_EQ(out[i], 0.0) << what << " group at " << off << " element " << i;
        }
      }
    }
  }
}

TEST(OptimLamb, TrustRatioOfZeroGroupIsOneAndItsBlockDiagonal) {
  Case c{"lamb_groups", lamb_groups(1e-2)};
  const auto p = lamb_points(c).front();  // the last group starts at θ = 0
  auto [opt, theta] = replay<double>(c, p.theta0, p.history);
  opt->step(theta, to_device(p.g), p.lr);
  const auto& lamb = dynamic_cast<const sama::optim::Lamb<double>&>(*opt);
  const auto rho = lamb.trust_ratios();
  ASSERT_EQ(rho.size(), 3u);
  EXPECT_EQ(rho[2], 1.0);
  EXPECT_NE(rho[0], 1.0);
  // There D is diagonal: D·v = Dᵀv = D ⊙ v.
  sama::Rng rng(24);
  std::vector<double> v(kN, 0.0), e(kN, 0.0);
  v[36] = rng.normal();
  e[36] = 1.0;
  const double d = lamb_apply(lamb, e, false)[36];
  EXPECT_GT(d, 0.0);
  EXPECT_DOUBLE_EQ(lamb_apply(lamb, v, false)[36], d * v[36]);
  EXPECT_DOUBLE_EQ(lamb_apply(lamb, v, true)[36], d * v[36]);
}

TEST(OptimLamb, AllowsAliasing) {
  for (const auto& c : all_cases()) {
    if (c.cfg.name != "lamb") continue;
    const auto p = lamb_points(c).back();
    auto [opt, theta] = replay<double>(c, p.theta0, p.history);
    opt->step(theta, to_device(p.g), p.lr);
    const auto& lamb = dynamic_cast<const sama::optim::Lamb<double>&>(*opt);
    sama::Rng rng(25);
    const auto vh = normal_vec(rng, kN);
    for (bool transpose : {false, true}) {
      const auto want = lamb_apply(lamb, vh, transpose);
      Vec<double> v = to_device(vh);
      if (transpose) {
        lamb.apply_adaptation(v, v);
      } else {
        lamb.apply_jacobian(v, v);
      }
      EXPECT_EQ(to_host(v), want) << c.label << (transpose ? " Dᵀv" : " D·v");
    }
  }
}

// ------------------------------------------------------------------ state round trip (checkpoints)

/// The documented names of state(), in order.
std::vector<std::string> expected_state(const Case& c) {
  const auto& n = c.cfg.name;
  if (is_adam(c.cfg)) return {"exp_avg", "exp_avg_sq", "last_grad"};
  if (n == "sgd") {
    if (c.cfg.momentum > 0.0) return {"momentum_buffer"};
    return {};
  }
  if (n == "adagrad") return {"sum", "last_grad"};
  if (n == "rmsprop") {
    std::vector<std::string> names{"square_avg"};
    if (c.cfg.centered) names.push_back("grad_avg");
    if (c.cfg.momentum > 0.0) names.push_back("momentum_buffer");
    names.push_back("last_grad");
    return names;
  }
  if (n == "lion") return {"exp_avg", "last_interp"};
  return {"exp_avg", "exp_avg_sq", "last_grad", "last_update", "param_norm"};  // lamb
}

template <class T>
std::vector<T> adaptation_of(const Optimizer<T>& opt, const std::vector<T>& v) {
  Vec<T> out("out", v.size());
  opt.apply_adaptation(to_device(v), out);
  return to_host(out);
}

/// A checkpoint in miniature: N steps, state() + steps + last_lr copied into a fresh instance, then
/// both continue with the same gradients: θ and D stay bitwise identical. Without the copied state
/// the fresh instance would diverge (checked, so the test can fail).
template <class T>
void check_restore(const Case& c) {
  sama::Rng rng(15, 0, std::hash<std::string>{}(c.label));
  const auto theta0 = normal_vec(rng, kN, 0.5);
  auto [opt, theta] = replay<T>(c, theta0, random_history(rng, kN, 9));
  const auto st = opt->state();
  const auto names = expected_state(c);
  ASSERT_EQ(st.size(), names.size()) << c.label;
  for (std::size_t k = 0; k < st.size(); ++k) {
    EXPECT_EQ(st[k].first, names[k]) << c.label;
    const std::size_t len = st[k].first == "param_norm" ? (c.cfg.groups.empty() ? 1 : c.cfg.groups.size()) : kN;
    EXPECT_EQ(st[k].second.extent(0), len) << c.label << " " << st[k].first;
  }

  auto fresh = make<T>(c, kN);
  auto naive = make<T>(c, kN);  // steps and lr restored, state not
  auto fst = fresh->state();
  ASSERT_EQ(fst.size(), st.size());
  for (std::size_t k = 0; k < st.size(); ++k) Kokkos::deep_copy(fst[k].second, st[k].second);
  for (auto* o : {fresh.get(), naive.get()}) {
    o->set_steps(opt->steps());
    o->set_last_lr(opt->last_lr());
  }
  EXPECT_EQ(fresh->steps(), 9);
  const auto probe = [&] {
    const auto h = normal_vec(rng, kN);
    return std::vector<T>(h.begin(), h.end());
  }();
  EXPECT_EQ(adaptation_of(*fresh, probe), adaptation_of(*opt, probe)) << c.label;

  Vec<T> theta2("theta2", kN), theta3("theta3", kN);
  Kokkos::deep_copy(theta2, theta);
  Kokkos::deep_copy(theta3, theta);
  for (int k = 0; k < 4; ++k) {
    const auto gh = normal_vec(rng, kN);
    const auto g = to_device(std::vector<T>(gh.begin(), gh.end()));
    const double lr = 0.05 * (1 + k);
    opt->step(theta, g, lr);
    fresh->step(theta2, g, lr);
    naive->step(theta3, g, lr);
    EXPECT_EQ(to_host(theta2), to_host(theta)) << c.label << " continued step " << k + 1;
    EXPECT_EQ(adaptation_of(*fresh, probe), adaptation_of(*opt, probe)) << c.label << " continued step " << k + 1;
    if (auto* lamb = dynamic_cast<sama::optim::Lamb<T>*>(opt.get())) {
      Vec<T> a("a", kN), b("b", kN);
      lamb->apply_jacobian(to_device(probe), a);
      dynamic_cast<sama::optim::Lamb<T>&>(*fresh).apply_jacobian(to_device(probe), b);
      EXPECT_EQ(to_host(a), to_host(b)) << c.label;
    }
  }
  if (!st.empty()) EXPECT_NE(to_host(theta3), to_host(theta)) << c.label << ": the state does not matter?";
}

TEST(OptimState, RestoreFromStateContinuesBitwise) {
  for (const auto& c : all_cases()) {
    check_restore<double>(c);
    check_restore<float>(c);  // the trainer's type: checkpoints hold floats
  }
}

// ------------------------------------------------------------------ naive scalar references

struct RefAdam {
  double b1, b2, eps, wd;
  bool decoupled;
  std::vector<double> m, v, g_last;
  long t = 0;
  double lr_last = 0.0;

  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    ++t;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      double g = grad[i];
      if (decoupled) {
        theta[i] = theta[i] - lr * wd * theta[i];
      } else {
        g = g + wd * theta[i];
      }
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double mhat = m[i] / (1 - std::pow(b1, t));
      const double vhat = v[i] / (1 - std::pow(b2, t));
      theta[i] = theta[i] - lr * mhat / (std::sqrt(vhat) + eps);
      g_last[i] = g;
    }
    lr_last = lr;
  }
  double D(std::size_t i) const {
    const double a = (1 - b1) / (1 - std::pow(b1, t));
    const double b = 2 * (1 - b2) / (1 - std::pow(b2, t));
    const double mhat = m[i] / (1 - std::pow(b1, t));
    const double s = std::sqrt(v[i] / (1 - std::pow(b2, t)));
    double d = a / (s + eps);
    if (s > 0) d -= mhat * b * g_last[i] / (2 * s * (s + eps) * (s + eps));
    return lr_last * d;
  }
};

struct RefSgd {
  double mu, wd;
  bool nesterov;
  std::vector<double> buf;
  long t = 0;

  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    for (std::size_t i = 0; i < theta.size(); ++i) {
      double d = grad[i] + wd * theta[i];
      if (mu != 0) {
        buf[i] = t == 0 ? d : mu * buf[i] + d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      theta[i] -= lr * d;
    }
    ++t;
  }
};

void expect_rel(const std::vector<double>& got, const std::vector<double>& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], rtol * std::max(std::abs(want[i]), 1e-300)) << what << " element " << i;
  }
}

TEST(OptimReference, AdamAndAdamWMatchNaiveImplementation) {
  for (const auto& c : all_cases()) {
    if (!is_adam(c.cfg)) continue;
    sama::Rng rng(16, 0, std::hash<std::string>{}(c.label));
    auto theta_h = normal_vec(rng, kN, 0.5);
    RefAdam ref{c.cfg.beta1, c.cfg.beta2, c.cfg.eps, c.cfg.weight_decay, c.cfg.name == "adamw",
                std::vector<double>(kN, 0.0), std::vector<double>(kN, 0.0), std::vector<double>(kN, 0.0)};
    auto opt = make<double>(c, kN);
    EXPECT_EQ(opt->name(), c.cfg.name);
    Vec<double> theta = to_device(theta_h);
    for (int k = 0; k < 6; ++k) {
      const auto g = normal_vec(rng, kN, 1.0 + k);
      const double lr = 1e-2 * (k + 1);
      ref.step(theta_h, g, lr);
      opt->step(theta, to_device(g), lr);
      EXPECT_EQ(opt->steps(), k + 1);
      const std::string what = c.label + " step " + std::to_string(k + 1);
      expect_rel(to_host(theta), theta_h, 1e-12, what + " theta");
      const auto st = opt->state();
      expect_rel(to_host(st[0].second), ref.m, 1e-12, what + " exp_avg");
      expect_rel(to_host(st[1].second), ref.v, 1e-12, what + " exp_avg_sq");
      expect_rel(to_host(st[2].second), ref.g_last, 1e-12, what + " last_grad");
      if (k >= 2) {  // step 1 D = lr·ε/(|g'|+ε)² is a cancellation in any formula; FD tests cover it
        std::vector<double> dref(kN);
        for (std::size_t i = 0; i < kN; ++i) dref[i] = ref.D(i);
        expect_rel(adaptation_diag(*opt, kN), dref, 1e-12, what + " D");
      }
    }
  }
}

TEST(OptimReference, SgdMatchesNaiveImplementation) {
  for (const auto& c : all_cases()) {
    if (c.cfg.name != "sgd") continue;
    sama::Rng rng(17, 0, std::hash<std::string>{}(c.label));
    auto theta_h = normal_vec(rng, kN, 0.5);
    RefSgd ref{c.cfg.momentum, c.cfg.weight_decay, c.cfg.nesterov, std::vector<double>(kN, 0.0)};
    auto opt = make<double>(c, kN);
    EXPECT_EQ(opt->name(), "sgd");
    Vec<double> theta = to_device(theta_h);
    for (int k = 0; k < 6; ++k) {
      const auto g = normal_vec(rng, kN);
      const double lr = 0.1 / (k + 1);
      ref.step(theta_h, g, lr);
      opt->step(theta, to_device(g), lr);
      const std::string what = c.label + " step " + std::to_string(k + 1);
      expect_rel(to_host(theta), theta_h, 1e-12, what + " theta");
      if (c.cfg.momentum > 0) expect_rel(to_host(opt->state()[0].second), ref.buf, 1e-12, what + " buffer");
    }
  }
}

// Naive references for Adagrad, RMSprop, Lion and LAMB. Each names its state like the optimizer.
using NamedState = std::map<std::string, std::vector<double>>;

struct RefAdagrad {
  double eps, wd;
  std::vector<double> s, g_last;
  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const double g = grad[i] + wd * theta[i];
      s[i] += g * g;
      theta[i] -= lr * g / (std::sqrt(s[i]) + eps);
      g_last[i] = g;
    }
  }
  NamedState state() const { return {{"sum", s}, {"last_grad", g_last}}; }
};

struct RefRmsprop {
  double alpha, eps, mu, wd;
  bool centered;
  std::vector<double> v, ga, buf, g_last;
  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const double g = grad[i] + wd * theta[i];
      v[i] = alpha * v[i] + (1 - alpha) * g * g;
      double w = v[i];
      if (centered) {
        ga[i] = alpha * ga[i] + (1 - alpha) * g;
        w = std::max(v[i] - ga[i] * ga[i], 0.0);
      }
      const double q = g / (std::sqrt(w) + eps);
      if (mu > 0) {
        buf[i] = mu * buf[i] + q;
        theta[i] -= lr * buf[i];
      } else {
        theta[i] -= lr * q;
      }
      g_last[i] = g;
    }
  }
  NamedState state() const {
    return {{"square_avg", v}, {"grad_avg", ga}, {"momentum_buffer", buf}, {"last_grad", g_last}};
  }
};

struct RefLion {
  double b1, b2, wd;
  std::string phi;  // "sign" (the real update), "tanh", "identity" (surrogate updates)
  double tau;
  std::vector<double> m, c_last;
  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const double c = b1 * m[i] + (1 - b1) * grad[i];
      const double dir = phi == "sign" ? (c > 0 ? 1.0 : (c < 0 ? -1.0 : 0.0)) : phi == "tanh" ? std::tanh(c / tau) : c;
      theta[i] = theta[i] * (1 - lr * wd) - lr * dir;
      m[i] = b2 * m[i] + (1 - b2) * grad[i];
      c_last[i] = c;
    }
  }
  NamedState state() const { return {{"exp_avg", m}, {"last_interp", c_last}}; }
};

struct RefLamb {
  double b1, b2, eps, wd;
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  std::vector<double> m, v, g_last, r, pn, rho;
  long t = 0;
  void step(std::vector<double>& theta, const std::vector<double>& grad, double lr) {
    ++t;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * grad[i];
      v[i] = b2 * v[i] + (1 - b2) * grad[i] * grad[i];
      const double mhat = m[i] / (1 - std::pow(b1, t));
      const double vhat = v[i] / (1 - std::pow(b2, t));
      r[i] = mhat / (std::sqrt(vhat) + eps) + wd * theta[i];
      g_last[i] = grad[i];
    }
    pn.assign(groups.size(), 0.0);
    rho.assign(groups.size(), 1.0);
    for (std::size_t k = 0; k < groups.size(); ++k) {
      const auto [off, cnt] = groups[k];
      double tt = 0, rr = 0;
      for (std::size_t i = off; i < off + cnt; ++i) {
        tt += theta[i] * theta[i];
        rr += r[i] * r[i];
      }
      pn[k] = std::sqrt(tt);
      if (tt > 0 && rr > 0) rho[k] = std::sqrt(tt) / std::sqrt(rr);
      for (std::size_t i = off; i < off + cnt; ++i) theta[i] -= lr * rho[k] * r[i];
    }
  }
  NamedState state() const {
    return {{"exp_avg", m}, {"exp_avg_sq", v}, {"last_grad", g_last}, {"last_update", r}, {"param_norm", pn}};
  }
};

/// Six steps of the optimizer against the reference: θ and every state vector to 1e-12.
template <class Ref>
void check_against(const Case& c, Ref ref, std::uint64_t seed) {
  sama::Rng rng(seed, 0, std::hash<std::string>{}(c.label));
  auto theta_h = normal_vec(rng, kN, 0.5);
  auto opt = make<double>(c, kN);
  EXPECT_EQ(opt->name(), c.cfg.name);
  Vec<double> theta = to_device(theta_h);
  for (int k = 0; k < 6; ++k) {
    const auto g = normal_vec(rng, kN, 1.0 + 0.5 * k);
    const double lr = 1e-2 * (k + 1);
    ref.step(theta_h, g, lr);
    opt->step(theta, to_device(g), lr);
    EXPECT_EQ(opt->steps(), k + 1);
    const std::string what = c.label + " step " + std::to_string(k + 1);
    expect_rel(to_host(theta), theta_h, 1e-12, what + " theta");
    const NamedState want = ref.state();
    for (const auto& [name, vec] : opt->state()) {
      const auto it = want.find(name);
      ASSERT_NE(it, want.end()) << what << ": no reference for " << name;
      expect_rel(to_host(vec), it->second, 1e-12, what + " " + name);
    }
  }
  if constexpr (std::is_same_v<Ref, RefLamb>) {
    const auto& lamb = dynamic_cast<const sama::optim::Lamb<double>&>(*opt);
    expect_rel(lamb.trust_ratios(), ref.rho, 1e-12, c.label + " trust ratios");
    for (double x : ref.rho) EXPECT_NE(x, 1.0) << c.label << ": every group's trust ratio should be exercised";
  }
}

TEST(OptimReference, AdagradRmspropLionLambMatchNaiveImplementations) {
  const std::vector<double> zeros(kN, 0.0);
  int checked = 0;
  for (const auto& c : all_cases()) {
    const auto& o = c.cfg;
    if (o.name == "adagrad") {
      check_against(c, RefAdagrad{o.eps, o.weight_decay, std::vector<double>(kN, o.initial_accumulator), zeros}, 19);
    } else if (o.name == "rmsprop") {
      check_against(c, RefRmsprop{o.alpha, o.eps, o.momentum, o.weight_decay, o.centered, zeros, zeros, zeros, zeros},
                    19);
    } else if (o.name == "lion") {
      const std::string phi = c.lion_smooth && o.lion_surrogate != "zero" ? o.lion_surrogate : "sign";
      check_against(c, RefLion{o.beta1, o.beta2, o.weight_decay, phi, o.lion_temperature, zeros, zeros}, 19);
    } else if (o.name == "lamb") {
      auto groups = o.groups.empty() ? std::vector<std::pair<std::size_t, std::size_t>>{{0, kN}} : o.groups;
      check_against(c, RefLamb{o.beta1, o.beta2, o.eps, o.weight_decay, groups, zeros, zeros, zeros, zeros}, 19);
    } else {
      continue;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

/// Lion's real update is the sign update whatever the surrogate: |Δθ| = lr exactly after the
/// decoupled decay, the same trajectory for tanh, identity and zero.
TEST(OptimReference, LionStepIsTheSignUpdateForEverySurrogate) {
  sama::Rng rng(20);
  const auto theta0 = normal_vec(rng, kN, 0.5);
  const auto history = random_history(rng, kN, 6);
  std::vector<std::vector<double>> finals;
  for (const std::string sur : {"tanh", "identity", "zero"}) {
    const Case c{"lion_" + sur, lion(sur, 1e-3, 0.1)};
    auto opt = make<double>(c, kN);
    std::vector<double> th = theta0;
    Vec<double> theta = to_device(th);
    for (const auto& s : history) {
      opt->step(theta, to_device(s.grad), s.lr);
      const auto after = to_host(theta);
      const auto interp = to_host(opt->state()[1].second);
      for (std::size_t i = 0; i < kN; ++i) {
        const double moved = th[i] * (1 - s.lr * c.cfg.weight_decay) - after[i];
        const double sign = interp[i] > 0 ? 1.0 : -1.0;
        EXPECT_NEAR(moved, s.lr * sign, 4 * DBL_EPSILON * (std::abs(th[i]) + s.lr)) << sur << " element " << i;
      }
      th = after;
    }
    finals.push_back(th);
  }
  EXPECT_EQ(finals[0], finals[1]);
  EXPECT_EQ(finals[0], finals[2]);
}

// ------------------------------------------------------------------ float instantiation

TEST(OptimFloat, FloatStepsMatchDouble) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(18, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    const auto history = random_history(rng, kN, 5);
    auto [od, td] = replay<double>(c, theta0, history);
    auto [of, tf] = replay<float>(c, theta0, history);
    EXPECT_EQ(of->name(), od->name());
    const auto thd = to_host(td);
    const auto thf = to_host(tf);
    for (std::size_t i = 0; i < kN; ++i) {
      EXPECT_NEAR(thf[i], thd[i], 1e-6 * std::max(1.0, std::abs(thd[i]))) << c.label << " " << i;
    }
    // D in float against double, relative to the largest |D|.
    const auto dd = adaptation_diag(*od, kN);
    Vec<float> ones("ones", kN), df("df", kN);
    Kokkos::deep_copy(ones, 1.0f);
    of->apply_adaptation(ones, df);
    const auto dfh = to_host(df);
    double dmax = 0;
    for (double x : dd) dmax = std::max(dmax, std::abs(x));
    for (std::size_t i = 0; i < kN; ++i) EXPECT_NEAR(dfh[i], dd[i], 1e-5 * dmax) << c.label << " " << i;
  }
}

// ------------------------------------------------------------------ factory and validation

TEST(OptimFactory, UnknownNameListsValidNames) {
  OptimizerConfig c;
  c.name = "adamax";
  try {
    make_optimizer<double>(c, 4);
    FAIL() << "no exception";
  } catch (const sama::Error& e) {
    const std::string msg = e.what();
    for (const char* name : {"adamax", "sgd", "adam,", "adamw", "adagrad", "rmsprop", "lion", "lamb"})
      EXPECT_NE(msg.find(name), std::string::npos) << name << " not in: " << msg;
  }
  EXPECT_THROW(make_optimizer<float>(c, 4), sama::Error);
}

TEST(OptimFactory, RejectsBadHyperParameters) {
  auto bad = [](OptimizerConfig c) { EXPECT_THROW(make_optimizer<double>(c, 4), sama::Error) << c.name; };
  bad(config("sgd", -0.1));
  bad(config("sgd", 1.0));
  bad(config("sgd", 0.0, true));
  bad(config("sgd", 0.5, false, -1e-4));
  bad(config("sgd", std::nan("")));
  for (const std::string name : {"adam", "adamw"}) {
    auto c = config(name);
    c.beta1 = 1.0;
    bad(c);
    c = config(name);
    c.beta1 = -0.1;
    bad(c);
    c = config(name);
    c.beta2 = 1.0;
    bad(c);
    bad(config(name, 0.0, false, 0.0, 0.0));
    bad(config(name, 0.0, false, 0.0, -1e-8));
    bad(config(name, 0.0, false, -0.01));
    bad(config(name, 0.9, true));
  }
  using C = OptimizerConfig&;
  bad(with(config("adagrad"), [](C c) { c.eps = 0.0; }));
  bad(config("adagrad", 0.0, false, -1e-3));
  bad(with(config("adagrad"), [](C c) { c.initial_accumulator = -0.1; }));
  bad(with(config("rmsprop"), [](C c) { c.alpha = 1.0; }));
  bad(with(config("rmsprop"), [](C c) { c.alpha = -0.1; }));
  bad(config("rmsprop", 1.0));
  bad(config("rmsprop", 0.0, false, -1e-3));
  bad(config("rmsprop", 0.0, false, 0.0, 0.0));
  bad(with(lion("tanh", 1e-3), [](C c) { c.beta1 = 1.0; }));
  bad(with(lion("tanh", 1e-3), [](C c) { c.beta2 = 1.0; }));
  bad(lion("tanh", 0.0));
  bad(lion("tanh", -1.0));
  bad(lion("tanh", 1e-3, -0.1));
  bad(lion("sigmoid", 1e-3));
  bad(with(config("lamb"), [](C c) { c.beta1 = 1.0; }));
  bad(config("lamb", 0.0, false, 0.0, 0.0));
  bad(config("lamb", 0.0, false, -0.1));
  // LAMB's groups must tile [0, 4) in order.
  for (std::vector<std::pair<std::size_t, std::size_t>> g :
       {std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}}, {{0, 2}, {3, 1}}, {{0, 3}, {2, 2}}, {{1, 3}},
        {{0, 2}, {2, 0}, {2, 2}}, {{2, 2}, {0, 2}}, {{0, 5}}}) {
    bad(with(config("lamb"), [&](C c) { c.groups = g; }));
  }
  // An option of another optimizer.
  bad(with(config("adam"), [](C c) { c.centered = true; }));
  bad(config("lamb", 0.9));
  bad(config("rmsprop", 0.9, true));
  bad(with(config("sgd"), [](C c) { c.initial_accumulator = 0.1; }));
  EXPECT_NO_THROW(make_optimizer<double>(config("sgd", 0.0), 4));
  EXPECT_NO_THROW(make_optimizer<double>(config("sgd", 0.99, true, 1e-4), 4));
  EXPECT_NO_THROW(make_optimizer<double>(config("rmsprop", 0.9), 4));
  EXPECT_NO_THROW(make_optimizer<double>(with(config("lamb"), [](C c) { c.groups = {{0, 1}, {1, 3}}; }), 4));
  EXPECT_NO_THROW(make_optimizer<double>(config("lamb"), 0));
  auto c = config("adam");
  c.beta1 = 0.0;
  c.beta2 = 0.0;
  EXPECT_NO_THROW(make_optimizer<double>(c, 4));
}

TEST(OptimFactory, RejectsMismatchedSizesAndBadLearningRate) {
  for (const auto& c : all_cases()) {
    auto opt = make<double>(c, kN);
    Vec<double> theta("theta", kN), g("g", kN), short_g("g", kN - 1);
    EXPECT_THROW(opt->step(theta, short_g, 0.1), sama::Error) << c.label;
    EXPECT_THROW(opt->step(theta, g, -0.1), sama::Error) << c.label;
    EXPECT_THROW(opt->step(theta, g, std::nan("")), sama::Error) << c.label;
    EXPECT_EQ(opt->steps(), 0);
    opt->step(theta, g, 0.1);
    EXPECT_THROW(opt->apply_adaptation(short_g, g), sama::Error) << c.label;
    EXPECT_THROW(opt->set_steps(-1), sama::Error) << c.label;
  }
}

// ------------------------------------------------------------------ schedules

using sama::optim::learning_rate;
using sama::optim::ScheduleConfig;

ScheduleConfig schedule(const std::string& name, long warmup) {
  ScheduleConfig s;
  s.name = name;
  s.warmup_steps = warmup;
  return s;
}

TEST(Schedule, ConstantWithWarmup) {
  const double lr = 0.3;
  auto s = schedule("constant", 0);
  for (long k : {0L, 1L, 100L, 123456L}) EXPECT_DOUBLE_EQ(learning_rate(s, lr, k), lr);
  s.warmup_steps = 4;
  for (long k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(learning_rate(s, lr, k), lr * static_cast<double>(k + 1) / 4.0) << k;
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 3), lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 4), lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 1000), lr);
}

TEST(Schedule, StepDecayBoundaries) {
  const double lr = 0.1;
  auto s = schedule("step", 5);
  s.step_size = 10;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 0), lr / 5);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 4), lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 5), lr);     // first step after warm-up
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 14), lr);    // (14-5)/10 = 0
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 15), lr * 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 24), lr * 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 25), lr * 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 5 + 10 * 7 + 3), lr * std::pow(0.5, 7));
  s.gamma = 1.0;
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 1000), lr);
}

TEST(Schedule, CosineEndpointsMidpointAndMonotone) {
  const double lr = 0.2;
  const double pi = std::acos(-1.0);
  auto s = schedule("cosine", 10);
  s.total_steps = 110;
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 0), lr / 10);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 9), lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, lr, 10), lr);                        // end of warm-up
  EXPECT_NEAR(learning_rate(s, lr, 60), lr * (0.1 + 0.9 * 0.5), 1e-15);  // midpoint
  const double at25 = lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(pi * 0.25)));
  EXPECT_NEAR(learning_rate(s, lr, 35), at25, 1e-15);
  EXPECT_NEAR(learning_rate(s, lr, 110), 0.1 * lr, 1e-15);  // total_steps
  EXPECT_NEAR(learning_rate(s, lr, 500), 0.1 * lr, 1e-15);  // clamped after
  double prev = learning_rate(s, lr, 10);
  for (long k = 11; k <= 130; ++k) {
    const double cur = learning_rate(s, lr, k);
    EXPECT_LE(cur, prev) << k;
    EXPECT_GE(cur, 0.1 * lr - 1e-15) << k;
    prev = cur;
  }
  // No warm-up, decay to zero.
  auto z = schedule("cosine", 0);
  z.total_steps = 4;
  EXPECT_DOUBLE_EQ(learning_rate(z, lr, 0), lr);
  EXPECT_NEAR(learning_rate(z, lr, 2), 0.5 * lr, 1e-15);
  EXPECT_NEAR(learning_rate(z, lr, 4), 0.0, 1e-15);
}

TEST(Schedule, RejectsBadConfigs) {
  auto bad = [](ScheduleConfig s, long step = 0) { EXPECT_THROW(learning_rate(s, 0.1, step), sama::Error) << s.name; };
  bad(schedule("linear", 0));
  bad(schedule("constant", -1));
  bad(schedule("constant", 0), -1);
  auto s = schedule("step", 0);
  s.step_size = 0;
  bad(s);
  s = schedule("step", 0);
  s.gamma = 0.0;
  bad(s);
  s.gamma = 1.5;
  bad(s);
  auto c = schedule("cosine", 0);
  c.total_steps = 0;
  bad(c);
  c = schedule("cosine", 10);
  c.total_steps = 10;
  bad(c);
  c = schedule("cosine", 0);
  c.total_steps = 10;
  c.min_lr_ratio = -0.5;
  bad(c);
  try {
    learning_rate(schedule("exponential", 0), 0.1, 0);
    FAIL() << "no exception";
  } catch (const sama::Error& e) {
    EXPECT_NE(std::string(e.what()).find("exponential"), std::string::npos) << e.what();
  }
}

}  // namespace
