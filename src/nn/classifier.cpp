// The classifier's forward mode: per-sample directional derivatives of the losses and exact
// Hessian-vector products of a weighted loss, through the network's and the cross-entropy's R-operators.
//
//   forward:          z = net_θ(x),  ℓ_i = CE(z_i, y_i)
//   tangent forward:  ż = R{z} along θ̇ = v,   ℓ̇_i = p_i·ż_i − ż_{i,y_i}
//   reverse sweep:    dz_i = c_i (p_i − e_{y_i}),  R{dz_i} = c_i p_i ⊙ (ż_i − p_i·ż_i)
//                     → ∇_θ L and R{∇_θ L} = ∇²_θ L · v  with L = Σ_i c_i ℓ_i
// The first part (forward, dz, the backward keeping each layer's upstream gradient) depends on the
// point only; hvp_again() repeats the second for another v at the same point.
#include "sama/core/error.hpp"
#include "sama/nn/classifier.hpp"

namespace sama::nn {

namespace {
template <class T>
void ensure(Mat<T>& m, const char* label, std::size_t rows, std::size_t cols) {
  if (m.extent(0) < rows || m.extent(1) != cols) m = make_mat<T>(label, rows, cols);
}
template <class T>
void ensure(Vec<T>& v, const char* label, std::size_t n) {
  if (v.extent(0) < n) v = make_vec<T>(label, n);
}
}  // namespace

template <class T>
void Classifier<T>::reserve_forward_mode(bool hvp) {
  net_.reserve_tangent_workspace();
  if (!hvp) return;
  ensure(loss_scratch_, "sama::Classifier::loss_scratch", net_.max_batch());
  ensure(grad_scratch_, "sama::Classifier::grad_scratch", num_params());
  ensure(dlogits_dot_, "sama::Classifier::dlogits_dot", net_.max_batch(), net_.out());
}

template <class T>
void Classifier<T>::loss_jvp(VecU<const T> theta, VecU<const T> dir, MatU<const T> x, VecU<const int> y,
                             VecU<T> losses, VecU<T> dlosses) {
  SAMA_REQUIRE(dlosses.extent(0) == x.extent(0), "Classifier::loss_jvp: {} outputs for a batch of {}",
               dlosses.extent(0), x.extent(0));
  this->losses(theta, x, y, losses);
  MatU<const T> z_dot = net_.forward_tangent(theta, dir);
  ce_.forward_tangent(z_dot, y, dlosses);
}

template <class T>
void Classifier<T>::hvp(VecU<const T> theta, VecU<const T> coef, MatU<const T> x, VecU<const int> y, VecU<const T> v,
                        VecU<T> out, VecU<T> grad, VecU<T> dlosses, const GradReady& on_ready) {
  const std::size_t b = x.extent(0), np = num_params();
  SAMA_REQUIRE(coef.extent(0) == b && (grad.data() == nullptr || grad.extent(0) == np),
               "Classifier::hvp: {} coefficients for a batch of {}; gradient of {} for {} parameters", coef.extent(0),
               b, grad.extent(0), np);
  ensure(loss_scratch_, "sama::Classifier::loss_scratch", net_.max_batch());
  if (grad.data() == nullptr) {
    ensure(grad_scratch_, "sama::Classifier::grad_scratch", np);
    grad = grad_scratch_;
  }
  // The point: forward, dz_i = c_i (p_i − e_{y_i}), and the backward that keeps the upstream gradients.
  losses(theta, x, y, slice<T>(loss_scratch_, 0, b));
  MatU<T> dz(dlogits_.data(), b, net_.out());
  ce_.backward(coef, y, dz);
  net_.backward_linearize(theta, dz, grad);
  linearized_at_ = forwards_;
  hvp_again(theta, coef, y, v, out, dlosses, on_ready);
}

template <class T>
void Classifier<T>::hvp_again(VecU<const T> theta, VecU<const T> coef, VecU<const int> y, VecU<const T> v,
                              VecU<T> out, VecU<T> dlosses, const GradReady& on_ready) {
  SAMA_REQUIRE(linearized_at_ != 0 && linearized_at_ == forwards_,
               "Classifier::hvp_again: no hvp() at this point (a forward pass ran since, or none before)");
  const std::size_t b = logits_.extent(0), np = num_params();
  SAMA_REQUIRE(coef.extent(0) == b && y.extent(0) == b && out.extent(0) == np &&
                   (dlosses.data() == nullptr || dlosses.extent(0) == b),
               "Classifier::hvp: {} coefficients, {} labels and {} per-sample outputs for a batch of {}; {} outputs "
               "for {} parameters",
               coef.extent(0), y.extent(0), dlosses.extent(0), b, out.extent(0), np);
  ensure(dlogits_dot_, "sama::Classifier::dlogits_dot", net_.max_batch(), net_.out());
  // The direction: ż, then R{dz_i} = c_i p_i ⊙ (ż_i − p_i·ż_i), then R{∇_θ L} = H v.
  MatU<const T> z_dot = net_.forward_tangent(theta, v);
  if (dlosses.data() != nullptr) ce_.forward_tangent(z_dot, y, dlosses);
  MatU<T> dz_dot(dlogits_dot_.data(), b, net_.out());
  ce_.backward_tangent(coef, z_dot, dz_dot);
  net_.backward_tangent(theta, v, dz_dot, out, on_ready);
}

template class Classifier<float>;
template class Classifier<double>;

}  // namespace sama::nn
