#pragma once
// A multilayer perceptron assembled from a list of widths: Linear, activation, ..., Linear[, output
// activation]. The MLP owns its layers and the activation workspace (sized for a maximum batch);
// θ and its gradient are flat buffers owned by the caller, each layer reading its own slice.
#include "sama/nn/activation.hpp"
#include "sama/nn/layer.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace sama::nn {

template <class T>
class Mlp {
 public:
  /// widths = {in, h1, ..., out}; `hidden` after every Linear but the last; `output` after the last.
  Mlp(std::vector<std::size_t> widths, ActivationKind hidden, std::optional<ActivationKind> output,
      std::size_t max_batch);

  std::size_t num_params() const { return num_params_; }
  std::size_t in() const { return widths_.front(); }
  std::size_t out() const { return widths_.back(); }
  std::size_t max_batch() const { return max_batch_; }
  const std::vector<std::size_t>& widths() const { return widths_; }
  std::size_t num_layers() const { return layers_.size(); }
  const Layer<T>& layer(std::size_t i) const { return *layers_[i]; }
  /// Output of layer i in the last forward() [B, out of layer i] (e.g. the pre-activation of an output
  /// activation), valid until the next forward().
  MatU<const T> layer_output(std::size_t i) const { return MatU<const T>(acts_[i].data(), batch_, acts_[i].extent(1)); }
  /// Offset of layer i's parameters in θ.
  std::size_t param_offset(std::size_t i) const { return offsets_[i]; }

  /// Seeded initialisation of all of θ.
  void init(VecU<T> theta, Rng& rng) const;

  /// Forward x [B, in] (B <= max_batch); keeps the activations for backward; returns y [B, out].
  /// x must stay alive and unchanged until backward.
  MatU<const T> forward(VecU<const T> theta, MatU<const T> x);

  /// Called after a layer's parameter gradient is complete, in reverse layer order: (offset, count).
  using GradReady = std::function<void(std::size_t, std::size_t)>;
  /// Backward from dy = ∂L/∂y [B, out] of the last forward: grad (all of θ) is overwritten;
  /// dx, when given, receives ∂L/∂x.
  void backward(VecU<const T> theta, MatU<const T> dy, VecU<T> grad, MatU<T> dx = MatU<T>(),
                const GradReady& on_ready = nullptr);

  /// Per-sample gradient norms (GraNd): while a buffer is set, every backward ADDS to sq_norms[i]
  /// the squared norm of sample i's own share of the parameter gradient. It is exact and cheap: a
  /// Linear layer's per-sample gradient is the outer product dy_i x_iᵀ (plus dy_i for the bias), so
  /// its squared norm is ‖dy_i‖² (‖x_i‖² + 1); activations have no parameters. An empty view stops it.
  void set_sample_grad_norms(VecU<T> sq_norms) { sample_sq_norms_ = sq_norms; }

  // Forward mode (R-operator; definitions in mlp_tangent.cpp). Exact Hessian-vector products are a
  // linearisation (forward, then backward_linearize of dy = ∂L/∂y, keeping every layer's upstream
  // gradient) followed, per direction θ̇, by forward_tangent and backward_tangent: a second direction
  // at the same point costs only the two tangent passes. A new forward() invalidates both. The
  // workspace (tangents and upstream gradients, like the activations) is allocated on first use, or
  // beforehand by reserve_tangent_workspace() (so that no training step allocates it).

  /// Allocates the forward-mode workspace now (once; later calls do nothing).
  void reserve_tangent_workspace() { ensure_tangent_workspace(); }

  /// After forward(): the tangent ẏ of every layer's output along a parameter tangent θ̇ (the input
  /// has none), kept for backward_tangent(); returns the network output's tangent [B, out].
  MatU<const T> forward_tangent(VecU<const T> theta, VecU<const T> theta_dot);
  /// After forward(): backward() of dy into grad (overwritten) that also keeps every layer's upstream
  /// gradient (dy included, copied) for backward_tangent().
  void backward_linearize(VecU<const T> theta, MatU<const T> dy, VecU<T> grad);
  /// After backward_linearize(dy) and forward_tangent(θ̇) of the last forward: grad_dot (overwritten)
  /// = R{∂(dy·y)/∂θ}, the tangent of the linearised gradient along θ̇ with ḋy = R{dy}. With dy = ∂L/∂y
  /// and ḋy = R{∂L/∂y}, grad_dot = ∇²_θ L · θ̇. on_ready reports grad_dot's layers, last first.
  void backward_tangent(VecU<const T> theta, VecU<const T> theta_dot, MatU<const T> dy_dot, VecU<T> grad_dot,
                        const GradReady& on_ready = nullptr);

 private:
  std::vector<std::size_t> widths_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
  std::vector<std::size_t> offsets_;
  std::size_t num_params_ = 0;
  std::size_t max_batch_ = 0;
  std::size_t batch_ = 0;
  MatU<const T> input_;
  std::vector<Mat<T>> acts_;  // output of each layer, [max_batch][out]
  Mat<T> delta_a_, delta_b_;  // ping-pong gradients w.r.t. activations
  VecU<T> sample_sq_norms_;   // set_sample_grad_norms
  // Forward-mode workspace (allocated on first use).
  std::vector<Mat<T>> acts_dot_;      // tangent of each layer's output
  std::vector<Mat<T>> upstream_;      // ∂L/∂(output of layer i) of the last backward_linearize
  Mat<T> delta_dot_a_, delta_dot_b_;  // ping-pong tangents of the activation gradients
  std::size_t tangent_batch_ = 0;     // batch of the last forward_tangent (0: none since forward)
  std::size_t linear_batch_ = 0;      // batch of the last backward_linearize (0: none since forward)
  void ensure_tangent_workspace();
};

}  // namespace sama::nn
