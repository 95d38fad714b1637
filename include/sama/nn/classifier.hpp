#pragma once
// A classifier: a network (the layer graph) with softmax cross-entropy; per-sample losses forward,
// weighted backward, and forward mode for exact Hessian-vector products.
#include "sama/nn/cross_entropy.hpp"
#include "sama/nn/models.hpp"
#include "sama/nn/network.hpp"

namespace sama::nn {

template <class T>
class Classifier {
 public:
  Classifier(std::unique_ptr<Sequential<T>> net, std::size_t max_batch)
      : net_(std::move(net), max_batch), ce_(max_batch, net_.out()) {}
  /// An MLP: widths = {in, h1, ..., classes} with `activation` between the Linear layers.
  Classifier(std::vector<std::size_t> widths, ActivationKind activation, std::size_t max_batch)
      : Classifier(make_mlp<T>(Shape{widths.empty() ? 0 : widths.front(), 1, 1}, widths, activation), max_batch) {}

  Network<T>& net() { return net_; }
  const Network<T>& net() const { return net_; }
  std::size_t num_params() const { return net_.num_params(); }
  /// Seeded initialisation of θ and of the network's buffers.
  void init(VecU<T> theta, Rng& rng) { net_.init(theta, rng); }

  /// losses[i] = ℓ_i(θ) for the batch (x, y); keeps what backward needs. Mode::train (the base step's
  /// forward only) updates running statistics; Mode::eval uses them.
  void losses(VecU<const T> theta, MatU<const T> x, VecU<const int> y, VecU<T> losses, Mode mode = Mode::probe) {
    ++forwards_;
    logits_ = net_.forward(theta, x, mode);
    ce_.forward(logits_, y, losses);
  }
  /// grad = Σ_i coef[i] ∂ℓ_i/∂θ for the batch of the last losses() call (overwritten).
  void backward(VecU<const T> theta, VecU<const T> coef, VecU<const int> y, VecU<T> grad,
                const GradReady& on_ready = nullptr) {
    MatU<T> dlogits(dlogits_.data(), logits_.extent(0), logits_.extent(1));
    ce_.backward(coef, y, dlogits);
    net_.backward(theta, dlogits, grad, MatU<T>(), on_ready);
  }
  /// Correct predictions in the batch of the last losses() call.
  std::size_t count_correct(VecU<const int> y) const { return SoftmaxCrossEntropy<T>::count_correct(logits_, y); }
  MatU<const T> logits() const { return logits_; }
  /// Per-sample EL2N and correctness for the batch of the last losses() call (SoftmaxCrossEntropy).
  void sample_errors(VecU<const int> y, VecU<T> el2n, VecU<int> correct) const {
    ce_.sample_errors(y, el2n, correct);
  }

  // Forward mode (R-operator; definitions in classifier.cpp), exact: no step size, no cancellation.
  // The workspace is allocated on first use, or beforehand by reserve_forward_mode().

  /// Allocates the forward-mode workspace now: that of loss_jvp(), and with `hvp` also that of hvp()
  /// and hvp_again() (so that no training step allocates it).
  void reserve_forward_mode(bool hvp);

  /// losses[i] = ℓ_i(θ) and dlosses[i] = ∂ℓ_i/∂θ · dir (one forward and one tangent forward).
  void loss_jvp(VecU<const T> theta, VecU<const T> dir, MatU<const T> x, VecU<const int> y, VecU<T> losses,
                VecU<T> dlosses);
  /// out = ∇²_θ(Σ_i coef_i ℓ_i) · v with the coefficients held fixed: a forward, the linearisation
  /// (the backward, keeping each layer's upstream gradient), a tangent forward and a tangent backward.
  /// When given (non-empty): grad = ∇_θ Σ_i coef_i ℓ_i and dlosses[i] = ∂ℓ_i/∂θ · v. on_ready reports
  /// out's layers as they complete.
  void hvp(VecU<const T> theta, VecU<const T> coef, MatU<const T> x, VecU<const int> y, VecU<const T> v,
           VecU<T> out, VecU<T> grad = VecU<T>(), VecU<T> dlosses = VecU<T>(),
           const GradReady& on_ready = nullptr);
  /// hvp() along another v at the point of the last hvp() (the same θ, batch, labels y and
  /// coefficients, and no forward since: see forwards()): only the two tangent passes.
  void hvp_again(VecU<const T> theta, VecU<const T> coef, VecU<const int> y, VecU<const T> v, VecU<T> out,
                 VecU<T> dlosses = VecU<T>(), const GradReady& on_ready = nullptr);
  /// Forward passes so far (every losses(), loss_jvp() and hvp() runs one): a linearisation is valid
  /// while this count is unchanged.
  std::uint64_t forwards() const { return forwards_; }

 private:
  Network<T> net_;
  SoftmaxCrossEntropy<T> ce_;
  Mat<T> dlogits_{make_mat<T>("sama::Classifier::dlogits", net_.max_batch(), net_.out())};
  MatU<const T> logits_;
  // Forward-mode workspace (first use): R{dlogits}, a gradient and per-sample losses nobody asked for.
  Mat<T> dlogits_dot_;
  Vec<T> grad_scratch_, loss_scratch_;
  std::uint64_t forwards_ = 0;
  std::uint64_t linearized_at_ = 0;  // forwards_ when hvp() linearised (0: never)
};

}  // namespace sama::nn
