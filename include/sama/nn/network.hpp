#pragma once
// A network: a sequence of modules (the layer graph's root) with its storage planned once for a
// maximum batch: the non-trained buffers (e.g. batch norm's running statistics, checkpointed), the
// output, and one arena each for what forward keeps, the tangents, the kept upstream gradients and
// the scratch. No pass allocates. θ and its gradient are flat buffers owned by the caller.
//
// The API is that of the MLP it generalises: forward; backward (reporting each top-level module's
// completed parameter gradient, for the overlapped all-reduce); per-sample gradient norms (GraNd);
// and forward mode (forward_tangent, backward_linearize, backward_tangent) for exact Hessian-vector
// products.
#include "sama/nn/graph.hpp"

#include <memory>

namespace sama::nn {

template <class T>
class Network {
 public:
  Network(std::unique_ptr<Sequential<T>> root, std::size_t max_batch);

  const Sequential<T>& root() const { return *root_; }
  std::string describe() const { return to_string(root_->in_shape()) + " -> " + root_->describe(); }
  std::size_t num_params() const { return root_->num_params(); }
  std::size_t num_buffers() const { return root_->num_buffers(); }
  const Shape& in_shape() const { return root_->in_shape(); }
  std::size_t in() const { return root_->in(); }
  std::size_t out() const { return root_->out(); }
  std::size_t max_batch() const { return max_batch_; }
  /// The non-trained buffers (running statistics); empty view when the network has none.
  VecU<T> buffers() const { return buffers_.extent(0) == 0 ? VecU<T>() : VecU<T>(buffers_.data(), buffers_.extent(0)); }
  /// Bytes of the planned workspace (arena and output), without and with forward mode.
  std::size_t workspace_bytes(bool forward_mode) const;

  /// Seeded initialisation of θ and of the buffers.
  void init(VecU<T> theta, Rng& rng);
  /// Leaf modules' parameter groups (offset in θ, count), in θ order.
  std::vector<std::pair<std::size_t, std::size_t>> param_groups() const;
  /// Top-level modules' parameter ranges in the order backward completes them (last first).
  std::vector<std::pair<std::size_t, std::size_t>> ready_groups() const;

  /// Batch statistics of the following passes are summed over ranks with `sum` (sync batch norm);
  /// nullptr: this rank's batch only. The passes over one batch use what was set at its forward.
  void set_batch_sum(const BatchSum<T>* sum) { batch_sum_ = sum; }

  /// Forward x [B, in] (B <= max_batch) in `mode`; keeps what the later passes need (x must stay alive
  /// and unchanged until then); returns y [B, out].
  MatU<const T> forward(VecU<const T> theta, MatU<const T> x, Mode mode = Mode::probe);
  /// Backward from dy = ∂L/∂y of the last forward: grad overwritten; dx, when given, receives ∂L/∂x.
  void backward(VecU<const T> theta, MatU<const T> dy, VecU<T> grad, MatU<T> dx = MatU<T>(),
                const GradReady& on_ready = nullptr);
  /// While set, every backward ADDS each sample's squared gradient-share norm to sq_norms[i] (GraNd).
  void set_sample_grad_norms(VecU<T> sq_norms) { sample_sq_ = sq_norms; }

  /// Allocates the forward-mode workspace now (once).
  void reserve_tangent_workspace() { ensure_tangent_workspace(); }
  /// After forward(): the output's tangent along θ̇ (the input has none).
  MatU<const T> forward_tangent(VecU<const T> theta, VecU<const T> theta_dot);
  /// After forward(): backward() of dy that keeps every upstream gradient for backward_tangent().
  void backward_linearize(VecU<const T> theta, MatU<const T> dy, VecU<T> grad);
  /// After backward_linearize(dy) and forward_tangent(θ̇): grad_dot = R{∂(dy·y)/∂θ} along θ̇ with ḋy.
  void backward_tangent(VecU<const T> theta, VecU<const T> theta_dot, MatU<const T> dy_dot, VecU<T> grad_dot,
                        const GradReady& on_ready = nullptr);

 private:
  std::unique_ptr<Sequential<T>> root_;
  std::size_t max_batch_;
  Vec<T> buffers_, saved_, scratch_, out_;
  Vec<T> tangent_, upstream_, out_dot_, dy_;  // forward mode (on first use)
  const BatchSum<T>* batch_sum_ = nullptr;
  VecU<T> sample_sq_;
  // The last forward: its input, batch, mode and batch sum; which later passes followed it.
  MatU<const T> input_;
  std::size_t batch_ = 0, tangent_batch_ = 0, linear_batch_ = 0;
  Mode mode_ = Mode::probe;
  const BatchSum<T>* pass_sum_ = nullptr;
  void ensure_tangent_workspace();
  ModuleCtx<T> ctx(VecU<const T> theta, bool forward_mode) const;
};

}  // namespace sama::nn
