#pragma once
// Linear layer y = x Wᵀ + b. Parameters, in order: W [out][in] (row-major), b [out].
#include "sama/nn/layer.hpp"

namespace sama::nn {

template <class T>
class Linear final : public Layer<T> {
 public:
  Linear(std::size_t in, std::size_t out) : Layer<T>(in, out) {}
  std::string kind() const override { return "linear"; }
  std::size_t num_params() const override { return this->out() * this->in() + this->out(); }
  /// PyTorch's default: W and b uniform in ±1/sqrt(in).
  void init(VecU<T> p, Rng& rng) const override;
  void forward(VecU<const T> p, MatU<const T> x, MatU<T> y) const override;
  void backward(VecU<const T> p, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  /// ẏ = ẋ Wᵀ + x Ẇᵀ + ḃ.
  void forward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  /// R{dW} = ḋyᵀ x + dyᵀ ẋ,  R{db} = Σ_i ḋy_i,  R{dx} = ḋy W + dy Ẇ.
  void backward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;
};

}  // namespace sama::nn
