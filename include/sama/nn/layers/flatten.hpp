#pragma once
// Flatten: [C, H, W] → [C·H·W, 1, 1] (no parameters).
#include "sama/nn/module.hpp"

namespace sama::nn {

/// [C, H, W] → [C·H·W, 1, 1]: a copy (the layout is already flat).
template <class T>
class Flatten final : public Module<T> {
 public:
  explicit Flatten(Shape in) : Module<T>(in, Shape{in.size(), 1, 1}) {}
  std::string kind() const override { return "flatten"; }
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
