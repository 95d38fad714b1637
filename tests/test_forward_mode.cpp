// Forward mode (R-operator) of every layer, in double precision, against central finite differences
// along the same tangent: each layer's tangent forward (ẏ) and tangent backward (R{dx}, R{dp});
// the cross-entropy's loss and gradient tangents; the MLP's sweeps; the classifier's per-sample loss
// JVP and its Hessian-vector product (against a finite difference of the gradient, and symmetric:
// uᵀHv = vᵀHu). A central difference along a direction is exact for the bilinear Linear layer and
// O(h²) otherwise; with h = 1e-5 both the truncation (~1e-10) and the rounding (~1e-11) stay far
// below the tolerances used here.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/nn/activation.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/nn/cross_entropy.hpp"
#include "sama/nn/linear.hpp"
#include "sama/nn/mlp.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace sama;
using sama::test::to_device;
using sama::test::to_host;

using HostConstMatU =
    Kokkos::View<const double**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using HostMatU = Kokkos::View<double**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using Host = std::vector<double>;

constexpr double kH = 1e-5;      // step of the directional central difference
constexpr double kTol = 1e-7;    // ‖analytic − FD‖ / ‖FD‖

Host normal_vec(Rng& rng, std::size_t n, double scale = 1.0) {
  Host v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}
Mat<double> to_mat(const Host& h, std::size_t rows, std::size_t cols) {
  EXPECT_EQ(h.size(), rows * cols);
  Mat<double> m("forward_mode_test", rows, cols);
  Kokkos::deep_copy(m, HostConstMatU(h.data(), rows, cols));
  return m;
}
Host mat_host(MatU<const double> m) {
  Host h(m.extent(0) * m.extent(1));
  Kokkos::deep_copy(HostMatU(h.data(), m.extent(0), m.extent(1)), m);
  return h;
}
Host axpy(const Host& a, double s, const Host& b) {
  Host r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = a[i] + s * b[i];
  return r;
}
double norm(const Host& a) {
  double s = 0;
  for (double v : a) s += v * v;
  return std::sqrt(s);
}
double dot(const Host& a, const Host& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
Host concat(const Host& a, const Host& b) {
  Host r = a;
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

/// (f(+h) − f(−h)) / 2h for a vector-valued function of the step along a fixed direction.
Host directional_fd(const std::function<Host(double)>& f) {
  const Host p = f(kH), m = f(-kH);
  Host d(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) d[i] = (p[i] - m[i]) / (2 * kH);
  return d;
}

/// ‖a − b‖ ≤ kTol ‖b‖, and b is not (nearly) zero, which would make the check vacuous.
void expect_close(const Host& analytic, const Host& fd, const std::string& what, double tol = kTol) {
  ASSERT_EQ(analytic.size(), fd.size()) << what;
  EXPECT_GT(norm(fd), 1e-6) << what << ": the finite difference is (nearly) zero, the check would be vacuous";
  EXPECT_LE(norm(axpy(analytic, -1, fd)), tol * norm(fd)) << what << ": ‖analytic‖ = " << norm(analytic)
                                                          << ", ‖FD‖ = " << norm(fd);
}

// ------------------------------------------------------------------------------------------------
// Linear

/// Which tangents a case carries: parameters, input, or both.
struct Tangents {
  bool params, input;
};
std::string name_of(const Tangents& t) { return std::string(t.params ? "p" : "") + (t.input ? "x" : ""); }

class LinearTangent : public ::testing::TestWithParam<Tangents> {};

TEST_P(LinearTangent, ForwardAndBackwardMatchFiniteDifferences) {
  const Tangents tg = GetParam();
  const std::size_t in = 5, out = 4, batch = 3;
  nn::Linear<double> layer(in, out);
  Rng rng(21, tg.params * 2 + tg.input);
  const Host p = normal_vec(rng, layer.num_params(), 0.5), x = normal_vec(rng, batch * in);
  const Host dy = normal_vec(rng, batch * out), dy_dot = normal_vec(rng, batch * out);
  const Host p_dot = tg.params ? normal_vec(rng, p.size()) : Host(p.size(), 0.0);
  const Host x_dot = tg.input ? normal_vec(rng, x.size()) : Host(x.size(), 0.0);
  // Empty views stand for the zero tangents.
  Vec<double> p_dot_d = to_device(p_dot);
  Mat<double> x_dot_d = to_mat(x_dot, batch, in);
  VecU<const double> pd = tg.params ? VecU<const double>(p_dot_d) : VecU<const double>();
  MatU<const double> xd = tg.input ? MatU<const double>(x_dot_d) : MatU<const double>();

  // Forward tangent against FD of y(p + h ṗ, x + h ẋ).
  Mat<double> y("y", batch, out), y_dot("y_dot", batch, out);
  auto fwd = [&](double h) {
    layer.forward(to_device(axpy(p, h, p_dot)), to_mat(axpy(x, h, x_dot), batch, in), y);
    return mat_host(y);
  };
  auto pv = to_device(p);
  auto xv = to_mat(x, batch, in);
  layer.forward(pv, xv, y);
  Kokkos::deep_copy(y_dot, std::nan(""));  // must be overwritten
  layer.forward_tangent(pv, pd, xv, xd, y, y_dot);
  expect_close(mat_host(y_dot), directional_fd(fwd), "Linear ẏ (" + name_of(tg) + ")");

  // Backward tangent against FD of (dx, dp) at (p + h ṗ, x + h ẋ, dy + h ḋy).
  Mat<double> dx("dx", batch, in);
  Vec<double> dp("dp", layer.num_params());
  auto bwd = [&](double h) {
    auto ph = to_device(axpy(p, h, p_dot));
    auto xh = to_mat(axpy(x, h, x_dot), batch, in);
    layer.forward(ph, xh, y);
    layer.backward(ph, xh, y, to_mat(axpy(dy, h, dy_dot), batch, out), dx, dp);
    return concat(mat_host(dx), to_host(dp));
  };
  layer.forward(pv, xv, y);
  layer.forward_tangent(pv, pd, xv, xd, y, y_dot);
  Mat<double> dx_dot("dx_dot", batch, in);
  Vec<double> dp_dot("dp_dot", layer.num_params());
  Kokkos::deep_copy(dx_dot, std::nan(""));
  Kokkos::deep_copy(dp_dot, std::nan(""));
  auto dyv = to_mat(dy, batch, out), dydv = to_mat(dy_dot, batch, out);
  layer.backward_tangent(pv, pd, xv, xd, y, y_dot, dyv, dydv, dx_dot, dp_dot);
  expect_close(concat(mat_host(dx_dot), to_host(dp_dot)), directional_fd(bwd), "Linear R{dx}, R{dp} (" + name_of(tg) + ")");

  // Without dx_dot the parameter tangent is the same.
  Vec<double> dp_dot2("dp_dot2", layer.num_params());
  layer.backward_tangent(pv, pd, xv, xd, y, y_dot, dyv, dydv, MatU<double>(), dp_dot2);
  EXPECT_EQ(to_host(dp_dot2), to_host(dp_dot));
}

INSTANTIATE_TEST_SUITE_P(Tangents, LinearTangent,
                         ::testing::Values(Tangents{true, true}, Tangents{true, false}, Tangents{false, true}),
                         [](const auto& info) { return name_of(info.param); });

// ------------------------------------------------------------------------------------------------
// Activations: ẏ = f'ẋ and R{dx} = ḋy f' + dy f'' ẋ (f'' is new: checked through the FD of backward).

class ActivationTangent : public ::testing::TestWithParam<nn::ActivationKind> {};

TEST_P(ActivationTangent, ForwardAndBackwardMatchFiniteDifferences) {
  const auto kind = GetParam();
  const std::size_t batch = 4, width = 6;
  nn::Activation<double> layer(kind, width);
  Rng rng(22, static_cast<std::uint64_t>(kind));
  Host x = normal_vec(rng, batch * width, 2.0);
  for (auto& v : x)  // ReLU: keep away from the kink, where the finite difference would straddle it
    if (std::fabs(v) < 1e-2) v = v < 0 ? -0.5 : 0.5;
  const Host x_dot = normal_vec(rng, x.size()), dy = normal_vec(rng, x.size()), dy_dot = normal_vec(rng, x.size());
  VecU<const double> none;
  Mat<double> y("y", batch, width), dx("dx", batch, width);
  auto fwd = [&](double h) {
    layer.forward(none, to_mat(axpy(x, h, x_dot), batch, width), y);
    return mat_host(y);
  };
  auto bwd = [&](double h) {
    auto xh = to_mat(axpy(x, h, x_dot), batch, width);
    layer.forward(none, xh, y);
    layer.backward(none, xh, y, to_mat(axpy(dy, h, dy_dot), batch, width), dx, VecU<double>());
    return mat_host(dx);
  };
  auto xv = to_mat(x, batch, width), xdv = to_mat(x_dot, batch, width);
  auto dyv = to_mat(dy, batch, width), dydv = to_mat(dy_dot, batch, width);
  Mat<double> y_dot("y_dot", batch, width), dx_dot("dx_dot", batch, width);
  layer.forward(none, xv, y);
  layer.forward_tangent(none, none, xv, xdv, y, y_dot);
  const std::string k = nn::to_string(kind);
  expect_close(mat_host(y_dot), directional_fd(fwd), "activation " + k + " ẏ");
  layer.forward(none, xv, y);
  layer.backward_tangent(none, none, xv, xdv, y, y_dot, dyv, dydv, dx_dot, VecU<double>());
  expect_close(mat_host(dx_dot), directional_fd(bwd), "activation " + k + " R{dx}");

  // dx_dot may alias dy_dot (at the forward of x again: the finite differences moved y).
  layer.forward(none, xv, y);
  layer.backward_tangent(none, none, xv, xdv, y, y_dot, dyv, dydv, dx_dot, VecU<double>());
  auto inplace = to_mat(dy_dot, batch, width);
  layer.backward_tangent(none, none, xv, xdv, y, y_dot, dyv, inplace, inplace, VecU<double>());
  EXPECT_EQ(mat_host(inplace), mat_host(dx_dot));
  // No input tangent: ẏ = 0 and R{dx} = ḋy f'(x) (a pure backward of ḋy).
  layer.forward_tangent(none, none, xv, MatU<const double>(), y, y_dot);
  EXPECT_EQ(norm(mat_host(y_dot)), 0.0);
  layer.backward_tangent(none, none, xv, MatU<const double>(), y, y_dot, dyv, dydv, dx_dot, VecU<double>());
  layer.backward(none, xv, y, dydv, dx, VecU<double>());
  EXPECT_EQ(mat_host(dx_dot), mat_host(dx));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ActivationTangent,
                         ::testing::Values(nn::ActivationKind::relu, nn::ActivationKind::gelu,
                                           nn::ActivationKind::tanh, nn::ActivationKind::sigmoid),
                         [](const auto& info) { return nn::to_string(info.param); });

// ------------------------------------------------------------------------------------------------
// Softmax cross-entropy

TEST(CrossEntropyTangent, LossAndGradientTangentsMatchFiniteDifferences) {
  const std::size_t batch = 5, classes = 4;
  Rng rng(23, 1);
  const Host z = normal_vec(rng, batch * classes, 1.5), z_dot = normal_vec(rng, z.size());
  std::vector<int> labels(batch);
  for (auto& l : labels) l = static_cast<int>(rng.below(classes));
  const Host coef = normal_vec(rng, batch);
  auto lab = to_device(labels);
  auto c = to_device(coef);
  nn::SoftmaxCrossEntropy<double> ce(8, classes);
  Vec<double> losses("losses", batch);
  Mat<double> dz("dz", batch, classes);
  auto fwd = [&](double h) {
    ce.forward(to_mat(axpy(z, h, z_dot), batch, classes), lab, losses);
    return to_host(losses);
  };
  auto bwd = [&](double h) {
    ce.forward(to_mat(axpy(z, h, z_dot), batch, classes), lab, losses);
    ce.backward(c, lab, dz);
    return mat_host(dz);
  };
  auto zv = to_mat(z, batch, classes), zdv = to_mat(z_dot, batch, classes);
  ce.forward(zv, lab, losses);
  Vec<double> dl("dl", batch);
  Mat<double> dz_dot("dz_dot", batch, classes);
  ce.forward_tangent(zdv, lab, dl);
  ce.backward_tangent(c, zdv, dz_dot);
  expect_close(to_host(dl), directional_fd(fwd), "cross-entropy ℓ̇");
  ce.forward(zv, lab, losses);
  ce.backward_tangent(c, zdv, dz_dot);
  expect_close(mat_host(dz_dot), directional_fd(bwd), "cross-entropy R{dz}");
  Vec<double> wrong("wrong", batch + 1);
  EXPECT_THROW(ce.forward_tangent(zdv, lab, wrong), Error);
}

// ------------------------------------------------------------------------------------------------
// MLP: the sweeps over several layers (with and without an output activation).

struct MlpCase {
  nn::ActivationKind hidden;
  std::optional<nn::ActivationKind> output;
};

class MlpTangent : public ::testing::TestWithParam<MlpCase> {};

TEST_P(MlpTangent, SweepsMatchFiniteDifferences) {
  const auto [hidden, output] = GetParam();
  const std::vector<std::size_t> widths = {5, 7, 4, 3};
  const std::size_t batch = 6, max_batch = 9;
  nn::Mlp<double> mlp(widths, hidden, output, max_batch);
  Rng rng(24, static_cast<std::uint64_t>(hidden) * 10 + (output ? 1 + static_cast<std::uint64_t>(*output) : 0));
  Vec<double> theta_d("theta", mlp.num_params());
  mlp.init(theta_d, rng);
  const Host theta = to_host(theta_d), t_dot = normal_vec(rng, theta.size());
  const Host dy = normal_vec(rng, batch * widths.back()), dy_dot = normal_vec(rng, dy.size());
  // The input lives in the first rows of a larger buffer, as in the trainer.
  Mat<double> xbuf("xbuf", max_batch, widths.front());
  Kokkos::deep_copy(xbuf, 0.0);
  {
    auto h = Kokkos::create_mirror_view(xbuf);
    for (std::size_t i = 0; i < batch; ++i)
      for (std::size_t j = 0; j < widths.front(); ++j) h(i, j) = rng.normal();
    Kokkos::deep_copy(xbuf, h);
  }
  MatU<const double> x = rows_of(xbuf, batch);
  Vec<double> grad("grad", mlp.num_params()), grad_dot("grad_dot", mlp.num_params());
  auto fwd = [&](double h) { return mat_host(mlp.forward(to_device(axpy(theta, h, t_dot)), x)); };
  auto bwd = [&](double h) {
    auto th = to_device(axpy(theta, h, t_dot));
    mlp.forward(th, x);
    mlp.backward(th, to_mat(axpy(dy, h, dy_dot), batch, widths.back()), grad);
    return to_host(grad);
  };
  auto td = to_device(t_dot);
  mlp.forward(theta_d, x);
  const Host y_dot = mat_host(mlp.forward_tangent(theta_d, td));
  const std::string label = "MLP hidden=" + nn::to_string(hidden) + (output ? " output=" + nn::to_string(*output) : "");
  expect_close(y_dot, directional_fd(fwd), label + " ẏ");

  auto dyv = to_mat(dy, batch, widths.back()), dydv = to_mat(dy_dot, batch, widths.back());
  mlp.forward(theta_d, x);
  Kokkos::deep_copy(grad, std::nan(""));
  mlp.backward_linearize(theta_d, dyv, grad);
  mlp.forward_tangent(theta_d, td);
  Kokkos::deep_copy(grad_dot, std::nan(""));
  std::vector<std::size_t> ready;
  mlp.backward_tangent(theta_d, td, dydv, grad_dot, [&](std::size_t off, std::size_t) { ready.push_back(off); });
  const Host g = to_host(grad), g_dot = to_host(grad_dot);
  expect_close(g_dot, directional_fd(bwd), label + " R{∂θ}");
  EXPECT_EQ(ready.size(), 3u);  // every Linear layer, last first
  EXPECT_TRUE(std::is_sorted(ready.rbegin(), ready.rend()));
  // The linearisation's gradient is backward()'s, to the bit.
  mlp.forward(theta_d, x);
  mlp.backward(theta_d, dyv, grad);
  EXPECT_EQ(g, to_host(grad));

  // A second direction at the same linearisation: only the tangent passes, the same result as afresh.
  const Host t2 = normal_vec(rng, theta.size());
  auto t2d = to_device(t2);
  mlp.forward(theta_d, x);
  mlp.backward_linearize(theta_d, dyv, grad);
  mlp.forward_tangent(theta_d, td);
  mlp.backward_tangent(theta_d, td, dydv, grad_dot);
  mlp.forward_tangent(theta_d, t2d);
  mlp.backward_tangent(theta_d, t2d, dydv, grad_dot);
  const Host again = to_host(grad_dot);
  mlp.forward(theta_d, x);
  mlp.backward_linearize(theta_d, dyv, grad);
  mlp.forward_tangent(theta_d, t2d);
  mlp.backward_tangent(theta_d, t2d, dydv, grad_dot);
  EXPECT_EQ(again, to_host(grad_dot));

  // A new forward invalidates the tangents and the linearisation.
  mlp.forward(theta_d, x);
  EXPECT_THROW(mlp.backward_tangent(theta_d, td, dydv, grad_dot), Error);
  mlp.forward_tangent(theta_d, td);
  EXPECT_THROW(mlp.backward_tangent(theta_d, td, dydv, grad_dot), Error);  // no linearisation yet
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MlpTangent,
    ::testing::Values(MlpCase{nn::ActivationKind::relu, std::nullopt}, MlpCase{nn::ActivationKind::gelu, std::nullopt},
                      MlpCase{nn::ActivationKind::tanh, nn::ActivationKind::sigmoid},
                      MlpCase{nn::ActivationKind::sigmoid, nn::ActivationKind::tanh}),
    [](const auto& info) {
      return nn::to_string(info.param.hidden) + (info.param.output ? "_" + nn::to_string(*info.param.output) : "");
    });

// ------------------------------------------------------------------------------------------------
// Classifier: loss JVP and Hessian-vector products.

struct ClassifierFixture {
  static constexpr std::size_t B = 7, F = 4, C = 3;
  nn::Classifier<double> model;
  Vec<double> theta;
  Mat<double> x;
  Vec<int> y;
  Host coef;
  explicit ClassifierFixture(nn::ActivationKind act) : model({F, 6, 5, C}, act, 10) {
    Rng rng(25, static_cast<std::uint64_t>(act));
    theta = Vec<double>("theta", model.num_params());
    model.init(theta, rng);
    x = to_mat(normal_vec(rng, B * F), B, F);
    std::vector<int> labels(B);
    for (auto& l : labels) l = static_cast<int>(rng.below(C));
    y = to_device(labels);
    coef = normal_vec(rng, B);  // any coefficients: signs too (the Hessian is then indefinite)
  }
  Host gradient(const Host& th) {
    Vec<double> l("l", B), g("g", model.num_params());
    auto tv = to_device(th);
    model.losses(tv, x, y, l);
    model.backward(tv, to_device(coef), y, g);
    return to_host(g);
  }
  Host losses(const Host& th) {
    Vec<double> l("l", B);
    model.losses(to_device(th), x, y, l);
    return to_host(l);
  }
  Host hvp(const Host& v) {
    Vec<double> out("out", model.num_params());
    model.hvp(theta, to_device(coef), x, y, to_device(v), out);
    return to_host(out);
  }
};

class ClassifierTangent : public ::testing::TestWithParam<nn::ActivationKind> {};

TEST_P(ClassifierTangent, LossJvpMatchesFiniteDifferenceOfLosses) {
  ClassifierFixture f(GetParam());
  Rng rng(26);
  const Host th = to_host(f.theta), dir = normal_vec(rng, th.size());
  Vec<double> l("l", f.B), dl("dl", f.B);
  f.model.loss_jvp(f.theta, to_device(dir), f.x, f.y, l, dl);
  expect_close(to_host(dl), directional_fd([&](double h) { return f.losses(axpy(th, h, dir)); }),
               "loss JVP " + nn::to_string(GetParam()));
  EXPECT_EQ(to_host(l), f.losses(th));  // the losses themselves, to the bit
}

TEST_P(ClassifierTangent, HvpMatchesFiniteDifferenceOfGradientAndIsSymmetric) {
  ClassifierFixture f(GetParam());
  Rng rng(27);
  const Host th = to_host(f.theta), u = normal_vec(rng, th.size()), v = normal_vec(rng, th.size());
  const Host hv = f.hvp(v), hu = f.hvp(u);
  const std::string k = nn::to_string(GetParam());
  expect_close(hv, directional_fd([&](double h) { return f.gradient(axpy(th, h, v)); }), "HVP " + k);
  // Symmetry of the Hessian: uᵀHv = vᵀHu to rounding.
  const double uhv = dot(u, hv), vhu = dot(v, hu);
  EXPECT_NEAR(uhv, vhu, 1e-12 * (std::fabs(uhv) + norm(u) * norm(hv))) << k;
  EXPECT_GT(std::fabs(uhv), 1e-6) << k;
  // Linear in v: H(2u − v) = 2Hu − Hv.
  expect_close(f.hvp(axpy(axpy(u, 1, u), -1, v)), axpy(axpy(hu, 1, hu), -1, hv), "HVP linearity " + k, 1e-12);

  // The optional outputs: the gradient and the per-sample loss tangents along v.
  Vec<double> out("out", th.size()), grad("grad", th.size()), dl("dl", f.B), l("l", f.B), dl2("dl2", f.B);
  std::size_t ready = 0;
  f.model.hvp(f.theta, to_device(f.coef), f.x, f.y, to_device(v), out, grad, dl,
              [&](std::size_t, std::size_t) { ++ready; });
  EXPECT_EQ(to_host(out), hv);
  EXPECT_EQ(to_host(grad), f.gradient(th));
  f.model.loss_jvp(f.theta, to_device(v), f.x, f.y, l, dl2);
  EXPECT_EQ(to_host(dl), to_host(dl2));
  EXPECT_EQ(ready, 3u);

  // hvp_again: another direction at the point of the last hvp, as a fresh hvp gives it; refused once
  // another forward pass ran.
  Vec<double> again("again", th.size()), dl3("dl3", f.B);
  f.model.hvp(f.theta, to_device(f.coef), f.x, f.y, to_device(v), out);
  f.model.hvp_again(f.theta, to_device(f.coef), f.y, to_device(u), again, dl3);
  EXPECT_EQ(to_host(again), hu);
  f.model.loss_jvp(f.theta, to_device(u), f.x, f.y, l, dl2);
  EXPECT_EQ(to_host(dl3), to_host(dl2));
  EXPECT_THROW(f.model.hvp_again(f.theta, to_device(f.coef), f.y, to_device(u), again), Error);
}

INSTANTIATE_TEST_SUITE_P(Activations, ClassifierTangent,
                         ::testing::Values(nn::ActivationKind::gelu, nn::ActivationKind::tanh,
                                           nn::ActivationKind::relu, nn::ActivationKind::sigmoid),
                         [](const auto& info) { return nn::to_string(info.param); });

// In float the exact HVP agrees with the double one to float rounding (no cancellation to fear).
TEST(ClassifierTangentFloat, HvpAgreesWithDouble) {
  ClassifierFixture f(nn::ActivationKind::gelu);
  nn::Classifier<float> m32({f.F, 6, 5, f.C}, nn::ActivationKind::gelu, 10);
  Rng rng(28);
  const Host th = to_host(f.theta), v = normal_vec(rng, th.size());
  auto to_f = [](const Host& h) { return std::vector<float>(h.begin(), h.end()); };
  Mat<float> xf("xf", f.B, f.F);
  {
    auto hx = Kokkos::create_mirror_view_and_copy(HostSpace(), f.x);
    auto hf = Kokkos::create_mirror_view(xf);
    for (std::size_t i = 0; i < f.B; ++i)
      for (std::size_t j = 0; j < f.F; ++j) hf(i, j) = static_cast<float>(hx(i, j));
    Kokkos::deep_copy(xf, hf);
  }
  Vec<float> out("out", th.size());
  m32.hvp(to_device(to_f(th)), to_device(to_f(f.coef)), xf, f.y, to_device(to_f(v)), out);
  const auto got = to_host(out);
  const Host ref = f.hvp(v);
  expect_close(Host(got.begin(), got.end()), ref, "float HVP", 1e-5);
}

}  // namespace
