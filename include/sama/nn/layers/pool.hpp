#pragma once
// Pooling over [B, C, H, W] (no parameters, exact tangents; the passes recompute what they need from x,
// so saved, tangent and scratch are empty).
//   MaxPool2d(in, k, stride, padding): padding counts as −∞; ties go to the first index of the window
//     in row-major order (a NaN wins over numbers, the first NaN among NaNs); backward and the tangents
//     recompute the argmax (deterministic: each input gathers from the windows that picked it, no atomics).
//   AvgPool2d(in, k, stride, padding): the mean over the k×k window with padding counted as zeros and
//     included in the divisor (PyTorch's count_include_pad = true, ceil_mode = false): always k².
//   GlobalAvgPool(in): [C, H, W] → [C, 1, 1].
// Output size (H + 2 padding − k) / stride + 1 (floor), likewise for W; padding ≤ k / 2 as PyTorch.
#include "sama/nn/module.hpp"

namespace sama::nn {

/// A k×k window, stride and zero/−∞ padding over an H×W plane.
struct PoolGeometry {
  long h = 1, w = 1, k = 1, stride = 1, pad = 0, oh = 1, ow = 1;
};
/// The geometry for `in`; throws sama::Error on a window that does not fit.
PoolGeometry pool_geometry(const char* kind, Shape in, std::size_t k, std::size_t stride, std::size_t padding);

template <class T>
class MaxPool2d final : public Module<T> {
 public:
  MaxPool2d(Shape in, std::size_t k, std::size_t stride, std::size_t padding = 0);
  std::string kind() const override { return "maxpool"; }
  std::string describe() const override;
  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  /// ẏ = ẋ at the argmax.
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  /// R{dx} = backward of ḋy (the argmax is locally constant).
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;

 private:
  PoolGeometry g_;
};

template <class T>
class AvgPool2d final : public Module<T> {
 public:
  AvgPool2d(Shape in, std::size_t k, std::size_t stride, std::size_t padding = 0);
  std::string kind() const override { return "avgpool"; }
  std::string describe() const override;
  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  /// Linear: ẏ = f(ẋ).
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  /// R{dx} = backward of ḋy.
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;

 private:
  PoolGeometry g_;
};

template <class T>
class GlobalAvgPool final : public Module<T> {
 public:
  explicit GlobalAvgPool(Shape in) : Module<T>(in, Shape{in.c, 1, 1}) {}
  std::string kind() const override { return "globalavgpool"; }
  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;
};

}  // namespace sama::nn
