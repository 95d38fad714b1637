#pragma once
// Softmax cross-entropy with per-sample losses as a first-class output: ℓ_i = −log softmax(z_i)[y_i].
// The caller decides how samples are combined through per-sample coefficients c_i = ∂L/∂ℓ_i
// (1/B for a mean, w_i/B for a Meta-Weight-Net weighted mean).
#include "sama/core/types.hpp"

namespace sama::nn {

template <class T>
class SoftmaxCrossEntropy {
 public:
  SoftmaxCrossEntropy(std::size_t max_batch, std::size_t classes);
  /// losses[i] = ℓ_i; keeps softmax probabilities for backward.
  void forward(MatU<const T> logits, VecU<const int> labels, VecU<T> losses);
  /// dlogits[i] = coef[i] * (softmax(z_i) − onehot(y_i)), for the batch of the last forward.
  void backward(VecU<const T> coef, VecU<const int> labels, MatU<T> dlogits) const;
  /// Number of samples whose arg-max logit equals the label (ties go to the lowest class).
  static std::size_t count_correct(MatU<const T> logits, VecU<const int> labels);
  /// For the batch of the last forward: el2n[i] = ‖softmax(z_i) − onehot(y_i)‖₂ (the EL2N score) and
  /// correct[i] = 1 when the arg-max probability is the label (ties to the lowest class), else 0.
  void sample_errors(VecU<const int> labels, VecU<T> el2n, VecU<int> correct) const;

  // Forward mode (R-operator) for the batch of the last forward, along logit tangents ż.
  /// dlosses[i] = ∂ℓ_i/∂z_i · ż_i = p_i·ż_i − ż_{i,y_i}.
  void forward_tangent(MatU<const T> logits_dot, VecU<const int> labels, VecU<T> dlosses) const;
  /// The tangent of backward with the coefficients held fixed: dlogits_dot[i] = coef[i] · ṗ_i with
  /// ṗ_i = p_i ⊙ (ż_i − p_i·ż_i) (the softmax Jacobian applied to ż_i).
  void backward_tangent(VecU<const T> coef, MatU<const T> logits_dot, MatU<T> dlogits_dot) const;

 private:
  std::size_t classes_;
  std::size_t batch_ = 0;
  Mat<T> probs_;
};

}  // namespace sama::nn
