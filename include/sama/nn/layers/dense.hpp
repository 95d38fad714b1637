#pragma once
// The MLP's layers as modules of the layer graph: a fully connected layer (Linear's kernels) and an
// element-wise activation (Activation's kernels). Both treat a [C, H, W] input as C·H·W features.
#include "sama/nn/activation.hpp"
#include "sama/nn/linear.hpp"
#include "sama/nn/module.hpp"

namespace sama::nn {

/// sq[i] += ‖dy_i‖² (‖x_i‖² + 1): the squared norm of a fully connected layer's gradient from sample i
/// alone (its per-sample gradient is the outer product dy_i x_iᵀ, plus dy_i for the bias).
template <class T>
void add_linear_sample_sq_norms(MatU<const T> x, MatU<const T> dy, VecU<T> sq);

/// y = x Wᵀ + b with W [out][in] then b [out] in θ; the output shape is [out, 1, 1].
template <class T>
class DenseLayer final : public Module<T> {
 public:
  DenseLayer(Shape in, std::size_t out) : Module<T>(in, Shape{out, 1, 1}), linear_(in.size(), out) {}
  std::string kind() const override { return "linear"; }
  std::string describe() const override { return "linear(" + std::to_string(this->out()) + ")"; }
  std::size_t num_params() const override { return linear_.num_params(); }
  void init(VecU<T> p, VecU<T> buffers, Rng& rng) const override;
  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot,
                        VecU<T> dp_dot) const override;

 private:
  Linear<T> linear_;
};

/// An element-wise activation; the shape is unchanged.
template <class T>
class ActivationLayer final : public Module<T> {
 public:
  ActivationLayer(Shape in, ActivationKind kind) : Module<T>(in, in), act_(kind, in.size()) {}
  std::string kind() const override { return act_.kind(); }
  ActivationKind activation() const { return act_.activation(); }
  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot,
                        VecU<T> dp_dot) const override;

 private:
  Activation<T> act_;
};

}  // namespace sama::nn
