#include "sama/meta/hypergradient.hpp"

#include "sama/core/error.hpp"
#include "sama/core/vector_ops.hpp"

#include <cmath>

namespace sama::meta {

Method parse_method(const std::string& name) {
  if (name == "none") return Method::none;
  if (name == "sama") return Method::sama;
  if (name == "finite_difference") return Method::finite_difference;
  if (name == "sama_jvp") return Method::sama_jvp;
  if (name == "neumann") return Method::neumann;
  if (name == "cg") return Method::cg;
  if (name == "unrolled") return Method::unrolled;
  fail("unknown meta method '{}' (expected none, sama, finite_difference, sama_jvp, neumann, cg or unrolled)", name);
}

std::string to_string(Method m) {
  switch (m) {
    case Method::none: return "none";
    case Method::sama: return "sama";
    case Method::finite_difference: return "finite_difference";
    case Method::sama_jvp: return "sama_jvp";
    case Method::neumann: return "neumann";
    case Method::cg: return "cg";
    case Method::unrolled: return "unrolled";
  }
  return "?";
}

template <class T>
ProbeWorkspace<T>::ProbeWorkspace(std::size_t num_params, std::size_t max_batch)
    : theta_saved(make_vec<T>("sama::Probe::theta_saved", num_params)),
      loss_plus(make_vec<T>("sama::Probe::loss_plus", max_batch)),
      loss_minus(make_vec<T>("sama::Probe::loss_minus", max_batch)) {}

template <class T>
ProbeInfo directional_loss_derivative(nn::Classifier<T>& model, VecU<T> theta, VecU<const T> w, double alpha,
                                      MatU<const T> x, VecU<const int> y, ProbeWorkspace<T>& ws, VecU<T> delta) {
  const std::size_t batch = x.extent(0);
  ProbeInfo info;
  info.w_norm = ops::norm2<T>(w);
  if (!(info.w_norm > 0) || !std::isfinite(info.w_norm))
    fail("SAMA probe: the direction D⊙v has norm {} (zero or non-finite); cannot form ε = α/‖w‖", info.w_norm);
  info.epsilon = alpha / info.w_norm;
  const T eps = static_cast<T>(info.epsilon);
  VecU<T> saved = ws.theta_saved;
  VecU<T> lp = slice<T>(ws.loss_plus, 0, batch);
  VecU<T> lm = slice<T>(ws.loss_minus, 0, batch);

  ops::save_and_add_scaled<T>(theta, eps, w, saved);  // saved = θ;  θ⁺ = θ + εw
  model.losses(theta, x, y, lp);
  ops::add_scaled<T>(saved, -eps, w, theta);  // θ⁻ = θ − εw
  model.losses(theta, x, y, lm);
  ops::copy<T>(saved, theta);  // restore bitwise
  // The effective radius is what float arithmetic produced: ε as stored in T.
  ops::scaled_difference<T>(lp, lm, static_cast<T>(1.0 / (2.0 * static_cast<double>(eps))), delta);
  return info;
}

template struct ProbeWorkspace<float>;
template struct ProbeWorkspace<double>;
template ProbeInfo directional_loss_derivative<float>(nn::Classifier<float>&, VecU<float>, VecU<const float>, double,
                                                      MatU<const float>, VecU<const int>, ProbeWorkspace<float>&,
                                                      VecU<float>);
template ProbeInfo directional_loss_derivative<double>(nn::Classifier<double>&, VecU<double>, VecU<const double>,
                                                       double, MatU<const double>, VecU<const int>,
                                                       ProbeWorkspace<double>&, VecU<double>);

}  // namespace sama::meta
