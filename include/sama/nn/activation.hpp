#pragma once
// Element-wise activations: ReLU, GELU (exact, erf form), tanh, sigmoid.
#include "sama/nn/layer.hpp"

namespace sama::nn {

enum class ActivationKind { relu, gelu, tanh, sigmoid };
/// "relu", "gelu", "tanh", "sigmoid"; anything else throws sama::Error.
ActivationKind parse_activation(const std::string& name);
std::string to_string(ActivationKind k);

template <class T>
class Activation final : public Layer<T> {
 public:
  Activation(ActivationKind kind, std::size_t width) : Layer<T>(width, width), kind_(kind) {}
  std::string kind() const override { return to_string(kind_); }
  ActivationKind activation() const { return kind_; }
  void forward(VecU<const T> p, MatU<const T> x, MatU<T> y) const override;
  /// dx may alias dy.
  void backward(VecU<const T> p, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  /// ẏ = f'(x) ⊙ ẋ.
  void forward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  /// dx = dy ⊙ f'(x), so R{dx} = ḋy ⊙ f'(x) + dy ⊙ f''(x) ⊙ ẋ (no parameters). dx_dot may alias dy_dot.
  void backward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;

 private:
  ActivationKind kind_;
};

}  // namespace sama::nn
