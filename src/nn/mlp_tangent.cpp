// Forward mode of the MLP (the R-operator of Pearlmutter 1994): tangents of the forward pass and of
// the backward pass along a parameter tangent θ̇, layer by layer. Combined they give exact
// Hessian-vector products: after forward and forward_tangent, one reverse sweep carries both the
// gradient dy ↦ ∂(dy·y)/∂θ and its directional derivative.
#include "sama/core/error.hpp"
#include "sama/nn/mlp.hpp"

#include <algorithm>

namespace sama::nn {

template <class T>
MatU<const T> Mlp<T>::forward_tangent(VecU<const T> theta, VecU<const T> theta_dot) {
  SAMA_REQUIRE(batch_ > 0 && input_.data() != nullptr, "MLP forward_tangent: no forward pass to linearise");
  SAMA_REQUIRE(theta.extent(0) == num_params_ && theta_dot.extent(0) == num_params_,
               "MLP forward_tangent: θ has {} and θ̇ {} entries, the model needs {}", theta.extent(0),
               theta_dot.extent(0), num_params_);
  if (acts_dot_.empty()) {  // first use: the same shapes as the activation workspace
    std::size_t widest = 0;
    for (const auto& layer : layers_) {
      acts_dot_.push_back(make_mat<T>("sama::Mlp::activation_dot", max_batch_, layer->out()));
      widest = std::max({widest, layer->in(), layer->out()});
    }
    delta_dot_a_ = make_mat<T>("sama::Mlp::delta_dot_a", max_batch_, widest);
    delta_dot_b_ = make_mat<T>("sama::Mlp::delta_dot_b", max_batch_, widest);
  }
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
void Mlp<T>::backward_tangent(VecU<const T> theta, VecU<const T> theta_dot, MatU<const T> dy, MatU<const T> dy_dot,
                              VecU<T> grad, VecU<T> grad_dot, const GradReady& on_ready) {
  SAMA_REQUIRE(tangent_batch_ == batch_ && batch_ > 0,
               "MLP backward_tangent: forward_tangent must follow the last forward (batch {})", batch_);
  SAMA_REQUIRE(dy.extent(0) == batch_ && dy.extent(1) == out() && dy_dot.extent(0) == batch_ &&
                   dy_dot.extent(1) == out(),
               "MLP backward_tangent: dy is {}x{} and ḋy {}x{}, expected {}x{}", dy.extent(0), dy.extent(1),
               dy_dot.extent(0), dy_dot.extent(1), batch_, out());
  SAMA_REQUIRE(grad.extent(0) == num_params_ && grad_dot.extent(0) == num_params_,
               "MLP backward_tangent: gradient buffers of {} and {} entries, expected {}", grad.extent(0),
               grad_dot.extent(0), num_params_);
  MatU<const T> upstream = dy, upstream_dot = dy_dot;
  bool use_a = true;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const auto& layer = *layers_[i];
    const std::size_t np = layer.num_params();
    MatU<const T> x = i == 0 ? input_ : MatU<const T>(rows_of(acts_[i - 1], batch_));
    MatU<const T> x_dot = i == 0 ? MatU<const T>() : MatU<const T>(rows_of(acts_dot_[i - 1], batch_));
    MatU<const T> y = rows_of(acts_[i], batch_), y_dot = rows_of(acts_dot_[i], batch_);
    MatU<T> down, down_dot;  // gradient w.r.t. the layer's input and its tangent (none below layer 0)
    if (i > 0) {
      down = MatU<T>((use_a ? delta_a_ : delta_b_).data(), batch_, layer.in());
      down_dot = MatU<T>((use_a ? delta_dot_a_ : delta_dot_b_).data(), batch_, layer.in());
      use_a = !use_a;
    }
    const auto p = slice<const T>(theta, offsets_[i], np);
    layer.backward(p, x, y, upstream, down, slice<T>(grad, offsets_[i], np));
    layer.backward_tangent(p, slice<const T>(theta_dot, offsets_[i], np), x, x_dot, y, y_dot, upstream, upstream_dot,
                           down_dot, slice<T>(grad_dot, offsets_[i], np));
    if (np > 0 && on_ready) on_ready(offsets_[i], np);
    upstream = down;
    upstream_dot = down_dot;
  }
}

template MatU<const float> Mlp<float>::forward_tangent(VecU<const float>, VecU<const float>);
template MatU<const double> Mlp<double>::forward_tangent(VecU<const double>, VecU<const double>);
template void Mlp<float>::backward_tangent(VecU<const float>, VecU<const float>, MatU<const float>, MatU<const float>,
                                           VecU<float>, VecU<float>, const GradReady&);
template void Mlp<double>::backward_tangent(VecU<const double>, VecU<const double>, MatU<const double>,
                                            MatU<const double>, VecU<double>, VecU<double>, const GradReady&);

}  // namespace sama::nn
