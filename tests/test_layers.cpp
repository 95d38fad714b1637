// Every layer's backward against central finite differences of its own forward (double precision):
// Linear, the element-wise activations, softmax cross-entropy, the MLP, the classifier and the
// Meta-Weight-Net (with and without normalisation). Also Linear's forward against a hand loop, its
// PyTorch-style initialisation bounds, seeded reproducibility and the MLP's gradient-ready callback.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"
#include "sama/meta/meta_weight_net.hpp"
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
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace sama;
using sama::test::to_device;
using sama::test::to_host;

constexpr double kH = 1e-6;         // finite-difference step
constexpr double kRelTol = 1e-6;    // relative error allowed between analytic and FD gradients
constexpr double kFloor = 1e-8;     // denominator floor for the relative error

using HostMatU = Kokkos::View<double**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using HostConstMatU =
    Kokkos::View<const double**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

std::vector<double> normal_vec(Rng& rng, std::size_t n, double scale = 1.0) {
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

/// A device matrix [rows][cols] from row-major host values.
Mat<double> to_mat(const std::vector<double>& h, std::size_t rows, std::size_t cols) {
  EXPECT_EQ(h.size(), rows * cols);
  Mat<double> m("layers_test", rows, cols);
  Kokkos::deep_copy(m, HostConstMatU(h.data(), rows, cols));
  return m;
}
/// Copy host values into an existing device matrix (e.g. the first rows of a larger buffer).
void fill_mat(MatU<double> m, const std::vector<double>& h) {
  ASSERT_EQ(h.size(), m.extent(0) * m.extent(1));
  Kokkos::deep_copy(m, HostConstMatU(h.data(), m.extent(0), m.extent(1)));
}
void fill_vec(VecU<double> v, const std::vector<double>& h) {
  ASSERT_EQ(h.size(), v.extent(0));
  Kokkos::deep_copy(v, Kokkos::View<const double*, Kokkos::LayoutRight, HostSpace,
                                    Kokkos::MemoryTraits<Kokkos::Unmanaged>>(h.data(), h.size()));
}
/// Row-major host copy of a (contiguous, LayoutRight) device matrix.
std::vector<double> mat_host(MatU<const double> m) {
  std::vector<double> h(m.extent(0) * m.extent(1));
  HostMatU hv(h.data(), m.extent(0), m.extent(1));
  Kokkos::deep_copy(hv, m);
  return h;
}

/// An objective's value and the magnitude sum of its terms (which bounds its rounding error).
struct Eval {
  double value, magnitude;
};

/// Σ a_i b_i with its magnitude Σ |a_i b_i|.
Eval dot(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  Eval e{0, 0};
  for (std::size_t i = 0; i < a.size(); ++i) {
    e.value += a[i] * b[i];
    e.magnitude += std::fabs(a[i] * b[i]);
  }
  return e;
}

/// Central finite differences, one coordinate at a time, with each one's rounding-noise level: an
/// objective evaluated to within ~ε·magnitude gives a difference quotient good to ~ε·magnitude/h
/// (about 1e-10 here), which matters only for components far smaller than the gradient's scale.
struct FiniteDifference {
  std::vector<double> grad, noise;
};
constexpr double kNoiseFactor = 4.0;

FiniteDifference finite_difference(const std::vector<double>& x, const std::function<Eval(const std::vector<double>&)>& f) {
  FiniteDifference fd{std::vector<double>(x.size()), std::vector<double>(x.size())};
  std::vector<double> xp = x;
  for (std::size_t i = 0; i < x.size(); ++i) {
    xp[i] = x[i] + kH;
    const Eval fp = f(xp);
    xp[i] = x[i] - kH;
    const Eval fm = f(xp);
    xp[i] = x[i];
    fd.grad[i] = (fp.value - fm.value) / (2 * kH);
    fd.noise[i] = kNoiseFactor * std::numeric_limits<double>::epsilon() * std::max(fp.magnitude, fm.magnitude) / kH;
  }
  return fd;
}

double rel_err(double a, double b) { return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), kFloor}); }

/// Every component of the analytic gradient within kRelTol (relative, floor kFloor) of the finite
/// difference, allowing in addition the difference quotient's own rounding noise.
void expect_gradient_close(const std::vector<double>& analytic, const FiniteDifference& fd, const std::string& what) {
  ASSERT_EQ(analytic.size(), fd.grad.size()) << what;
  bool any_nonzero = false;
  for (std::size_t i = 0; i < fd.grad.size(); ++i) {
    const double a = analytic[i], b = fd.grad[i];
    any_nonzero = any_nonzero || std::fabs(b) > 1e-3;
    const bool ok = rel_err(a, b) < kRelTol || std::fabs(a - b) <= fd.noise[i];
    EXPECT_TRUE(ok) << what << "[" << i << "]: analytic " << a << ", finite difference " << b << " (relative error "
                    << rel_err(a, b) << ", FD noise level " << fd.noise[i] << ")";
  }
  EXPECT_TRUE(any_nonzero) << what << ": the gradient is (nearly) zero everywhere, so the check is vacuous";
}

// ------------------------------------------------------------------------------------------------
// Linear

TEST(Linear, ForwardMatchesHandLoop) {
  const std::size_t in = 5, out = 3, batch = 4;
  nn::Linear<double> layer(in, out);
  ASSERT_EQ(layer.num_params(), out * in + out);
  Rng rng(1, 1);
  const auto p = normal_vec(rng, layer.num_params());
  const auto x = normal_vec(rng, batch * in);
  auto dp = to_device(p);
  auto dx = to_mat(x, batch, in);
  Mat<double> dy("y", batch, out);
  layer.forward(dp, dx, dy);
  const auto y = mat_host(dy);
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t j = 0; j < out; ++j) {
      double expect = p[out * in + j];  // bias after W [out][in]
      for (std::size_t l = 0; l < in; ++l) expect += x[i * in + l] * p[j * in + l];
      EXPECT_NEAR(y[i * out + j], expect, 1e-13 * (1 + std::fabs(expect))) << i << "," << j;
    }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const std::size_t in = 6, out = 4, batch = 5;
  nn::Linear<double> layer(in, out);
  Rng rng(2, 1);
  const auto p = normal_vec(rng, layer.num_params(), 0.5);
  const auto x = normal_vec(rng, batch * in);
  const auto r = normal_vec(rng, batch * out);  // objective Σ r ⊙ y

  Mat<double> y("y", batch, out);
  auto objective = [&](const std::vector<double>& pv, const std::vector<double>& xv) {
    auto dp = to_device(pv);
    auto dx = to_mat(xv, batch, in);
    layer.forward(dp, dx, y);
    return dot(mat_host(y), r);
  };

  auto dp = to_device(p);
  auto dx = to_mat(x, batch, in);
  layer.forward(dp, dx, y);
  auto dy = to_mat(r, batch, out);
  Vec<double> gp("gp", layer.num_params());
  Mat<double> gx("gx", batch, in);
  Kokkos::deep_copy(gp, std::numeric_limits<double>::quiet_NaN());  // must be overwritten
  Kokkos::deep_copy(gx, std::numeric_limits<double>::quiet_NaN());
  layer.backward(dp, dx, y, dy, gx, gp);

  expect_gradient_close(to_host(gp), finite_difference(p, [&](const std::vector<double>& v) { return objective(v, x); }),
                        "Linear dp");
  expect_gradient_close(mat_host(gx), finite_difference(x, [&](const std::vector<double>& v) { return objective(p, v); }),
                        "Linear dx");

  // dW and db explicitly: dW = dyᵀ x, db = Σ_i dy.
  const auto g = to_host(gp);
  for (std::size_t j = 0; j < out; ++j) {
    double db = 0;
    for (std::size_t i = 0; i < batch; ++i) db += r[i * out + j];
    EXPECT_NEAR(g[out * in + j], db, 1e-12) << "db[" << j << "]";
    for (std::size_t l = 0; l < in; ++l) {
      double dw = 0;
      for (std::size_t i = 0; i < batch; ++i) dw += r[i * out + j] * x[i * in + l];
      EXPECT_NEAR(g[j * in + l], dw, 1e-12) << "dW[" << j << "," << l << "]";
    }
  }

  // Without dx the parameter gradient is the same.
  Vec<double> gp2("gp2", layer.num_params());
  layer.backward(dp, dx, y, dy, MatU<double>(), gp2);
  EXPECT_EQ(to_host(gp2), to_host(gp));
}

TEST(Linear, InitWithinPyTorchBounds) {
  for (std::size_t in : {1u, 3u, 16u, 100u}) {
    const std::size_t out = 7;
    nn::Linear<double> layer(in, out);
    Vec<double> p("p", layer.num_params());
    Rng rng(42, Stream::init);
    layer.init(p, rng);
    const auto h = to_host(p);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    double largest = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
      EXPECT_LE(std::fabs(h[i]), bound) << "in=" << in << " p[" << i << "]";
      largest = std::max(largest, std::fabs(h[i]));
    }
    // Uniform over the whole interval, not a tiny corner of it.
    EXPECT_GT(largest, 0.5 * bound) << "in=" << in;
    double mean = 0;
    for (double v : h) mean += v;
    mean /= static_cast<double>(h.size());
    if (h.size() >= 100) {
      EXPECT_LT(std::fabs(mean), 0.25 * bound) << "in=" << in;
    }
  }
}

TEST(Mlp, InitBoundsPerLayerAndSeededReproducibility) {
  nn::Mlp<double> mlp({5, 7, 4, 3}, nn::ActivationKind::relu, std::nullopt, 4);
  auto init = [&](std::uint64_t seed) {
    Vec<double> theta("theta", mlp.num_params());
    Rng rng(seed, Stream::init);
    mlp.init(theta, rng);
    return to_host(theta);
  };
  const auto a = init(17), b = init(17), c = init(18);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differing += a[i] != c[i] ? 1 : 0;
  EXPECT_GT(differing, a.size() / 2);
  std::size_t covered = 0;
  for (std::size_t l = 0; l < mlp.num_layers(); ++l) {
    const auto& layer = mlp.layer(l);
    if (layer.num_params() == 0) continue;
    EXPECT_EQ(mlp.param_offset(l), covered);
    const double bound = 1.0 / std::sqrt(static_cast<double>(layer.in()));
    for (std::size_t i = 0; i < layer.num_params(); ++i)
      EXPECT_LE(std::fabs(a[mlp.param_offset(l) + i]), bound) << "layer " << l << " param " << i;
    covered += layer.num_params();
  }
  EXPECT_EQ(covered, mlp.num_params());
  EXPECT_EQ(mlp.num_params(), (5u * 7 + 7) + (7u * 4 + 4) + (4u * 3 + 3));

  // A θ of the wrong size is refused.
  Vec<double> wrong("wrong", mlp.num_params() + 1);
  Rng rng(1);
  EXPECT_THROW(mlp.init(wrong, rng), Error);
}

// ------------------------------------------------------------------------------------------------
// Activations

class ActivationGrad : public ::testing::TestWithParam<nn::ActivationKind> {};

TEST_P(ActivationGrad, BackwardMatchesFiniteDifferences) {
  const auto kind = GetParam();
  const std::size_t batch = 4, width = 6;
  nn::Activation<double> layer(kind, width);
  EXPECT_EQ(layer.num_params(), 0u);
  EXPECT_EQ(layer.kind(), nn::to_string(kind));
  EXPECT_EQ(nn::parse_activation(layer.kind()), kind);
  Rng rng(3, static_cast<std::uint64_t>(kind));
  auto x = normal_vec(rng, batch * width, 2.0);
  if (kind == nn::ActivationKind::relu)  // keep away from the kink
    for (auto& v : x)
      if (std::fabs(v) < 1e-3) v = v < 0 ? -0.5 : 0.5;
  const auto r = normal_vec(rng, batch * width);

  Mat<double> y("y", batch, width);
  VecU<const double> no_params;
  auto objective = [&](const std::vector<double>& xv) {
    auto dx = to_mat(xv, batch, width);
    layer.forward(no_params, dx, y);
    return dot(mat_host(y), r);
  };

  auto dx = to_mat(x, batch, width);
  layer.forward(no_params, dx, y);
  const auto yh = mat_host(y);
  // The forward against the textbook formula.
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    double expect = 0;
    switch (kind) {
      case nn::ActivationKind::relu: expect = v > 0 ? v : 0; break;
      case nn::ActivationKind::gelu: expect = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); break;
      case nn::ActivationKind::tanh: expect = std::tanh(v); break;
      case nn::ActivationKind::sigmoid: expect = 1 / (1 + std::exp(-v)); break;
    }
    EXPECT_NEAR(yh[i], expect, 1e-14 * (1 + std::fabs(expect))) << "x=" << v;
  }

  auto dy = to_mat(r, batch, width);
  Mat<double> gx("gx", batch, width);
  Kokkos::deep_copy(gx, std::numeric_limits<double>::quiet_NaN());
  layer.backward(no_params, dx, y, dy, gx, VecU<double>());
  const auto analytic = mat_host(gx);
  expect_gradient_close(analytic, finite_difference(x, objective), "activation " + nn::to_string(kind));

  // dx may alias dy.
  layer.forward(no_params, dx, y);
  auto inplace = to_mat(r, batch, width);
  layer.backward(no_params, dx, y, inplace, inplace, VecU<double>());
  EXPECT_EQ(mat_host(inplace), analytic);
}

TEST_P(ActivationGrad, SaturatesWithoutNaN) {
  const auto kind = GetParam();
  nn::Activation<double> layer(kind, 4);
  const std::vector<double> x = {-800.0, -40.0, 40.0, 800.0};
  auto dx = to_mat(x, 1, 4);
  Mat<double> y("y", 1, 4);
  layer.forward(VecU<const double>(), dx, y);
  for (double v : mat_host(y)) EXPECT_TRUE(std::isfinite(v)) << nn::to_string(kind);
  auto dy = to_mat({1, 1, 1, 1}, 1, 4);
  Mat<double> gx("gx", 1, 4);
  layer.backward(VecU<const double>(), dx, y, dy, gx, VecU<double>());
  for (double v : mat_host(gx)) EXPECT_TRUE(std::isfinite(v)) << nn::to_string(kind);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ActivationGrad,
                         ::testing::Values(nn::ActivationKind::relu, nn::ActivationKind::gelu,
                                           nn::ActivationKind::tanh, nn::ActivationKind::sigmoid),
                         [](const auto& param_info) { return nn::to_string(param_info.param); });

TEST(Activation, ParseRejectsUnknownNames) {
  EXPECT_THROW(nn::parse_activation("softplus"), Error);
  EXPECT_THROW(nn::parse_activation(""), Error);
  EXPECT_THROW(nn::parse_activation("ReLU"), Error);
}

// ------------------------------------------------------------------------------------------------
// Softmax cross-entropy

TEST(SoftmaxCrossEntropy, LossesMatchLogSumExp) {
  const std::size_t batch = 6, classes = 5, max_batch = 9;
  Rng rng(4, 1);
  auto z = normal_vec(rng, batch * classes, 3.0);
  for (std::size_t j = 0; j < classes; ++j) z[classes + j] += 700.0;   // huge logits: needs max-shift
  for (std::size_t j = 0; j < classes; ++j) z[2 * classes + j] -= 700.0;
  std::vector<int> labels(batch);
  for (auto& l : labels) l = static_cast<int>(rng.below(classes));
  nn::SoftmaxCrossEntropy<double> ce(max_batch, classes);
  auto dz = to_mat(z, batch, classes);
  auto dl = to_device(labels);
  Vec<double> losses("losses", batch);
  ce.forward(dz, dl, losses);
  const auto got = to_host(losses);
  for (std::size_t i = 0; i < batch; ++i) {
    double zmax = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < classes; ++j) zmax = std::max(zmax, z[i * classes + j]);
    long double s = 0;
    for (std::size_t j = 0; j < classes; ++j) s += std::exp(static_cast<long double>(z[i * classes + j] - zmax));
    const double expect = static_cast<double>(std::log(s)) + zmax - z[i * classes + static_cast<std::size_t>(labels[i])];
    EXPECT_TRUE(std::isfinite(got[i])) << i;
    EXPECT_GE(got[i], 0.0) << i;
    EXPECT_NEAR(got[i], expect, 1e-12 * (1 + std::fabs(zmax))) << "sample " << i;
  }

  // count_correct against a hand arg-max (ties to the lowest class).
  std::size_t correct = 0;
  for (std::size_t i = 0; i < batch; ++i) {
    std::size_t best = 0;
    for (std::size_t j = 1; j < classes; ++j)
      if (z[i * classes + j] > z[i * classes + best]) best = j;
    correct += static_cast<int>(best) == labels[i] ? 1 : 0;
  }
  EXPECT_EQ(nn::SoftmaxCrossEntropy<double>::count_correct(dz, dl), correct);
  // All labels set to the arg-max: every sample is correct.
  std::vector<int> argmax(batch);
  for (std::size_t i = 0; i < batch; ++i)
    argmax[i] = static_cast<int>(std::max_element(z.begin() + static_cast<long>(i * classes),
                                                  z.begin() + static_cast<long>((i + 1) * classes)) -
                                 (z.begin() + static_cast<long>(i * classes)));
  EXPECT_EQ(nn::SoftmaxCrossEntropy<double>::count_correct(dz, to_device(argmax)), batch);
}

TEST(SoftmaxCrossEntropy, WeightedBackwardMatchesFiniteDifferences) {
  const std::size_t batch = 5, classes = 4;
  Rng rng(5, 1);
  const auto z = normal_vec(rng, batch * classes, 1.5);
  std::vector<int> labels(batch);
  for (auto& l : labels) l = static_cast<int>(rng.below(classes));
  const auto coef = normal_vec(rng, batch);
  auto dl = to_device(labels);
  auto dc = to_device(coef);
  nn::SoftmaxCrossEntropy<double> ce(8, classes);
  Vec<double> losses("losses", batch);
  auto objective = [&](const std::vector<double>& zv) {
    ce.forward(to_mat(zv, batch, classes), dl, losses);
    return dot(to_host(losses), coef);
  };
  ce.forward(to_mat(z, batch, classes), dl, losses);
  Mat<double> dz("dz", batch, classes);
  Kokkos::deep_copy(dz, std::numeric_limits<double>::quiet_NaN());
  ce.backward(dc, dl, dz);
  const auto analytic = mat_host(dz);
  expect_gradient_close(analytic, finite_difference(z, objective), "cross-entropy dlogits");
  // Each row of the gradient sums to zero (softmax minus one-hot, scaled).
  for (std::size_t i = 0; i < batch; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < classes; ++j) s += analytic[i * classes + j];
    EXPECT_NEAR(s, 0.0, 1e-14) << i;
  }
}

TEST(SoftmaxCrossEntropy, ShapeMismatchThrows) {
  nn::SoftmaxCrossEntropy<double> ce(4, 3);
  Mat<double> z("z", 5, 3), z2("z", 2, 4), ok("z", 2, 3);
  Vec<int> l5("l", 5), l2("l", 2);
  Vec<double> loss5("loss", 5), loss2("loss", 2), loss3("loss", 3);
  EXPECT_THROW(ce.forward(z, l5, loss5), Error);   // batch above capacity
  EXPECT_THROW(ce.forward(z2, l2, loss2), Error);  // wrong number of classes
  EXPECT_THROW(ce.forward(ok, l2, loss3), Error);  // wrong number of losses
  EXPECT_THROW(ce.forward(ok, l5, loss2), Error);  // wrong number of labels
}

// ------------------------------------------------------------------------------------------------
// MLP

struct MlpCase {
  nn::ActivationKind hidden;
  std::optional<nn::ActivationKind> output;
};

class MlpGrad : public ::testing::TestWithParam<MlpCase> {};

TEST_P(MlpGrad, BackwardMatchesFiniteDifferences) {
  const auto [hidden, output] = GetParam();
  const std::vector<std::size_t> widths = {5, 7, 4, 3};
  const std::size_t batch = 6, max_batch = 9;
  nn::Mlp<double> mlp(widths, hidden, output, max_batch);
  Rng rng(6, static_cast<std::uint64_t>(hidden) * 10 + (output ? 1 + static_cast<std::uint64_t>(*output) : 0));
  Vec<double> theta_d("theta", mlp.num_params());
  mlp.init(theta_d, rng);
  const auto theta = to_host(theta_d);
  const auto x = normal_vec(rng, batch * widths.front());
  const auto r = normal_vec(rng, batch * widths.back());

  // The input lives in the first rows of a larger buffer, as in the trainer.
  Mat<double> xbuf("xbuf", max_batch, widths.front());
  MatU<double> xin = rows_of(xbuf, batch);
  Vec<double> tbuf("tbuf", mlp.num_params());
  auto objective = [&](const std::vector<double>& th, const std::vector<double>& xv) {
    fill_vec(tbuf, th);
    fill_mat(xin, xv);
    return dot(mat_host(mlp.forward(tbuf, xin)), r);
  };

  fill_mat(xin, x);
  auto y = mlp.forward(theta_d, xin);
  ASSERT_EQ(y.extent(0), batch);
  ASSERT_EQ(y.extent(1), widths.back());
  auto dy = to_mat(r, batch, widths.back());
  Vec<double> grad("grad", mlp.num_params());
  Mat<double> dx("dx", batch, widths.front());
  Kokkos::deep_copy(grad, std::numeric_limits<double>::quiet_NaN());  // must be overwritten
  Kokkos::deep_copy(dx, std::numeric_limits<double>::quiet_NaN());
  mlp.backward(theta_d, dy, grad, dx);
  const auto g_theta = to_host(grad);
  const auto g_x = mat_host(dx);

  const std::string label = "MLP hidden=" + nn::to_string(hidden) + (output ? " output=" + nn::to_string(*output) : "");
  expect_gradient_close(g_theta, finite_difference(theta, [&](const std::vector<double>& v) { return objective(v, x); }),
                        label + " dθ");
  expect_gradient_close(g_x, finite_difference(x, [&](const std::vector<double>& v) { return objective(theta, v); }),
                        label + " dx");

  // Without dx, the θ-gradient is unchanged.
  fill_mat(xin, x);
  mlp.forward(theta_d, xin);
  Vec<double> grad2("grad2", mlp.num_params());
  mlp.backward(theta_d, dy, grad2);
  EXPECT_EQ(to_host(grad2), g_theta);
}

INSTANTIATE_TEST_SUITE_P(
    Activations, MlpGrad,
    ::testing::Values(MlpCase{nn::ActivationKind::gelu, std::nullopt}, MlpCase{nn::ActivationKind::tanh, std::nullopt},
                      MlpCase{nn::ActivationKind::relu, std::nullopt},
                      MlpCase{nn::ActivationKind::tanh, nn::ActivationKind::sigmoid},
                      MlpCase{nn::ActivationKind::relu, nn::ActivationKind::sigmoid}),
    [](const auto& param_info) {
      const MlpCase& c = param_info.param;
      return nn::to_string(c.hidden) + (c.output ? "_" + nn::to_string(*c.output) : "");
    });

TEST(Mlp, RandomWidthsBackwardMatchesFiniteDifferences) {
  Rng rng(7, 7);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<std::size_t> widths(2 + rng.below(3));
    for (auto& w : widths) w = 1 + rng.below(6);
    const std::size_t batch = 1 + rng.below(4);
    nn::Mlp<double> mlp(widths, nn::ActivationKind::gelu, std::nullopt, batch);
    Vec<double> theta_d("theta", mlp.num_params());
    mlp.init(theta_d, rng);
    const auto theta = to_host(theta_d);
    const auto x = normal_vec(rng, batch * widths.front());
    const auto r = normal_vec(rng, batch * widths.back());
    auto xd = to_mat(x, batch, widths.front());
    Vec<double> tbuf("tbuf", mlp.num_params());
    auto objective = [&](const std::vector<double>& th) {
      fill_vec(tbuf, th);
      return dot(mat_host(mlp.forward(tbuf, xd)), r);
    };
    mlp.forward(theta_d, xd);
    Vec<double> grad("grad", mlp.num_params());
    mlp.backward(theta_d, to_mat(r, batch, widths.back()), grad);
    std::string label = "MLP widths";
    for (auto w : widths) label += " " + std::to_string(w);
    expect_gradient_close(to_host(grad), finite_difference(theta, objective), label);
  }
}

TEST(Mlp, GradReadyCalledOncePerParameterisedLayerInReverseOrder) {
  const std::vector<std::size_t> widths = {5, 7, 4, 3};
  const std::size_t batch = 3;
  nn::Mlp<double> mlp(widths, nn::ActivationKind::tanh, nn::ActivationKind::sigmoid, batch);
  Rng rng(8, 1);
  Vec<double> theta("theta", mlp.num_params());
  mlp.init(theta, rng);
  auto x = to_mat(normal_vec(rng, batch * widths.front()), batch, widths.front());
  auto dy = to_mat(normal_vec(rng, batch * widths.back()), batch, widths.back());
  Vec<double> grad("grad", mlp.num_params());
  Kokkos::deep_copy(grad, std::numeric_limits<double>::quiet_NaN());

  struct Call {
    std::size_t offset, count;
    std::vector<double> snapshot;  // the slice of the gradient when it was announced ready
  };
  std::vector<Call> calls;
  mlp.forward(theta, x);
  mlp.backward(theta, dy, grad, MatU<double>(), [&](std::size_t offset, std::size_t count) {
    calls.push_back({offset, count, to_host(slice<double>(grad, offset, count))});
  });

  // Expected: the parameterised layers, last first.
  std::vector<std::pair<std::size_t, std::size_t>> expected;
  for (std::size_t l = mlp.num_layers(); l-- > 0;)
    if (mlp.layer(l).num_params() > 0) expected.emplace_back(mlp.param_offset(l), mlp.layer(l).num_params());
  ASSERT_EQ(expected.size(), widths.size() - 1);
  ASSERT_EQ(calls.size(), expected.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].offset, expected[i].first) << "call " << i;
    EXPECT_EQ(calls[i].count, expected[i].second) << "call " << i;
    if (i > 0) {
      EXPECT_LT(calls[i].offset, calls[i - 1].offset) << "calls must come in reverse layer order";
    }
  }
  // The (offset, count) ranges tile θ exactly once.
  std::vector<int> hits(mlp.num_params(), 0);
  for (const auto& c : calls)
    for (std::size_t i = c.offset; i < c.offset + c.count && i < hits.size(); ++i) ++hits[i];
  for (std::size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i], 1) << "θ[" << i << "]";
  // Each slice was final when announced.
  const auto final_grad = to_host(grad);
  for (const auto& c : calls)
    for (std::size_t i = 0; i < c.count; ++i)
      EXPECT_EQ(c.snapshot[i], final_grad[c.offset + i]) << "θ[" << c.offset + i << "] changed after GradReady";
}

TEST(Mlp, RejectsBadShapes) {
  EXPECT_THROW(nn::Mlp<double>({5}, nn::ActivationKind::relu, std::nullopt, 4), Error);
  EXPECT_THROW(nn::Mlp<double>({5, 0, 3}, nn::ActivationKind::relu, std::nullopt, 4), Error);
  EXPECT_THROW(nn::Mlp<double>({5, 3}, nn::ActivationKind::relu, std::nullopt, 0), Error);
  nn::Mlp<double> mlp({5, 4, 3}, nn::ActivationKind::relu, std::nullopt, 4);
  Vec<double> theta("theta", mlp.num_params());
  Mat<double> too_many("x", 5, 5), wrong_width("x", 2, 4), ok("x", 2, 5);
  EXPECT_THROW(mlp.forward(theta, too_many), Error);
  EXPECT_THROW(mlp.forward(theta, wrong_width), Error);
  mlp.forward(theta, ok);
  Mat<double> dy_bad("dy", 3, 3), dy("dy", 2, 3);
  Vec<double> grad("grad", mlp.num_params()), grad_bad("grad", mlp.num_params() - 1);
  EXPECT_THROW(mlp.backward(theta, dy_bad, grad), Error);
  EXPECT_THROW(mlp.backward(theta, dy, grad_bad), Error);
  EXPECT_NO_THROW(mlp.backward(theta, dy, grad));
}

// ------------------------------------------------------------------------------------------------
// Classifier

class ClassifierGrad : public ::testing::TestWithParam<nn::ActivationKind> {};

TEST_P(ClassifierGrad, WeightedLossGradientMatchesFiniteDifferences) {
  const auto act = GetParam();
  const std::size_t batch = 7, features = 4, classes = 3;
  nn::Classifier<double> model({features, 6, 5, classes}, act, 10);
  Rng rng(9, static_cast<std::uint64_t>(act));
  Vec<double> theta_d("theta", model.num_params());
  model.init(theta_d, rng);
  const auto theta = to_host(theta_d);
  auto x = to_mat(normal_vec(rng, batch * features), batch, features);
  std::vector<int> labels(batch);
  for (auto& l : labels) l = static_cast<int>(rng.below(classes));
  auto y = to_device(labels);
  const auto coef = normal_vec(rng, batch);
  auto c = to_device(coef);

  Vec<double> losses("losses", batch), tbuf("tbuf", model.num_params());
  auto objective = [&](const std::vector<double>& th) {
    fill_vec(tbuf, th);
    model.losses(tbuf, x, y, losses);
    return dot(to_host(losses), coef);
  };

  model.losses(theta_d, x, y, losses);
  // The losses are the cross-entropy of the MLP's logits, computed here from the logits.
  const auto logits = mat_host(model.logits());
  const auto lh = to_host(losses);
  for (std::size_t i = 0; i < batch; ++i) {
    double zmax = logits[i * classes];
    for (std::size_t j = 1; j < classes; ++j) zmax = std::max(zmax, logits[i * classes + j]);
    double s = 0;
    for (std::size_t j = 0; j < classes; ++j) s += std::exp(logits[i * classes + j] - zmax);
    EXPECT_NEAR(lh[i], std::log(s) + zmax - logits[i * classes + static_cast<std::size_t>(labels[i])], 1e-12);
  }
  Vec<double> grad("grad", model.num_params());
  Kokkos::deep_copy(grad, std::numeric_limits<double>::quiet_NaN());
  std::size_t ready_calls = 0;
  model.backward(theta_d, c, y, grad, [&](std::size_t, std::size_t) { ++ready_calls; });
  EXPECT_EQ(ready_calls, 3u);
  expect_gradient_close(to_host(grad), finite_difference(theta, objective), "classifier " + nn::to_string(act));
}

INSTANTIATE_TEST_SUITE_P(Activations, ClassifierGrad,
                         ::testing::Values(nn::ActivationKind::gelu, nn::ActivationKind::tanh, nn::ActivationKind::relu),
                         [](const auto& param_info) { return nn::to_string(param_info.param); });

// ------------------------------------------------------------------------------------------------
// Meta-Weight-Net

class MetaWeightNetGrad : public ::testing::TestWithParam<std::tuple<bool, meta::WeightNetKind>> {};

TEST_P(MetaWeightNetGrad, BackwardMatchesFiniteDifferencesOverLambda) {
  const bool normalize = std::get<0>(GetParam());
  const meta::WeightNetKind kind = std::get<1>(GetParam());
  const bool monotone = kind == meta::WeightNetKind::monotone;
  const std::size_t batch = 6, hidden = 5, max_batch = 8;
  if (kind == meta::WeightNetKind::softmax && !normalize) {  // a softmax is its normalisation
    EXPECT_THROW(meta::MetaWeightNet<double>(kind, hidden, normalize, max_batch), Error);
    return;
  }
  meta::MetaWeightNet<double> mwn(kind, hidden, normalize, max_batch);
  EXPECT_EQ(mwn.normalize(), normalize);
  EXPECT_EQ(mwn.num_params(), monotone ? 3 * hidden : (1 * hidden + hidden) + (hidden * 1 + 1));
  Rng rng(10, normalize ? 1 : 0);
  Vec<double> lambda_d("lambda", mwn.num_params());
  mwn.init(lambda_d, rng);
  if (monotone) {  // away from the initial point: random slopes, scales and kinks inside the loss range
    auto h = to_host(lambda_d);
    for (std::size_t k = 0; k < hidden; ++k) {
      h[k] = rng.uniform(-2.0, 1.0);
      h[hidden + k] = rng.uniform(-1.0, 1.0);
      h[2 * hidden + k] = rng.uniform(-3.0, 1.0);
    }
    fill_vec(lambda_d, h);
  }
  const auto lambda = to_host(lambda_d);
  std::vector<double> losses(batch);
  for (auto& l : losses) l = rng.uniform(0.05, 3.0);
  const auto r = normal_vec(rng, batch);
  auto losses_d = to_device(losses);

  Vec<double> w("w", batch), lbuf("lbuf", mwn.num_params());
  auto objective = [&](const std::vector<double>& lam) {
    fill_vec(lbuf, lam);
    mwn.forward(lbuf, losses_d, w);
    return dot(to_host(w), r);
  };

  mwn.forward(lambda_d, losses_d, w);
  const auto weights = to_host(w);
  Vec<double> grad("grad", mwn.num_params());
  Kokkos::deep_copy(grad, std::numeric_limits<double>::quiet_NaN());
  mwn.backward(lambda_d, to_device(r), grad);
  expect_gradient_close(to_host(grad), finite_difference(lambda, objective),
                        normalize ? "MWN normalised dλ" : "MWN dλ");

  // Scores are the un-normalised weights: sigmoid outputs in (0, 1), monotone exp(z) in (0, 1], softmax
  // exp(z(ℓ) − z(0)) > 0.
  Vec<double> s("s", batch);
  mwn.scores(lambda_d, losses_d, s);
  const auto scores = to_host(s);
  double sum = 0, mean_w = 0;
  for (std::size_t i = 0; i < batch; ++i) {
    EXPECT_GT(scores[i], 0.0) << i;
    if (monotone) EXPECT_LE(scores[i], 1.0) << i;
    if (kind == meta::WeightNetKind::sigmoid) EXPECT_LT(scores[i], 1.0) << i;
    sum += scores[i];
    mean_w += weights[i];
  }
  mean_w /= static_cast<double>(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    const double expect = normalize ? scores[i] * static_cast<double>(batch) / sum : scores[i];
    EXPECT_NEAR(weights[i], expect, 1e-14 * (1 + std::fabs(expect))) << i;
  }
  if (normalize) {
    EXPECT_NEAR(mean_w, 1.0, 1e-14);
  } else {
    // Without normalisation nothing forces a mean of one; the weights are the scores themselves.
    for (std::size_t i = 0; i < batch; ++i) EXPECT_EQ(weights[i], scores[i]) << i;
  }
  // The scores do not depend on normalisation: a second net with the other setting agrees.
  if (kind != meta::WeightNetKind::softmax) {
    meta::MetaWeightNet<double> other(kind, hidden, !normalize, max_batch);
    Vec<double> s2("s2", batch);
    other.scores(lambda_d, losses_d, s2);
    EXPECT_EQ(to_host(s2), scores);
  } else {  // softmax: the weights are invariant to a shift of the Mlp's output (its last bias)
    auto shifted = lambda;
    shifted.back() += 3.0;
    fill_vec(lbuf, shifted);
    Vec<double> w2("w2", batch);
    mwn.forward(lbuf, losses_d, w2);
    const auto w2h = to_host(w2);
    for (std::size_t i = 0; i < batch; ++i) EXPECT_NEAR(w2h[i], weights[i], 1e-13) << i;
    mwn.scores(lambda_d, losses_d, s);
  }

  // After scores(), the cached forward is not a weighting forward: backward is refused.
  EXPECT_THROW(mwn.backward(lambda_d, to_device(r), grad), Error);
}

TEST(MonotoneWeightNet, NonIncreasingInTheLossAndOneAtZeroLoss) {
  // z(ℓ) = −Σ a_k [relu(u_k ℓ + c_k) − relu(c_k)] with a_k, u_k > 0: for any λ, exp z(0) = 1 and the
  // weight never rises with the loss; the log-weight is floored at −80 (no zero weights).
  const std::size_t hidden = 7, n = 64;
  meta::MetaWeightNet<double> mwn(meta::WeightNetKind::monotone, hidden, false, n);
  Rng rng(12, 3);
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<double> lam(3 * hidden);
    for (auto& x : lam) x = rng.uniform(-4.0, 4.0);
    std::vector<double> losses(n);
    for (std::size_t i = 0; i < n; ++i) losses[i] = 0.5 * static_cast<double>(i) * static_cast<double>(i) / n;
    Vec<double> s("s", n);
    mwn.scores(to_device(lam), to_device(losses), s);
    const auto r = to_host(s);
    EXPECT_EQ(r[0], 1.0);
    for (std::size_t i = 1; i < n; ++i) {
      EXPECT_LE(r[i], r[i - 1]) << "trial " << trial << " loss " << losses[i];
      EXPECT_GE(r[i], std::exp(-80.0) * (1 - 1e-12)) << i;
    }
  }
  // A steep net floors the log-weight instead of underflowing: a normalised batch of only such
  // samples still has weights (all equal), and their gradient is zero, not NaN.
  std::vector<double> lam(3 * hidden, 6.0);  // a_k = u_k ≈ 6, c_k = 6
  for (std::size_t k = 0; k < hidden; ++k) lam[2 * hidden + k] = 0.0;
  meta::MetaWeightNet<double> norm(meta::WeightNetKind::monotone, hidden, true, 4);
  Vec<double> w("w", 4), g("g", 3 * hidden);
  norm.forward(to_device(lam), to_device(std::vector<double>{5, 6, 7, 8}), w);
  for (double x : to_host(w)) EXPECT_EQ(x, 1.0);
  norm.backward(to_device(lam), to_device(std::vector<double>{1, -1, 2, 0.5}), g);
  for (double x : to_host(g)) EXPECT_EQ(x, 0.0);
  const meta::LogitStats st = norm.last_logit_stats();
  EXPECT_EQ(st.saturated, 4.0);
  // The log-weight itself is not floored: z(ℓ) = −H softplus(6)² ℓ still ranks the floored samples.
  const double sp6 = std::log1p(std::exp(6.0));
  const auto z = to_host(norm.last_log_weights());
  ASSERT_EQ(z.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(z[i], -double(hidden) * sp6 * sp6 * double(5 + i), 1e-9) << i;
  EXPECT_EQ(st.max, z[0]);
}

TEST(SigmoidWeightNet, SaturationIsCounted) {
  // The paper's net: a pre-activation driven far positive gives s = 1 for every sample (the
  // collapsed state); the statistics count them as saturated.
  meta::MetaWeightNet<double> mwn(meta::WeightNetKind::sigmoid, 3, true, 4);
  std::vector<double> lam(mwn.num_params(), 0.0);
  lam.back() = 40.0;  // output bias
  Vec<double> w("w", 4);
  mwn.forward(to_device(lam), to_device(std::vector<double>{0.1, 1, 2, 5}), w);
  const meta::LogitStats st = mwn.last_logit_stats();
  EXPECT_EQ(st.count, 4.0);
  EXPECT_EQ(st.saturated, 4.0);
  EXPECT_EQ(st.min, 40.0);
  for (double x : to_host(w)) EXPECT_EQ(x, 1.0);
}

TEST_P(MetaWeightNetGrad, SingleRankSumFnIsTheIdentity) {
  // A SumFn over one rank (doing nothing) gives the same result as no SumFn.
  const bool normalize = std::get<0>(GetParam());
  const std::size_t batch = 5;
  if (std::get<1>(GetParam()) == meta::WeightNetKind::softmax && !normalize) GTEST_SKIP() << "invalid pair";
  meta::MetaWeightNet<double> mwn(std::get<1>(GetParam()), 4, normalize, batch);
  Rng rng(11, 1);
  Vec<double> lambda("lambda", mwn.num_params());
  mwn.init(lambda, rng);
  std::vector<double> losses(batch);
  for (auto& l : losses) l = rng.uniform(0.1, 2.0);
  auto ld = to_device(losses);
  auto dw = to_device(normal_vec(rng, batch));
  Vec<double> w1("w1", batch), w2("w2", batch), g1("g1", mwn.num_params()), g2("g2", mwn.num_params());
  int sum_calls = 0;
  meta::SumFn noop = [&](double*, int) { ++sum_calls; };
  mwn.forward(lambda, ld, w1);
  mwn.backward(lambda, dw, g1);
  mwn.forward(lambda, ld, w2, noop);
  mwn.backward(lambda, dw, g2, noop);
  EXPECT_EQ(to_host(w1), to_host(w2));
  EXPECT_EQ(to_host(g1), to_host(g2));
  // forward needs the global sum only when normalising; the softmax backward sums R = Σ dw_k r_k before
  // its one backward (the centred upstream), then the gradient with the units' active-row counts.
  const bool softmax = std::get<1>(GetParam()) == meta::WeightNetKind::softmax;
  EXPECT_EQ(sum_calls, softmax ? 3 : (normalize ? 2 : 1));
}

INSTANTIATE_TEST_SUITE_P(WeightNets, MetaWeightNetGrad,
                         ::testing::Combine(::testing::Values(false, true),
                                            ::testing::Values(meta::WeightNetKind::softmax, meta::WeightNetKind::monotone,
                                                              meta::WeightNetKind::sigmoid)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "normalize_" : "raw_") +
                                  meta::to_string(std::get<1>(info.param));
                         });

}  // namespace

// The envelope of the log-weight against a brute-force maximum over a fine grid of losses: exact
// where the net's last slope is negative, the ceiling (softmax) or 0 (sigmoid) where it rises forever.
TEST(WeightNetEnvelope, IsTheSupremumOverLargerLosses) {
  const std::size_t hidden = 6, n = 9, grid = 100001;
  const double top = 20.0;
  for (auto kind : {meta::WeightNetKind::softmax, meta::WeightNetKind::sigmoid, meta::WeightNetKind::monotone}) {
    for (int rising = 0; rising < 2; ++rising) {
      const bool monotone = kind == meta::WeightNetKind::monotone;
      if (monotone && rising) continue;  // non-increasing by construction
      meta::MetaWeightNet<double> mwn(kind, hidden, kind == meta::WeightNetKind::softmax, grid);
      Rng rng(31, 7 + rising);
      std::vector<double> lam(mwn.num_params());
      for (auto& v : lam) v = rng.uniform(-1, 1);
      if (!monotone) {  // λ = [u | c | W2 | b2]: kinks −c/u inside [−6, 6]; the last slope's sign chosen
        double slope = 0;
        for (std::size_t k = 0; k < hidden; ++k) {
          lam[k] = (rng.uniform(0, 1) < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.0);
          lam[hidden + k] = rng.uniform(-3, 3);
          if (k == 0) lam[0] = std::abs(lam[0]);  // at least one unit rises
          if (lam[k] > 0) slope += lam[2 * hidden + k] * lam[k];
        }
        // push the last slope Σ_{u_k > 0} W2_k u_k to the wanted sign through unit 0
        lam[2 * hidden] += (rising ? 1.0 : -1.0) * (std::abs(slope) + 0.5) / lam[0];
      }
      const auto ld = to_device(lam);
      std::vector<double> losses(n), grid_l(grid);
      for (auto& l : losses) l = rng.uniform(0, 8);
      losses[0] = 0;
      for (std::size_t g = 0; g < grid; ++g) grid_l[g] = top * double(g) / double(grid - 1);
      Vec<double> zs("zs", grid), s("s", grid), env("env", n), sn("sn", n);
      mwn.scores(ld, to_device(grid_l), s);
      const auto zg = to_host(mwn.last_log_weights());
      mwn.scores(ld, to_device(losses), sn);
      mwn.log_weight_envelope(ld, env);
      const auto got = to_host(env);
      const auto z = to_host(mwn.last_log_weights());
      for (std::size_t i = 0; i < n; ++i) {
        double want = z[i];
        for (std::size_t g = 0; g < grid; ++g)
          if (grid_l[g] >= losses[i]) want = std::max(want, zg[g]);
        if (rising) want = kind == meta::WeightNetKind::softmax ? 80.0 : 0.0;
        EXPECT_NEAR(got[i], want, 1e-3 * std::max(1.0, std::abs(want)))
            << meta::to_string(kind) << " rising " << rising << " loss " << losses[i];
        EXPECT_GE(got[i], z[i] - 1e-12);  // never below the log-weight itself
      }
    }
  }
}

// A bump by hand: a(ℓ) = b2 + 2 relu(ℓ) − 4 relu(ℓ − 1) peaks at ℓ = 1, so the envelope is flat at the
// peak to its left and follows a(ℓ) to its right.
TEST(WeightNetEnvelope, FlatLeftOfTheBumpsPeak) {
  const std::size_t hidden = 3;
  for (auto kind : {meta::WeightNetKind::softmax, meta::WeightNetKind::sigmoid}) {
    meta::MetaWeightNet<double> mwn(kind, hidden, kind == meta::WeightNetKind::softmax, 8);
    const double b2 = -1.5;  // λ = [u | c | W2 | b2]
    const std::vector<double> lam{1, 1, -1, 0, -1, 0.5, 2, -4, 0, b2};
    const std::vector<double> losses{0, 0.25, 0.5, 1, 1.5, 3};
    Vec<double> s("s", losses.size()), env("env", losses.size());
    mwn.scores(to_device(lam), to_device(losses), s);
    mwn.log_weight_envelope(to_device(lam), env);
    const auto got = to_host(env);
    for (std::size_t i = 0; i < losses.size(); ++i) {
      const double l = losses[i];
      const double a = b2 + (l <= 1 ? 2.0 : 2.0 - 2.0 * (l - 1));  // the envelope of a(ℓ)
      const double want = kind == meta::WeightNetKind::softmax ? a - b2 : -std::log1p(std::exp(-a));
      EXPECT_NEAR(got[i], want, 1e-12) << meta::to_string(kind) << " loss " << l;
    }
  }
}

