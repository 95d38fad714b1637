#pragma once
// A layer maps x [B, in] to y [B, out] with parameters p (a slice of the flat θ buffer).
// Layers hold no parameters and no activations: the model owns the flat buffer, the trainer owns
// the gradient buffer, and the MLP owns the activation workspace.
#include "sama/core/error.hpp"
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

  // Forward mode (the R-operator of Pearlmutter 1994): the directional derivative of forward and of
  // backward along tangents ṗ of the parameters and ẋ of the input. An empty view (data() == nullptr)
  // stands for a zero tangent. Exact Hessian-vector products are R{backward} after R{forward}.

  /// ẏ = ∂f/∂p·ṗ + ∂f/∂x·ẋ at the (x, y = f(x; p)) of a forward (overwritten).
  virtual void forward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                               MatU<const T> y, MatU<T> y_dot) const;
  /// backward maps dy to (dx, dp) at (p, x, y); its tangent along (ṗ, ẋ, ẏ) and ḋy = R{dy}:
  /// dp_dot = R{dp} (overwritten) and, when dx_dot.data() != nullptr, dx_dot = R{dx} (overwritten).
  virtual void backward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                                MatU<T> dx_dot, VecU<T> dp_dot) const;

 private:
  std::size_t in_, out_;
};

/// Layers without a forward mode say so (Linear and Activation override both).
template <class T>
void Layer<T>::forward_tangent(VecU<const T>, VecU<const T>, MatU<const T>, MatU<const T>, MatU<const T>,
                               MatU<T>) const {
  fail("layer '{}' has no forward-mode (R-operator) implementation", kind());
}
template <class T>
void Layer<T>::backward_tangent(VecU<const T>, VecU<const T>, MatU<const T>, MatU<const T>, MatU<const T>,
                                MatU<const T>, MatU<const T>, MatU<const T>, MatU<T>, VecU<T>) const {
  fail("layer '{}' has no forward-mode (R-operator) implementation", kind());
}

}  // namespace sama::nn
