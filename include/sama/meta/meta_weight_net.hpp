#pragma once
// Meta-Weight-Net (Shu et al. 2019): a per-sample weight from the sample's detached loss,
// s_i = sigmoid(MLP_λ(ℓ_i)) with one hidden ReLU layer, optionally normalised to mean 1 over the
// (global) batch: w_i = B s_i / Σ_j s_j. Its parameters λ form the meta level's flat buffer.
//
// Under data parallelism each rank holds a shard of the batch. `SumFn` sums a small host array over
// ranks in place; forward() uses it for the global Σ s_j and B, backward() for the λ-gradient, so the
// result equals that of one rank holding the whole batch (up to summation order), with one collective
// each.
#include "sama/nn/mlp.hpp"

#include <functional>

namespace sama::meta {

/// In-place sum over ranks of n doubles in host memory; an empty SumFn means one rank.
using SumFn = std::function<void(double*, int)>;

template <class T>
class MetaWeightNet {
 public:
  MetaWeightNet(std::size_t hidden, bool normalize, std::size_t max_batch);
  std::size_t num_params() const { return mlp_.num_params(); }
  bool normalize() const { return normalize_; }
  void init(VecU<T> lambda, Rng& rng) const { mlp_.init(lambda, rng); }
  /// weights[i] = w_i(ℓ_i); the losses are copied (they are the detached input kept for backward).
  void forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights, const SumFn& sum = {});
  /// The un-normalised weights s_i = sigmoid(MLP_λ(ℓ_i)) (a per-sample score; no backward).
  void scores(VecU<const T> lambda, VecU<const T> losses, VecU<T> out);
  /// The un-normalised weights s_i of the last forward's batch.
  VecU<const T> last_scores() const { return VecU<const T>(score_.data(), batch_); }
  /// grad = Σ_i dweights[i] ∂w_i/∂λ over the whole (global) batch of the last forward, identical on
  /// every rank (overwritten).
  void backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad, const SumFn& sum = {});

 private:
  nn::Mlp<T> mlp_;
  bool normalize_;
  std::size_t batch_ = 0;     // local batch of the last forward
  double global_batch_ = 0;   // B over all ranks
  double global_sum_ = 0;     // Σ s_j over all ranks
  Mat<T> input_;              // [max_batch][1]
  Mat<T> dscore_;             // [max_batch][1]
  Vec<T> score_;              // un-normalised sigmoid outputs
  Vec<T> grad_ones_;          // Σ_k ∂s_k/∂λ (normalisation term), num_params
};

}  // namespace sama::meta
