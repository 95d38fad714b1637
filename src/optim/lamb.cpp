// LAMB with the exact adaptation (block-diagonal Jacobian, one rank-one correction per group); see
// sama/optim/lamb.hpp.
#include "sama/optim/lamb.hpp"

#include "sama/core/kernel_math.hpp"
#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

void check_lr(double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer 'lamb': learning rate must be finite and >= 0, got {}", lr);
}

/// Σ_{i in [off, off+cnt)} x_i·y_i, accumulated in double.
template <class X, class Y>
double dot(const X& x, const Y& y, std::size_t off, std::size_t cnt, const char* label) {
  double s = 0.0;
  Kokkos::parallel_reduce(
      label, Range(off, off + cnt),
      KOKKOS_LAMBDA(const std::size_t i, double& acc) { acc += static_cast<double>(x(i)) * static_cast<double>(y(i)); },
      s);
  return s;
}

/// A_i = ∂r_i/∂g_i, the Adam adaptation at lr = 1 (adam.hpp): with s = √v̂,
///   A = (ca − cb·m·g/s·1/(s+ε))/(s+ε),  ca = (1−β1)/(1−β1ᵗ),  cb = (1−β2)/((1−β2ᵗ)(1−β1ᵗ)).
template <class T>
struct AdamDiag {
  T ca, cb, inv_sqrt_bc2, eps;
  KOKKOS_INLINE_FUNCTION T operator()(T m, T v, T g) const {
    const T s = kmath::kk_sqrt(v) * inv_sqrt_bc2;
    const T r = T(1) / (s + eps);
    const T q = s > T(0) ? g / s : T(0);  // |g|/√v̂ is bounded; the limit at v̂ = 0 is 0
    return r * (ca - cb * (m * r) * q);
  }
};

}  // namespace

template <class T>
Lamb<T>::Lamb(std::size_t n, double beta1, double beta2, double eps, double weight_decay,
              std::vector<std::pair<std::size_t, std::size_t>> groups)
    : n_(n), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay), groups_(std::move(groups)) {
  SAMA_REQUIRE(beta1 >= 0.0 && beta1 < 1.0, "optimizer 'lamb': beta1 must be in [0, 1), got {}", beta1);
  SAMA_REQUIRE(beta2 >= 0.0 && beta2 < 1.0, "optimizer 'lamb': beta2 must be in [0, 1), got {}", beta2);
  SAMA_REQUIRE(eps > 0.0 && std::isfinite(eps), "optimizer 'lamb': eps must be finite and > 0, got {}", eps);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer 'lamb': weight_decay must be finite and >= 0, got {}", weight_decay);
  if (groups_.empty() && n_ > 0) groups_.emplace_back(0, n_);
  std::size_t end = 0;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const auto [off, cnt] = groups_[k];
    SAMA_REQUIRE(off == end && cnt > 0,
                 "optimizer 'lamb': parameter group {} = (offset {}, count {}) must start at {} (where the previous "
                 "group ends) and be non-empty: groups tile [0, {}) in order",
                 k, off, cnt, end, n_);
    end = off + cnt;
  }
  SAMA_REQUIRE(end == n_, "optimizer 'lamb': parameter groups cover [0, {}), the optimizer has {} parameters", end, n_);
  exp_avg_ = Vec<T>("sama::Lamb::exp_avg", n_);
  exp_avg_sq_ = Vec<T>("sama::Lamb::exp_avg_sq", n_);
  last_grad_ = Vec<T>("sama::Lamb::last_grad", n_);
  last_update_ = Vec<T>("sama::Lamb::last_update", n_);
  param_norm_ = Vec<T>("sama::Lamb::param_norm", groups_.size());
  param_norm_host_ = HostVec<T>("sama::Lamb::param_norm_host", groups_.size());
}

template <class T>
std::vector<typename Lamb<T>::Ratio> Lamb<T>::ratios() const {
  const HostVec<T>& pn = param_norm_host_;
  Kokkos::deep_copy(pn, param_norm_);
  std::vector<Ratio> out;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const auto [off, cnt] = groups_[k];
    const double rr = dot(last_update_, last_update_, off, cnt, "sama::Lamb::update_norm");
    const double p = static_cast<double>(pn(k));
    const bool dep = p > 0.0 && rr > 0.0;
    out.push_back({dep ? p / std::sqrt(rr) : 1.0, rr, dep});
  }
  return out;
}

template <class T>
std::vector<double> Lamb<T>::trust_ratios() const {
  std::vector<double> rho;
  for (const auto& r : ratios()) rho.push_back(r.rho);
  return rho;
}

template <class T>
void Lamb<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer 'lamb': expected {} parameters and gradients, got {} and {}", n_, theta.extent(0),
               grad.extent(0));
  check_lr(lr);
  const long t = steps_ + 1;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t));
  const T b1 = static_cast<T>(beta1_);
  const T b2 = static_cast<T>(beta2_);
  const T omb1 = static_cast<T>(1.0 - beta1_);
  const T omb2 = static_cast<T>(1.0 - beta2_);
  const T eps = static_cast<T>(eps_);
  const T inv_bc1 = static_cast<T>(1.0 / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T wd = static_cast<T>(weight_decay_);
  auto m = exp_avg_;
  auto v = exp_avg_sq_;
  auto last = last_grad_;
  auto upd = last_update_;
  // r = m̂/(√v̂ + ε) + wd·θ, with θ before the step.
  Kokkos::parallel_for(
      "sama::Lamb::moments", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T g = grad(i);
        const T mi = b1 * m(i) + omb1 * g;
        const T vi = b2 * v(i) + omb2 * g * g;
        m(i) = mi;
        v(i) = vi;
        last(i) = g;
        upd(i) = mi * inv_bc1 / (kmath::kk_sqrt(vi) * inv_sqrt_bc2 + eps) + wd * theta(i);
      });
  // ‖θ_l‖ before the step, stored in T so that the step and a restored D use the same value.
  const HostVec<T>& pn = param_norm_host_;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const auto [off, cnt] = groups_[k];
    pn(k) = static_cast<T>(std::sqrt(dot(theta, theta, off, cnt, "sama::Lamb::param_norm")));
  }
  Kokkos::deep_copy(param_norm_, pn);
  const auto rs = ratios();
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const auto [off, cnt] = groups_[k];
    const T scale = static_cast<T>(lr * rs[k].rho);
    Kokkos::parallel_for(
        "sama::Lamb::step", Range(off, off + cnt), KOKKOS_LAMBDA(const std::size_t i) { theta(i) -= scale * upd(i); });
  }
  steps_ = t;
  last_lr_ = lr;
}

template <class T>
void Lamb<T>::apply(VecU<const T> vin, VecU<T> out, bool transpose) const {
  const char* what = transpose ? "apply_adaptation" : "apply_jacobian";
  SAMA_REQUIRE(steps_ > 0, "optimizer 'lamb': {} called before any step (D is undefined)", what);
  SAMA_REQUIRE(vin.extent(0) == n_ && out.extent(0) == n_,
               "optimizer 'lamb': {} expects {} elements, got v = {} and out = {}", what, n_, vin.extent(0),
               out.extent(0));
  const double t = static_cast<double>(steps_);
  const double bc1 = 1.0 - std::pow(beta1_, t);
  const double bc2 = 1.0 - std::pow(beta2_, t);
  const AdamDiag<T> diag{static_cast<T>((1.0 - beta1_) / bc1), static_cast<T>((1.0 - beta2_) / (bc2 * bc1)),
                         static_cast<T>(1.0 / std::sqrt(bc2)), static_cast<T>(eps_)};
  auto m = exp_avg_;
  auto v = exp_avg_sq_;
  auto g = last_grad_;
  auto r = last_update_;
  const auto rs = ratios();
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const auto [off, cnt] = groups_[k];
    const T lr_rho = static_cast<T>(last_lr_ * rs[k].rho);
    if (!rs[k].depends_on_g) {  // ρ_l = 1: D_l = lr·diag(A)
      Kokkos::parallel_for(
          "sama::Lamb::adaptation_diagonal", Range(off, off + cnt),
          KOKKOS_LAMBDA(const std::size_t i) { out(i) = lr_rho * diag(m(i), v(i), g(i)) * vin(i); });
      continue;
    }
    // The rank-one part: c = ⟨r, v⟩/‖r‖² (Dᵀv) or ⟨r, A⊙v⟩/‖r‖² (D·v), read before out is written.
    double s = 0.0;
    if (transpose) {
      s = dot(r, vin, off, cnt, "sama::Lamb::adaptation_projection");
    } else {
      Kokkos::parallel_reduce(
          "sama::Lamb::jacobian_projection", Range(off, off + cnt),
          KOKKOS_LAMBDA(const std::size_t i, double& acc) {
            acc += static_cast<double>(r(i)) * static_cast<double>(diag(m(i), v(i), g(i)) * vin(i));
          },
          s);
    }
    const T c = static_cast<T>(s / rs[k].rr);
    if (transpose) {
      Kokkos::parallel_for(
          "sama::Lamb::apply_adaptation", Range(off, off + cnt),
          KOKKOS_LAMBDA(const std::size_t i) { out(i) = lr_rho * diag(m(i), v(i), g(i)) * (vin(i) - c * r(i)); });
    } else {
      Kokkos::parallel_for(
          "sama::Lamb::apply_jacobian", Range(off, off + cnt),
          KOKKOS_LAMBDA(const std::size_t i) { out(i) = lr_rho * (diag(m(i), v(i), g(i)) * vin(i) - c * r(i)); });
    }
  }
}

template <class T>
void Lamb<T>::apply_adaptation(VecU<const T> v, VecU<T> out) const {
  apply(v, out, true);
}

template <class T>
void Lamb<T>::apply_jacobian(VecU<const T> v, VecU<T> out) const {
  apply(v, out, false);
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> Lamb<T>::state() const {
  return {{"exp_avg", exp_avg_},
          {"exp_avg_sq", exp_avg_sq_},
          {"last_grad", last_grad_},
          {"last_update", last_update_},
          {"param_norm", param_norm_}};
}

template <class T>
void Lamb<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer 'lamb': step count must be >= 0, got {}", t);
  steps_ = t;
}

template <class T>
void Lamb<T>::set_last_lr(double lr) {
  check_lr(lr);
  last_lr_ = lr;
}

template class Lamb<float>;
template class Lamb<double>;

}  // namespace sama::optim
