#pragma once
// Meta-Weight-Net (Shu et al. 2019): a per-sample weight from the sample's detached loss,
// w_i = sigmoid(MLP_λ(ℓ_i)) with one hidden ReLU layer, optionally normalised to mean 1 in the batch
// (w_i = B s_i / Σ_j s_j). Its parameters λ form the meta level's flat buffer.
#include "sama/nn/mlp.hpp"

namespace sama::meta {

template <class T>
class MetaWeightNet {
 public:
  MetaWeightNet(std::size_t hidden, bool normalize, std::size_t max_batch);
  std::size_t num_params() const { return mlp_.num_params(); }
  bool normalize() const { return normalize_; }
  void init(VecU<T> lambda, Rng& rng) const { mlp_.init(lambda, rng); }
  /// weights[i] = w_i(ℓ_i); the losses are copied (they are the detached input kept for backward).
  void forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights);
  /// The un-normalised weights s_i = sigmoid(MLP_λ(ℓ_i)) (a per-sample score; no backward).
  void scores(VecU<const T> lambda, VecU<const T> losses, VecU<T> out);
  /// grad = Σ_i dweights[i] ∂w_i/∂λ at the inputs of the last forward (overwritten).
  void backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad);

 private:
  nn::Mlp<T> mlp_;
  bool normalize_;
  std::size_t batch_ = 0;
  Mat<T> input_;     // [max_batch][1]
  Mat<T> dscore_;    // [max_batch][1]
  Vec<T> score_;     // un-normalised sigmoid outputs
};

}  // namespace sama::meta
