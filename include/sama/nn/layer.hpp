#pragma once
// A layer maps x [B, in] to y [B, out] with parameters p (a slice of the flat θ buffer).
// Layers hold no parameters and no activations: the model owns the flat buffer, the trainer owns
// the gradient buffer, and the MLP owns the activation workspace.
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"

#include <string>

namespace sama::nn {

template <class T>
class Layer {
 public:
  Layer(std::size_t in, std::size_t out) : in_(in), out_(out) {}
  virtual ~Layer() = default;
  virtual std::string kind() const = 0;
  std::size_t in() const { return in_; }
  std::size_t out() const { return out_; }
  virtual std::size_t num_params() const { return 0; }
  /// Seeded initialisation of this layer's parameters.
  virtual void init(VecU<T> /*p*/, Rng& /*rng*/) const {}
  /// y = f(x; p).
  virtual void forward(VecU<const T> p, MatU<const T> x, MatU<T> y) const = 0;
  /// Given x, y = f(x) and dy = ∂L/∂y: dp = ∂L/∂p (overwritten) and, when dx.data() != nullptr,
  /// dx = ∂L/∂x (overwritten). dx may alias dy only for element-wise layers.
  virtual void backward(VecU<const T> p, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                        VecU<T> dp) const = 0;

 private:
  std::size_t in_, out_;
};

}  // namespace sama::nn
