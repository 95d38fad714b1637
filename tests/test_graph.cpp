// The layer graph: the MLP's layers as modules, sequences and residual blocks against finite
// differences (tests/module_check.hpp), and a network built as the MLP against the MLP itself, to the
// bit (the MLP decks' results must not change).
#include "module_check.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/nn/layers/dense.hpp"
#include "sama/nn/mlp.hpp"
#include "sama/nn/models.hpp"
#include "sama/nn/network.hpp"

#include <gtest/gtest.h>

namespace {

using namespace sama;
using sama::test::check_module;
using sama::test::ModuleCheck;
using sama::test::to_device;
using sama::test::to_host;

std::unique_ptr<nn::Sequential<double>> dense_tanh_dense(nn::Shape in, std::size_t hidden, std::size_t out) {
  auto s = std::make_unique<nn::Sequential<double>>(in);
  s->emplace<nn::DenseLayer<double>>(hidden);
  s->emplace<nn::ActivationLayer<double>>(nn::ActivationKind::tanh);
  s->emplace<nn::DenseLayer<double>>(out);
  return s;
}

TEST(GraphModules, DenseAndActivationMatchFiniteDifferences) {
  for (std::size_t batch : {1, 3}) {
    ModuleCheck o;
    o.batch = batch;
    check_module(nn::DenseLayer<double>(nn::Shape{2, 3, 1}, 4), o);
    for (auto k : {nn::ActivationKind::tanh, nn::ActivationKind::gelu, nn::ActivationKind::sigmoid,
                   nn::ActivationKind::relu})
      check_module(nn::ActivationLayer<double>(nn::Shape{3, 2, 2}, k), o);
  }
}

TEST(GraphModules, SequenceMatchesFiniteDifferences) {
  for (std::size_t batch : {1, 3}) {
    ModuleCheck o;
    o.batch = batch;
    check_module(*dense_tanh_dense(nn::Shape{5, 1, 1}, 6, 3), o);
  }
}

TEST(GraphModules, ResidualBlocksMatchFiniteDifferences) {
  ModuleCheck o;
  o.batch = 3;
  // Identity shortcut (the body keeps the shape) and a projection shortcut (it does not).
  nn::Residual<double> identity(dense_tanh_dense(nn::Shape{4, 1, 1}, 5, 4), nullptr);
  check_module(identity, o);
  auto proj = std::make_unique<nn::Sequential<double>>(nn::Shape{4, 1, 1});
  proj->emplace<nn::DenseLayer<double>>(3);
  nn::Residual<double> projected(dense_tanh_dense(nn::Shape{4, 1, 1}, 5, 3), std::move(proj));
  check_module(projected, o);
  // Blocks inside a sequence, with an activation after each block as in a ResNet.
  nn::Sequential<double> net(nn::Shape{4, 1, 1});
  net.add(std::make_unique<nn::Residual<double>>(dense_tanh_dense(nn::Shape{4, 1, 1}, 6, 4), nullptr));
  net.emplace<nn::ActivationLayer<double>>(nn::ActivationKind::gelu);
  auto proj2 = std::make_unique<nn::Sequential<double>>(nn::Shape{4, 1, 1});
  proj2->emplace<nn::DenseLayer<double>>(2);
  net.add(std::make_unique<nn::Residual<double>>(dense_tanh_dense(nn::Shape{4, 1, 1}, 3, 2), std::move(proj2)));
  net.emplace<nn::DenseLayer<double>>(3);
  check_module(net, o);
}

// Whole networks as one module: a small ResNet (stem, an identity block, a projection block with
// stride 2, global pooling, the classifier) and a small CNN, on odd image sizes, in every mode.
TEST(GraphModules, SmallResNetAndCnnMatchFiniteDifferences) {
  nn::ConvNetConfig cfg;
  cfg.blocks = {1, 1};
  cfg.width = 2;
  cfg.activation = nn::ActivationKind::gelu;  // smooth: no kinks for the differences to straddle
  const auto resnet = nn::make_resnet<double>(nn::Shape{1, 5, 7}, 3, cfg);
  EXPECT_GT(resnet->num_buffers(), 0u);
  nn::ConvNetConfig c2;
  c2.channels = {3};
  c2.hidden = {4};
  c2.activation = nn::ActivationKind::tanh;
  const auto cnn = nn::make_cnn<double>(nn::Shape{2, 5, 4}, 3, c2);
  for (nn::Mode mode : {nn::Mode::train, nn::Mode::probe, nn::Mode::eval}) {
    ModuleCheck o;
    o.batch = 3;
    o.mode = mode;
    o.param_scale = 0.3;
    o.exact_sample_norms = mode == nn::Mode::eval;
    check_module(*resnet, o);
    check_module(*cnn, o);
  }
  ModuleCheck two;
  two.batch = 2;
  two.exact_sample_norms = false;
  check_module(*resnet, two);
}

/// Loss gradient Σ_i c_i ∂ℓ_i/∂θ of a classifier at θ (probe mode).
std::vector<double> loss_gradient(nn::Classifier<double>& m, const std::vector<double>& theta, const Mat<double>& x,
                                  const Vec<int>& y, const Vec<double>& coef) {
  Vec<double> th = to_device(theta), losses("l", x.extent(0)), g("g", m.num_params());
  m.losses(th, x, y, losses);
  m.backward(th, coef, y, g);
  return to_host(g);
}

// Exact Hessian-vector products through a ResNet against the difference of its gradient; and the
// running statistics move only in a train-mode forward: HVPs, directional derivatives, probe and eval
// forwards leave them bitwise alone.
TEST(Network, ResNetHessianProductsAndRunningStatistics) {
  nn::ConvNetConfig cfg;
  cfg.blocks = {1, 1};
  cfg.width = 2;
  cfg.activation = nn::ActivationKind::gelu;
  const std::size_t b = 5, classes = 3;
  nn::Classifier<double> m(nn::make_resnet<double>(nn::Shape{2, 5, 5}, classes, cfg), 8);
  const std::size_t n = m.num_params();
  Vec<double> theta("theta", n);
  Rng rng(3);
  m.init(theta, rng);
  std::vector<double> xh(b * 50), ch(b), vh(n);
  std::vector<int> yh(b);
  for (auto& v : xh) v = rng.normal();
  for (auto& v : ch) v = rng.uniform(0.2, 1.0);
  for (auto& v : vh) v = rng.normal();
  for (auto& v : yh) v = static_cast<int>(rng.below(classes));
  Mat<double> x("x", b, 50);
  Kokkos::deep_copy(x, Kokkos::View<const double**, Kokkos::LayoutRight, HostSpace,
                                    Kokkos::MemoryTraits<Kokkos::Unmanaged>>(xh.data(), b, 50));
  Vec<int> y = to_device(yh);
  Vec<double> coef = to_device(ch), v = to_device(vh), hv("hv", n), dl("dl", b), l("l", b);
  const auto buffers0 = to_host(m.net().buffers());
  m.hvp(theta, coef, x, y, v, hv, VecU<double>(), dl);
  m.loss_jvp(theta, v, x, y, l, dl);
  m.losses(theta, x, y, l, nn::Mode::eval);
  m.losses(theta, x, y, l, nn::Mode::probe);
  EXPECT_EQ(to_host(m.net().buffers()), buffers0);
  const auto th = to_host(theta);
  const double h = 1e-5;
  auto tp = th, tm = th;
  for (std::size_t i = 0; i < n; ++i) tp[i] += h * vh[i], tm[i] -= h * vh[i];
  const auto gp = loss_gradient(m, tp, x, y, coef), gm = loss_gradient(m, tm, x, y, coef);
  const auto got = to_host(hv);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double fd = (gp[i] - gm[i]) / (2 * h);
    num += (got[i] - fd) * (got[i] - fd);
    den += fd * fd;
  }
  EXPECT_LT(std::sqrt(num / den), 1e-6);
  EXPECT_GT(den, 1e-6);
  m.losses(theta, x, y, l, nn::Mode::train);
  EXPECT_NE(to_host(m.net().buffers()), buffers0) << "a train-mode forward must update the running statistics";
}

// The ResNet's size from its definition: stem conv3x3 (no bias) + BN; per block two conv3x3 + two BN,
// and a 1x1 projection + BN where the channels change; the classifier on the last stage's channels.
TEST(Models, ResNetSizesFollowTheArchitecture) {
  for (std::size_t width : {8, 16}) {
    nn::ConvNetConfig cfg;
    cfg.blocks = nn::resnet_blocks_for_depth(8);
    cfg.width = width;
    const auto net = nn::make_resnet<float>(nn::Shape{1, 28, 28}, 10, cfg);
    std::size_t params = 9 * width + 2 * width, buffers = 2 * width, cin = width;
    for (std::size_t s = 0; s < 3; ++s) {
      const std::size_t c = width << s;
      params += 9 * cin * c + 2 * c + 9 * c * c + 2 * c;
      buffers += 4 * c;
      if (c != cin) params += cin * c + 2 * c, buffers += 2 * c;
      cin = c;
    }
    params += 10 * cin + 10;
    EXPECT_EQ(net->num_params(), params) << "width " << width;
    EXPECT_EQ(net->num_buffers(), buffers) << "width " << width;
    EXPECT_EQ(net->out_shape(), (nn::Shape{10, 1, 1}));
  }
  EXPECT_EQ(nn::resnet_blocks_for_depth(20), (std::vector<std::size_t>{3, 3, 3}));
  sama::test::expect_error([] { nn::resnet_blocks_for_depth(10); }, {"6n + 2"});
}

TEST(GraphModules, ShapeMismatchesAreErrors) {
  nn::Sequential<double> s(nn::Shape{4, 1, 1});
  s.emplace<nn::DenseLayer<double>>(3);
  sama::test::expect_error([&] { s.add(std::make_unique<nn::DenseLayer<double>>(nn::Shape{4, 1, 1}, 2)); },
                           {"expects input 4", "previous output is 3"});
  sama::test::expect_error([&] { nn::Residual<double>(dense_tanh_dense(nn::Shape{4, 1, 1}, 5, 3), nullptr); },
                           {"identity shortcut", "4 to 3"});
}

/// The MLP as a network and as the MLP, from the same seed: θ, outputs, gradients, per-sample norms
/// and both tangent passes identical to the bit.
template <class T>
void expect_network_is_mlp_bitwise() {
  const std::vector<std::size_t> widths{7, 9, 5, 4};
  const std::size_t batch = 6;
  nn::Mlp<T> mlp(widths, nn::ActivationKind::gelu, std::nullopt, batch);
  nn::Network<T> net(nn::make_mlp<T>(nn::Shape{7, 1, 1}, widths, nn::ActivationKind::gelu), batch);
  ASSERT_EQ(net.num_params(), mlp.num_params());
  Vec<T> ta("ta", mlp.num_params()), tb("tb", net.num_params());
  Rng ra(11, Stream::init), rb(11, Stream::init);
  mlp.init(ta, ra);
  net.init(tb, rb);
  ASSERT_EQ(to_host(ta), to_host(tb));
  // Groups: one per Linear, the same ranges; the ready order is last layer first.
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  for (std::size_t i = 0; i < mlp.num_layers(); ++i)
    if (mlp.layer(i).num_params() > 0) groups.emplace_back(mlp.param_offset(i), mlp.layer(i).num_params());
  EXPECT_EQ(net.param_groups(), groups);
  const std::vector<std::pair<std::size_t, std::size_t>> reversed(groups.rbegin(), groups.rend());
  EXPECT_EQ(net.ready_groups(), reversed);

  Rng rng(5);
  std::vector<T> xh(batch * 7), dyh(batch * 4), vh(net.num_params()), dydh(batch * 4);
  for (auto* v : {&xh, &dyh, &vh, &dydh})
    for (auto& e : *v) e = static_cast<T>(rng.normal());
  Vec<T> x = to_device(xh), dy = to_device(dyh), v = to_device(vh), dyd = to_device(dydh);
  MatU<const T> xm(x.data(), batch, 7), dym(dy.data(), batch, 4), dydm(dyd.data(), batch, 4);
  auto ya = mlp.forward(ta, xm);
  auto yb = net.forward(tb, xm);
  std::vector<T> yah(batch * 4), ybh(batch * 4);
  Kokkos::deep_copy(Kokkos::View<T**, Kokkos::LayoutRight, HostSpace>(yah.data(), batch, 4), ya);
  Kokkos::deep_copy(Kokkos::View<T**, Kokkos::LayoutRight, HostSpace>(ybh.data(), batch, 4), yb);
  EXPECT_EQ(yah, ybh) << "forward";
  Vec<T> ga("ga", mlp.num_params()), gb("gb", net.num_params()), sa("sa", batch), sb("sb", batch);
  std::vector<std::pair<std::size_t, std::size_t>> ready_a, ready_b;
  mlp.set_sample_grad_norms(sa);
  net.set_sample_grad_norms(sb);
  mlp.backward(ta, dym, ga, MatU<T>(), [&](std::size_t o, std::size_t n) { ready_a.emplace_back(o, n); });
  net.backward(tb, dym, gb, MatU<T>(), [&](std::size_t o, std::size_t n) { ready_b.emplace_back(o, n); });
  EXPECT_EQ(to_host(ga), to_host(gb)) << "backward";
  EXPECT_EQ(to_host(sa), to_host(sb)) << "per-sample gradient norms";
  EXPECT_EQ(ready_a, ready_b) << "gradient readiness";
  mlp.set_sample_grad_norms(VecU<T>());
  net.set_sample_grad_norms(VecU<T>());
  // Forward mode: linearise, tangent forward, tangent backward.
  mlp.backward_linearize(ta, dym, ga);
  net.backward_linearize(tb, dym, gb);
  EXPECT_EQ(to_host(ga), to_host(gb)) << "backward_linearize";
  auto za = mlp.forward_tangent(ta, v);
  auto zb = net.forward_tangent(tb, v);
  Kokkos::deep_copy(Kokkos::View<T**, Kokkos::LayoutRight, HostSpace>(yah.data(), batch, 4), za);
  Kokkos::deep_copy(Kokkos::View<T**, Kokkos::LayoutRight, HostSpace>(ybh.data(), batch, 4), zb);
  EXPECT_EQ(yah, ybh) << "forward_tangent";
  mlp.backward_tangent(ta, v, dydm, ga);
  net.backward_tangent(tb, v, dydm, gb);
  EXPECT_EQ(to_host(ga), to_host(gb)) << "backward_tangent";
}

TEST(Network, MlpAsNetworkIsBitwiseTheMlp) {
  expect_network_is_mlp_bitwise<float>();
  expect_network_is_mlp_bitwise<double>();
}

TEST(Network, RejectsBadBatchesAndPassOrder) {
  nn::Network<double> net(nn::make_mlp<double>(nn::Shape{3, 1, 1}, {3, 4, 2}, nn::ActivationKind::relu), 4);
  Vec<double> theta("theta", net.num_params()), g("g", net.num_params()), x("x", 5 * 3);
  Rng rng(1);
  net.init(theta, rng);
  sama::test::expect_error([&] { net.forward(theta, MatU<const double>(x.data(), 5, 3)); }, {"batch 5", "1..4"});
  sama::test::expect_error([&] { net.forward(theta, MatU<const double>(x.data(), 2, 2)); },
                           {"2 features", "expects 3"});
  net.forward(theta, MatU<const double>(x.data(), 2, 3));
  Vec<double> dy("dy", 2 * 2);
  sama::test::expect_error([&] { net.backward_tangent(theta, theta, MatU<const double>(dy.data(), 2, 2), g); },
                           {"backward_linearize and forward_tangent"});
  EXPECT_EQ(net.num_buffers(), 0u);
  EXPECT_EQ(net.describe(), "3 -> linear(4) -> relu -> linear(2)");
}

}  // namespace
