// SAMA's meta-gradient pieces against independent double-precision computations on a tiny model.
#include "sama/core/error.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/meta/hypergradient.hpp"
#include "sama/meta/meta_weight_net.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/optim/optimizer.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {
using namespace sama;
using sama::test::to_device;
using sama::test::to_host;

/// A small ResNet on 2×3×3 inputs: a stem, one basic block with batch norm, global pooling.
nn::Classifier<double> tiny_resnet(std::size_t classes) {
  nn::ConvNetConfig cfg;
  cfg.blocks = {1};
  cfg.width = 2;
  cfg.activation = nn::ActivationKind::gelu;
  return nn::Classifier<double>(nn::make_resnet<double>(nn::Shape{2, 3, 3}, classes, cfg), 16);
}

struct Tiny {
  static constexpr std::size_t B = 7, C = 3, MB = 5;
  std::size_t F;  // input features: 4 for the MLP, 2×3×3 for the ResNet
  nn::Classifier<double> model;
  meta::MetaWeightNet<double> mwn;
  Vec<double> theta, lambda;
  Mat<double> x, xm;
  Vec<int> y, ym;

  explicit Tiny(bool normalize, std::uint64_t seed = 3, meta::WeightNetKind kind = meta::WeightNetKind::monotone,
                bool resnet = false)
      : F(resnet ? 18 : 4),
        model(resnet ? tiny_resnet(C) : nn::Classifier<double>({4, 6, C}, nn::ActivationKind::gelu, 16)),
        mwn(kind, 5, normalize, 16) {
    Rng rng(seed, 99);
    theta = Vec<double>("theta", model.num_params());
    lambda = Vec<double>("lambda", mwn.num_params());
    model.init(theta, rng);
    mwn.init(lambda, rng);
    x = random_mat(B, F, rng);
    xm = random_mat(MB, F, rng);
    y = random_labels(B, rng);
    ym = random_labels(MB, rng);
  }
  static Mat<double> random_mat(std::size_t r, std::size_t c, Rng& rng) {
    Mat<double> m("x", r, c);
    auto h = Kokkos::create_mirror_view(m);
    for (std::size_t i = 0; i < r; ++i)
      for (std::size_t j = 0; j < c; ++j) h(i, j) = rng.normal();
    Kokkos::deep_copy(m, h);
    return m;
  }
  static Vec<int> random_labels(std::size_t n, Rng& rng) {
    std::vector<int> l(n);
    for (auto& v : l) v = static_cast<int>(rng.below(C));
    return to_device(l);
  }
  /// Base-level training gradient g_θ = (1/B) Σ w_i(λ) ∂ℓ_i/∂θ with w from the MWN (input detached).
  std::vector<double> base_gradient(VecU<const double> th, VecU<const double> lam) {
    Vec<double> losses("l", B), w("w", B), coef("c", B), grad("g", model.num_params());
    model.losses(th, x, y, losses);
    mwn.forward(lam, losses, w);
    ops::scale<double>(w, 1.0 / B, coef);
    model.backward(th, coef, y, grad);
    return to_host(grad);
  }
  double meta_loss(VecU<const double> th) {
    Vec<double> l("l", MB);
    model.losses(th, xm, ym, l);
    return ops::sum<double>(l) / MB;
  }
  std::vector<double> meta_gradient_theta(VecU<const double> th) {
    Vec<double> l("l", MB), c("c", MB), g("g", model.num_params());
    model.losses(th, xm, ym, l);
    ops::fill<double>(c, 1.0 / MB);
    model.backward(th, c, ym, g);
    return to_host(g);
  }
  /// SAMA's (∂²L_base/∂λ∂θ)·w: per-sample directional derivatives by the ± probe, then the MWN backward
  /// at the inputs of a weighting forward at θ_base.
  std::vector<double> sama_mixed_product(VecU<const double> th_base, Vec<double> th_probe, VecU<const double> w,
                                         double alpha) {
    Vec<double> losses("l", B), weights("w", B), delta("d", B), grad("gl", mwn.num_params());
    model.losses(th_base, x, y, losses);
    mwn.forward(lambda, losses, weights);
    meta::ProbeWorkspace<double> ws(model.num_params(), B);
    meta::directional_loss_derivative<double>(model, th_probe, w, alpha, x, y, ws, delta);
    ops::scale<double>(delta, 1.0 / B, delta);
    mwn.backward(lambda, delta, grad);
    return to_host(grad);
  }
};

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}
double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class MixedProduct : public ::testing::TestWithParam<std::tuple<bool, meta::WeightNetKind>> {};

// (∂²L_base/∂λ∂θ)·w from the probe, against M·w where row k of M = ∂g_θ/∂λ_k is a central finite
// difference of the base-level training gradient over λ (a different code path: MWN forward + model
// backward instead of model forward + MWN backward).
/// (∂²L_base/∂λ∂θ)·w from the probe against M·w, where row k of M = ∂g_θ/∂λ_k is a central finite
/// difference of the base-level training gradient over λ; θ comes back bitwise and the model's
/// running statistics (if any) untouched.
void expect_probe_matches_finite_difference(Tiny& t, std::uint64_t seed) {
  const std::size_t n = t.model.num_params(), nl = t.mwn.num_params();
  const auto buffers0 = to_host(t.model.net().buffers());
  Rng rng(seed);
  std::vector<double> wh(n);
  for (auto& v : wh) v = rng.normal();
  Vec<double> w = to_device(wh);
  Vec<double> th_probe("tp", n);
  Kokkos::deep_copy(th_probe, t.theta);
  const auto sama = t.sama_mixed_product(t.theta, th_probe, w, 1e-4);
  std::vector<double> ref(nl);
  const auto lam0 = to_host(t.lambda);
  const double h = 1e-5;
  for (std::size_t k = 0; k < nl; ++k) {
    auto lp = lam0, lm = lam0;
    lp[k] += h;
    lm[k] -= h;
    const auto gp = t.base_gradient(t.theta, to_device(lp));
    const auto gm = t.base_gradient(t.theta, to_device(lm));
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += (gp[i] - gm[i]) / (2 * h) * wh[i];
    ref[k] = s;
  }
  EXPECT_LT(rel_err(sama, ref), 1e-6);
  EXPECT_EQ(to_host(th_probe), to_host(t.theta));
  EXPECT_EQ(to_host(t.model.net().buffers()), buffers0) << "the probes moved the running statistics";
}

TEST_P(MixedProduct, ProbeMatchesFiniteDifferenceOfTrainingGradient) {
  if (std::get<1>(GetParam()) == meta::WeightNetKind::softmax && !std::get<0>(GetParam()))
    GTEST_SKIP() << "the softmax weight net needs normalisation";
  Tiny t(std::get<0>(GetParam()), 3, std::get<1>(GetParam()));
  expect_probe_matches_finite_difference(t, 11);
}

// The same through a ResNet (convolutions, batch norm with batch statistics in every probe, a residual
// block): the probe needs nothing from the model but its losses.
TEST(MixedProductResNet, ProbeMatchesFiniteDifferenceOfTrainingGradient) {
  for (auto kind : {meta::WeightNetKind::monotone, meta::WeightNetKind::sigmoid}) {
    SCOPED_TRACE(meta::to_string(kind));
    Tiny t(true, 5, kind, true);
    ASSERT_GT(t.model.net().num_buffers(), 0u);
    expect_probe_matches_finite_difference(t, 13);
  }
}

INSTANTIATE_TEST_SUITE_P(WeightNets, MixedProduct,
                         ::testing::Combine(::testing::Values(false, true),
                                            ::testing::Values(meta::WeightNetKind::softmax, meta::WeightNetKind::monotone,
                                                              meta::WeightNetKind::sigmoid)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "normalize_" : "raw_") +
                                  meta::to_string(std::get<1>(info.param));
                         });

// With plain SGD (D = lr·I), SAMA's hypergradient approaches the exact one-step look-ahead
// hypergradient d L_meta(θ − lr·g_θ(λ)) / dλ as lr → 0.
TEST(Sama, CloseToOneStepLookaheadForSmallLearningRate) {
  for (double lr : {1e-2, 1e-3}) {
    Tiny t(true);
    const std::size_t n = t.model.num_params(), nl = t.mwn.num_params();
    const auto theta0 = to_host(t.theta);
    const auto lam0 = to_host(t.lambda);
    // Exact look-ahead by central differences over λ (in double).
    std::vector<double> ref(nl);
    const double h = 1e-5;
    auto lookahead = [&](const std::vector<double>& lam) {
      const auto g = t.base_gradient(t.theta, to_device(lam));
      std::vector<double> th1(n);
      for (std::size_t i = 0; i < n; ++i) th1[i] = theta0[i] - lr * g[i];
      return t.meta_loss(to_device(th1));
    };
    for (std::size_t k = 0; k < nl; ++k) {
      auto lp = lam0, lm = lam0;
      lp[k] += h;
      lm[k] -= h;
      ref[k] = (lookahead(lp) - lookahead(lm)) / (2 * h);
    }
    // SAMA: base step with SGD, then v at θ1, w = D ⊙ v, probe at θ1, MWN inputs of the base step.
    optim::OptimizerConfig cfg;
    cfg.name = "sgd";
    auto opt = optim::make_optimizer<double>(cfg, n);
    Vec<double> g = to_device(t.base_gradient(t.theta, t.lambda));
    Vec<double> theta1("theta1", n);
    Kokkos::deep_copy(theta1, t.theta);
    opt->step(theta1, g, lr);
    Vec<double> v = to_device(t.meta_gradient_theta(theta1));
    opt->apply_adaptation(v, v);
    Vec<double> probe_theta("pt", n);
    Kokkos::deep_copy(probe_theta, theta1);
    auto sama = t.sama_mixed_product(t.theta, probe_theta, v, 1e-5);
    for (auto& s : sama) s = -s;  // dL_meta/dλ ≈ 0 − (∂²L_base/∂λ∂θ)·(D ⊙ v)
    EXPECT_GT(cosine(sama, ref), 0.999) << "lr " << lr;
    EXPECT_LT(rel_err(sama, ref), 30 * lr) << "lr " << lr;
  }
}

TEST(Sama, ProbeRejectsZeroDirection) {
  Tiny t(false);
  Vec<double> w("w", t.model.num_params());
  Vec<double> delta("d", Tiny::B);
  meta::ProbeWorkspace<double> ws(t.model.num_params(), Tiny::B);
  EXPECT_THROW(meta::directional_loss_derivative<double>(t.model, t.theta, w, 1.0, t.x, t.y, ws, delta), Error);
}

TEST(Sama, FloatProbeRestoresThetaBitwise) {
  nn::Classifier<float> model({8, 16, 4}, nn::ActivationKind::relu, 8);
  Vec<float> theta("theta", model.num_params());
  Rng rng(5);
  model.init(theta, rng);
  const auto before = to_host(theta);
  std::vector<float> wh(model.num_params());
  for (auto& v : wh) v = static_cast<float>(rng.normal() * 1e-3);
  Mat<float> x("x", 8, 8);
  Kokkos::deep_copy(x, 0.5f);
  Vec<int> y("y", 8);
  Vec<float> delta("d", 8);
  meta::ProbeWorkspace<float> ws(model.num_params(), 8);
  const auto info = meta::directional_loss_derivative<float>(model, theta, to_device(wh), 0.37, x, y, ws, delta);
  EXPECT_EQ(to_host(theta), before);
  EXPECT_NEAR(info.epsilon * info.w_norm, 0.37, 1e-9);
}

TEST(Sama, MethodNames) {
  EXPECT_EQ(meta::parse_method("sama"), meta::Method::sama);
  EXPECT_EQ(meta::parse_method("finite_difference"), meta::Method::finite_difference);
  EXPECT_EQ(meta::to_string(meta::parse_method("none")), "none");
  EXPECT_THROW(meta::parse_method("darts"), Error);
}

}  // namespace
