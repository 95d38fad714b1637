#pragma once
// Composite modules of the layer graph: a sequence of modules, and a residual block y = body(x) +
// shortcut(x) (the shortcut the identity, or a sequence such as a 1×1 convolution and batch norm when
// the shape changes). Both are modules themselves, so they nest.
//
// A composite keeps its children's outputs (and their tangents and upstream gradients) in its own
// regions and lays its children's regions out after them, in order, for the batch of the call:
//   Sequential  saved:    a_0 … a_{n-2} (the outputs of all children but the last), then each child's
//               tangent:  ȧ_0 … ȧ_{n-2}, then each child's
//               upstream: ∂L/∂a_0 … ∂L/∂a_{n-2}, then each child's
//               scratch:  two gradient buffers (ping-pong) of the widest a_i, then the largest child's
//   Residual    saved:    body(x), shortcut(x) (the latter only with a shortcut), then body's, shortcut's
//               tangent:  their tangents, then body's, shortcut's
//               upstream: body's, shortcut's (both get the block's own dy)
//               scratch:  the shortcut's input gradient, then the larger child's
#include "sama/nn/module.hpp"

#include <functional>
#include <memory>
#include <vector>

namespace sama::nn {

/// Called as a child's parameter gradient completes, children in reverse order: (offset in the
/// composite's θ slice, count).
using GradReady = std::function<void(std::size_t, std::size_t)>;

template <class T>
class Sequential final : public Module<T> {
 public:
  explicit Sequential(Shape in) : Module<T>(in, in) {}
  /// Appends a module whose input shape is the current output shape.
  Module<T>& add(std::unique_ptr<Module<T>> m);
  /// Constructs and appends M(out_shape(), args...).
  template <class M, class... Args>
  M& emplace(Args&&... args) {
    return static_cast<M&>(add(std::make_unique<M>(this->out_shape(), std::forward<Args>(args)...)));
  }

  std::string kind() const override { return "sequential"; }
  std::string describe() const override;
  std::size_t size() const { return children_.size(); }
  const Module<T>& child(std::size_t i) const { return *children_[i]; }
  /// Offsets of child i's parameters and buffers within this module's.
  std::size_t param_offset(std::size_t i) const { return param_off_[i]; }
  std::size_t buffer_offset(std::size_t i) const { return buffer_off_[i]; }

  std::size_t num_params() const override { return num_params_; }
  std::size_t num_buffers() const override { return num_buffers_; }
  ModuleSizes sizes(std::size_t batch) const override;
  void init(VecU<T> p, VecU<T> buffers, Rng& rng) const override;
  void param_groups(std::size_t offset, std::vector<std::pair<std::size_t, std::size_t>>& out) const override;

  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override {
    backward_reporting(c, x, y, dy, dx, dp, nullptr);
  }
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot,
                        VecU<T> dp_dot) const override {
    backward_tangent_reporting(c, p_dot, x, x_dot, y, y_dot, dy, dy_dot, dx_dot, dp_dot, nullptr);
  }
  /// backward and backward_tangent that report each child's completed parameter gradient.
  void backward_reporting(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                          VecU<T> dp, const GradReady* on_ready) const;
  void backward_tangent_reporting(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                  MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                                  MatU<T> dx_dot, VecU<T> dp_dot, const GradReady* on_ready) const;

  /// The output of child i (i < size() − 1) of the last forward over `batch` from its saved region.
  MatU<const T> child_output(const ModuleCtx<T>& c, std::size_t i, std::size_t batch) const;

 private:
  struct Layout {
    std::vector<std::size_t> act;  // offset of a_i in saved / tangent / upstream (the same in all three)
    std::vector<ModuleSizes> off;  // each child's regions
    std::size_t pingpong = 0;      // elements of one ping-pong buffer
    ModuleSizes total;
  };
  std::vector<std::unique_ptr<Module<T>>> children_;
  std::vector<std::size_t> param_off_, buffer_off_;
  std::size_t num_params_ = 0, num_buffers_ = 0;
  mutable Layout layout_;
  mutable std::size_t layout_batch_ = 0;
  const Layout& layout(std::size_t batch) const;
  ModuleCtx<T> child_ctx(const ModuleCtx<T>& c, std::size_t i, std::size_t batch) const;
};

template <class T>
class Residual final : public Module<T> {
 public:
  /// y = body(x) + shortcut(x); shortcut null is the identity (then body must keep the shape).
  Residual(std::unique_ptr<Sequential<T>> body, std::unique_ptr<Sequential<T>> shortcut);
  std::string kind() const override { return "residual"; }
  std::string describe() const override;
  const Sequential<T>& body() const { return *body_; }
  const Sequential<T>* shortcut() const { return shortcut_.get(); }

  std::size_t num_params() const override { return body_->num_params() + (shortcut_ ? shortcut_->num_params() : 0); }
  std::size_t num_buffers() const override {
    return body_->num_buffers() + (shortcut_ ? shortcut_->num_buffers() : 0);
  }
  ModuleSizes sizes(std::size_t batch) const override;
  void init(VecU<T> p, VecU<T> buffers, Rng& rng) const override;
  void param_groups(std::size_t offset, std::vector<std::pair<std::size_t, std::size_t>>& out) const override;

  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot,
                        VecU<T> dp_dot) const override;

 private:
  std::unique_ptr<Sequential<T>> body_, shortcut_;
  struct Parts {
    ModuleCtx<T> body, shortcut;
    std::size_t body_out = 0, short_out = 0;  // offsets in saved (and tangent)
    std::size_t short_dx = 0;                 // offset in scratch
  };
  Parts parts(const ModuleCtx<T>& c, std::size_t batch) const;
};

/// a += b element-wise over a batch matrix (kernel shared by the composites).
template <class T>
void add_into(MatU<T> a, MatU<const T> b);

}  // namespace sama::nn
