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
};

}  // namespace sama::nn
