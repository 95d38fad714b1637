// Optimizers (SGD, Adam, AdamW) and learning-rate schedules.
//
// The adaptation D = ∂u/∂g is checked against central finite differences of the update itself,
// the updates against naive scalar reference implementations, and the schedules against their
// formulas.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/optim/adam.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/schedule.hpp"
#include "sama/optim/sgd.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <string>
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

std::vector<Case> all_cases() {
  return {
      {"sgd", config("sgd")},
      {"sgd_momentum", config("sgd", 0.9)},
      {"sgd_nesterov", config("sgd", 0.9, true)},
      {"sgd_wd", config("sgd", 0.0, false, 5e-4)},
      {"adam", config("adam")},
      {"adam_wd", config("adam", 0.0, false, 1e-2)},
      {"adamw_wd", config("adamw", 0.0, false, 1e-2)},
      {"adamw_tiny_eps", config("adamw", 0.0, false, 1e-2, 1e-12)},
  };
}

bool is_adam(const OptimizerConfig& c) { return c.name == "adam" || c.name == "adamw"; }
/// Weight decay that is added to the gradient (g' = g + wd·θ); AdamW's is decoupled.
double l2_of(const OptimizerConfig& c) { return c.name == "adamw" ? 0.0 : c.weight_decay; }

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
std::pair<std::unique_ptr<Optimizer<T>>, Vec<T>> replay(const OptimizerConfig& cfg, const std::vector<double>& theta0,
                                                          const std::vector<Step>& history) {
  auto opt = make_optimizer<T>(cfg, theta0.size());
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
  auto [opt0, theta_v] = replay<double>(c.cfg, theta0, history);
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

  auto [opt_p, theta_p] = replay<double>(c.cfg, theta0, history);
  EXPECT_EQ(to_host(theta_p), theta_before);
  opt_p->step(theta_p, to_device(gp), lr);
  const auto after_p = to_host(theta_p);
  auto [opt_m, theta_m] = replay<double>(c.cfg, theta0, history);
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

TEST(OptimAdaptation, FiniteDifferenceFirstStep) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(11, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    std::vector<double> gprime(kN);
    const double eps = c.cfg.eps;
    for (auto& x : gprime) {
      // At the first Adam step u = lr·g'/(|g'|+ε): D = lr·ε/(|g'|+ε)² is only resolvable for |g'| ~ ε.
      const double mag = is_adam(c.cfg) ? eps * std::pow(10.0, rng.uniform(-1.0, 1.0)) : 1.0;
      x = mag * rng.normal();
    }
    const double hscale = is_adam(c.cfg) ? eps : 1.0;
    const auto sharp = check_fd(c, theta0, {}, gprime, 0.1, hscale);
    EXPECT_GE(sharp, kN * 3 / 4) << c.label << ": finite-difference check too blunt";
  }
}

TEST(OptimAdaptation, FiniteDifferenceLateInTraining) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(12, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    const auto history = random_history(rng, kN, 50);
    const auto gprime = normal_vec(rng, kN);
    const auto sharp = check_fd(c, theta0, history, gprime, 0.07, 1.0);
    EXPECT_GE(sharp, kN * 3 / 4) << c.label << ": finite-difference check too blunt";
  }
}

TEST(OptimAdaptation, AppliesDiagonalAndAllowsAliasing) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(13, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    auto [opt, theta] = replay<double>(c.cfg, theta0, random_history(rng, kN, 7));
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
    auto opt = make_optimizer<double>(c.cfg, kN);
    EXPECT_EQ(opt->steps(), 0);
    Vec<double> v("v", kN);
    EXPECT_THROW(opt->apply_adaptation(v, v), sama::Error) << c.label;
  }
}

TEST(OptimAdaptation, SgdScale) {
  sama::Rng rng(14);
  for (const auto& c : all_cases()) {
    if (is_adam(c.cfg)) continue;
    auto [opt, theta] = replay<double>(c.cfg, normal_vec(rng, kN), random_history(rng, kN, 3));
    const double lr = opt->last_lr();
    const double expect = c.cfg.nesterov ? lr * (1.0 + c.cfg.momentum) : lr;
    for (double x : adaptation_diag(*opt, kN)) EXPECT_DOUBLE_EQ(x, expect) << c.label;
  }
}

// ------------------------------------------------------------------ state round trip (checkpoints)

TEST(OptimState, RestoreFromStateReproducesStepsAndAdaptation) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(15, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    auto [opt, theta] = replay<double>(c.cfg, theta0, random_history(rng, kN, 9));
    const auto st = opt->state();
    if (is_adam(c.cfg)) {
      ASSERT_EQ(st.size(), 3u);
      EXPECT_EQ(st[0].first, "exp_avg");
      EXPECT_EQ(st[1].first, "exp_avg_sq");
      EXPECT_EQ(st[2].first, "last_grad");
    } else if (c.cfg.momentum > 0.0) {
      ASSERT_EQ(st.size(), 1u);
      EXPECT_EQ(st[0].first, "momentum_buffer");
    } else {
      EXPECT_TRUE(st.empty());
    }
    for (const auto& [name, vec] : st) EXPECT_EQ(vec.extent(0), kN) << c.label << " " << name;

    auto fresh = make_optimizer<double>(c.cfg, kN);
    auto fst = fresh->state();
    ASSERT_EQ(fst.size(), st.size());
    for (std::size_t k = 0; k < st.size(); ++k) Kokkos::deep_copy(fst[k].second, st[k].second);
    fresh->set_steps(opt->steps());
    fresh->set_last_lr(opt->last_lr());
    EXPECT_EQ(fresh->steps(), 9);
    EXPECT_EQ(adaptation_diag(*fresh, kN), adaptation_diag(*opt, kN)) << c.label;

    Vec<double> theta2("theta2", kN);
    Kokkos::deep_copy(theta2, theta);
    const auto g = to_device(normal_vec(rng, kN));
    opt->step(theta, g, 0.05);
    fresh->step(theta2, g, 0.05);
    EXPECT_EQ(to_host(theta2), to_host(theta)) << c.label;
    EXPECT_EQ(adaptation_diag(*fresh, kN), adaptation_diag(*opt, kN)) << c.label;
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
    auto opt = make_optimizer<double>(c.cfg, kN);
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
    if (is_adam(c.cfg)) continue;
    sama::Rng rng(17, 0, std::hash<std::string>{}(c.label));
    auto theta_h = normal_vec(rng, kN, 0.5);
    RefSgd ref{c.cfg.momentum, c.cfg.weight_decay, c.cfg.nesterov, std::vector<double>(kN, 0.0)};
    auto opt = make_optimizer<double>(c.cfg, kN);
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

// ------------------------------------------------------------------ float instantiation

TEST(OptimFloat, FloatStepsMatchDouble) {
  for (const auto& c : all_cases()) {
    sama::Rng rng(18, 0, std::hash<std::string>{}(c.label));
    const auto theta0 = normal_vec(rng, kN, 0.5);
    const auto history = random_history(rng, kN, 5);
    auto [od, td] = replay<double>(c.cfg, theta0, history);
    auto [of, tf] = replay<float>(c.cfg, theta0, history);
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
  c.name = "rmsprop";
  try {
    make_optimizer<double>(c, 4);
    FAIL() << "no exception";
  } catch (const sama::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("rmsprop"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sgd"), std::string::npos) << msg;
    EXPECT_NE(msg.find("adamw"), std::string::npos) << msg;
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
  EXPECT_NO_THROW(make_optimizer<double>(config("sgd", 0.0), 4));
  EXPECT_NO_THROW(make_optimizer<double>(config("sgd", 0.99, true, 1e-4), 4));
  auto c = config("adam");
  c.beta1 = 0.0;
  c.beta2 = 0.0;
  EXPECT_NO_THROW(make_optimizer<double>(c, 4));
}

TEST(OptimFactory, RejectsMismatchedSizesAndBadLearningRate) {
  for (const auto& c : all_cases()) {
    auto opt = make_optimizer<double>(c.cfg, kN);
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
