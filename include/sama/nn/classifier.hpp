#pragma once
// An MLP classifier with softmax cross-entropy: per-sample losses forward, weighted backward.
#include "sama/nn/cross_entropy.hpp"
#include "sama/nn/mlp.hpp"

namespace sama::nn {

template <class T>
class Classifier {
 public:
  Classifier(std::vector<std::size_t> widths, ActivationKind activation, std::size_t max_batch)
      : mlp_(std::move(widths), activation, std::nullopt, max_batch), ce_(max_batch, mlp_.out()) {}

  Mlp<T>& mlp() { return mlp_; }
  const Mlp<T>& mlp() const { return mlp_; }
  std::size_t num_params() const { return mlp_.num_params(); }

  /// losses[i] = ℓ_i(θ) for the batch (x, y); keeps what backward needs.
  void losses(VecU<const T> theta, MatU<const T> x, VecU<const int> y, VecU<T> losses) {
    ++forwards_;
    logits_ = mlp_.forward(theta, x);
    ce_.forward(logits_, y, losses);
  }
  /// grad = Σ_i coef[i] ∂ℓ_i/∂θ for the batch of the last losses() call (overwritten).
  void backward(VecU<const T> theta, VecU<const T> coef, VecU<const int> y, VecU<T> grad,
                const typename Mlp<T>::GradReady& on_ready = nullptr) {
    MatU<T> dlogits(dlogits_.data(), logits_.extent(0), logits_.extent(1));
    ce_.backward(coef, y, dlogits);
    mlp_.backward(theta, dlogits, grad, MatU<T>(), on_ready);
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
           const typename Mlp<T>::GradReady& on_ready = nullptr);
  /// hvp() along another v at the point of the last hvp() (the same θ, batch, labels y and
  /// coefficients, and no forward since: see forwards()): only the two tangent passes.
  void hvp_again(VecU<const T> theta, VecU<const T> coef, VecU<const int> y, VecU<const T> v, VecU<T> out,
                 VecU<T> dlosses = VecU<T>(), const typename Mlp<T>::GradReady& on_ready = nullptr);
  /// Forward passes so far (every losses(), loss_jvp() and hvp() runs one): a linearisation is valid
  /// while this count is unchanged.
  std::uint64_t forwards() const { return forwards_; }

 private:
  Mlp<T> mlp_;
  SoftmaxCrossEntropy<T> ce_;
  Mat<T> dlogits_{make_mat<T>("sama::Classifier::dlogits", mlp_.max_batch(), mlp_.out())};
  MatU<const T> logits_;
  // Forward-mode workspace (first use): R{dlogits}, a gradient and per-sample losses nobody asked for.
  Mat<T> dlogits_dot_;
  Vec<T> grad_scratch_, loss_scratch_;
  std::uint64_t forwards_ = 0;
  std::uint64_t linearized_at_ = 0;  // forwards_ when hvp() linearised (0: never)
};

}  // namespace sama::nn
