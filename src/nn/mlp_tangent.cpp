// Forward mode of the MLP (the R-operator of Pearlmutter 1994): tangents of the forward pass and of
// the backward pass along a parameter tangent θ̇, layer by layer. A linearisation (the backward of dy
// with every layer's upstream gradient kept) followed by the tangent passes gives exact
// Hessian-vector products; further directions at the same point reuse the linearisation.
#include "sama/core/error.hpp"
#include "sama/nn/mlp.hpp"

#include <algorithm>

namespace sama::nn {

template <class T>
void Mlp<T>::ensure_tangent_workspace() {
  if (!acts_dot_.empty()) return;
  std::size_t widest = 0;
  for (const auto& layer : layers_) {
    acts_dot_.push_back(make_mat<T>("sama::Mlp::activation_dot", max_batch_, layer->out()));
    upstream_.push_back(make_mat<T>("sama::Mlp::upstream", max_batch_, layer->out()));
    widest = std::max({widest, layer->in(), layer->out()});
  }
  delta_dot_a_ = make_mat<T>("sama::Mlp::delta_dot_a", max_batch_, widest);
  delta_dot_b_ = make_mat<T>("sama::Mlp::delta_dot_b", max_batch_, widest);
}

template <class T>
MatU<const T> Mlp<T>::forward_tangent(VecU<const T> theta, VecU<const T> theta_dot) {
  SAMA_REQUIRE(batch_ > 0 && input_.data() != nullptr, "MLP forward_tangent: no forward pass to linearise");
  SAMA_REQUIRE(theta.extent(0) == num_params_ && theta_dot.extent(0) == num_params_,
               "MLP forward_tangent: θ has {} and θ̇ {} entries, the model needs {}", theta.extent(0),
               theta_dot.extent(0), num_params_);
  ensure_tangent_workspace();
  MatU<const T> x = input_, x_dot;  // the input has no tangent (an empty view)
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const std::size_t np = layers_[i]->num_params();
    MatU<const T> y = rows_of(acts_[i], batch_);
    MatU<T> y_dot = rows_of(acts_dot_[i], batch_);
    layers_[i]->forward_tangent(slice<const T>(theta, offsets_[i], np), slice<const T>(theta_dot, offsets_[i], np),
                                x, x_dot, y, y_dot);
    x = y;
    x_dot = y_dot;
  }
  tangent_batch_ = batch_;
  return x_dot;
}

template <class T>
void Mlp<T>::backward_linearize(VecU<const T> theta, MatU<const T> dy, VecU<T> grad) {
  SAMA_REQUIRE(batch_ > 0 && dy.extent(0) == batch_ && dy.extent(1) == out(),
               "MLP backward_linearize: dy is {}x{}, expected {}x{}", dy.extent(0), dy.extent(1), batch_, out());
  SAMA_REQUIRE(grad.extent(0) == num_params_, "MLP backward_linearize: gradient has {} entries, expected {}",
               grad.extent(0), num_params_);
  ensure_tangent_workspace();
  Kokkos::deep_copy(rows_of(upstream_.back(), batch_), dy);
  // backward() with the upstream gradient of layer i kept in upstream_[i] instead of ping-pong buffers.
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const auto& layer = *layers_[i];
    const std::size_t np = layer.num_params();
    MatU<const T> x = i == 0 ? input_ : MatU<const T>(rows_of(acts_[i - 1], batch_));
    MatU<T> down = i == 0 ? MatU<T>() : rows_of(upstream_[i - 1], batch_);
    layer.backward(slice<const T>(theta, offsets_[i], np), x, rows_of(acts_[i], batch_), rows_of(upstream_[i], batch_),
                   down, slice<T>(grad, offsets_[i], np));
  }
  linear_batch_ = batch_;
}

template <class T>
void Mlp<T>::backward_tangent(VecU<const T> theta, VecU<const T> theta_dot, MatU<const T> dy_dot, VecU<T> grad_dot,
                              const GradReady& on_ready) {
  SAMA_REQUIRE(batch_ > 0 && tangent_batch_ == batch_ && linear_batch_ == batch_,
               "MLP backward_tangent: backward_linearize and forward_tangent must follow the last forward (batch {})",
               batch_);
  SAMA_REQUIRE(dy_dot.extent(0) == batch_ && dy_dot.extent(1) == out() && grad_dot.extent(0) == num_params_,
               "MLP backward_tangent: ḋy is {}x{} (expected {}x{}), gradient tangent of {} entries (expected {})",
               dy_dot.extent(0), dy_dot.extent(1), batch_, out(), grad_dot.extent(0), num_params_);
  MatU<const T> upstream_dot = dy_dot;
  bool use_a = true;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const auto& layer = *layers_[i];
    const std::size_t np = layer.num_params();
    MatU<const T> x = i == 0 ? input_ : MatU<const T>(rows_of(acts_[i - 1], batch_));
    MatU<const T> x_dot = i == 0 ? MatU<const T>() : MatU<const T>(rows_of(acts_dot_[i - 1], batch_));
    MatU<T> down_dot;  // tangent of the gradient w.r.t. the layer's input (none below layer 0)
    if (i > 0) {
      down_dot = MatU<T>((use_a ? delta_dot_a_ : delta_dot_b_).data(), batch_, layer.in());
      use_a = !use_a;
    }
    layer.backward_tangent(slice<const T>(theta, offsets_[i], np), slice<const T>(theta_dot, offsets_[i], np), x,
                           x_dot, rows_of(acts_[i], batch_), rows_of(acts_dot_[i], batch_),
                           rows_of(upstream_[i], batch_), upstream_dot, down_dot, slice<T>(grad_dot, offsets_[i], np));
    if (np > 0 && on_ready) on_ready(offsets_[i], np);
    upstream_dot = down_dot;
  }
}

template void Mlp<float>::ensure_tangent_workspace();
template void Mlp<double>::ensure_tangent_workspace();
template MatU<const float> Mlp<float>::forward_tangent(VecU<const float>, VecU<const float>);
template MatU<const double> Mlp<double>::forward_tangent(VecU<const double>, VecU<const double>);
template void Mlp<float>::backward_linearize(VecU<const float>, MatU<const float>, VecU<float>);
template void Mlp<double>::backward_linearize(VecU<const double>, MatU<const double>, VecU<double>);
template void Mlp<float>::backward_tangent(VecU<const float>, VecU<const float>, MatU<const float>, VecU<float>,
                                           const GradReady&);
template void Mlp<double>::backward_tangent(VecU<const double>, VecU<const double>, MatU<const double>, VecU<double>,
                                            const GradReady&);

}  // namespace sama::nn
