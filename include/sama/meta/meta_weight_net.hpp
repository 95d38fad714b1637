#pragma once
// The weight net: a per-sample weight from the sample's detached loss ℓ_i, with parameters λ (the
// meta level's flat buffer). Two parametrisations (deck key meta.weight_net, docs/reweighting.md):
//
//  monotone (default)  z(ℓ) = −Σ_k a_k [relu(u_k ℓ + c_k) − relu(c_k)],  a_k = softplus(q_k),
//                      u_k = softplus(p_k): a non-increasing log-weight with z(0) = 0. The
//                      un-normalised weight is r = exp(z) ∈ (0, 1], the weight relative to a sample
//                      of zero loss; normalised, w_i = B r_i / Σ_j r_j (a softmax of z over the
//                      batch). No output non-linearity saturates, so the λ-gradient cannot vanish
//                      while the losses differ; and the common shift of z, the one direction the
//                      normalisation cannot see, is pinned by z(0) = 0.
//  sigmoid             Meta-Weight-Net (Shu et al. 2019): s_i = sigmoid(MLP_λ(ℓ_i)) with one hidden
//                      ReLU layer; normalised, w_i = B s_i / Σ_j s_j. Normalised weights are blind
//                      to a common shift of the pre-activation while s ≪ 1 (s ≈ e^z), so Adam lets
//                      it drift; once it drifts to s → 1 every weight is 1 and the gradient is gone
//                      (the collapse of docs/reweighting.md).
//
// Under data parallelism each rank holds a shard of the batch. `SumFn` sums a small host array over
// ranks in place; forward() uses it for the global Σ and B, backward() for the λ-gradient, so the
// result equals that of one rank holding the whole batch (up to summation order), with one collective
// each.
#include "sama/nn/mlp.hpp"

#include <functional>
#include <memory>
#include <string>

namespace sama::meta {

/// In-place sum over ranks of n doubles in host memory; an empty SumFn means one rank.
using SumFn = std::function<void(double*, int)>;

enum class WeightNetKind { softmax, monotone, sigmoid };
/// "softmax", "monotone" or "sigmoid"; anything else throws sama::Error.
WeightNetKind parse_weight_net(const std::string& name);
std::string to_string(WeightNetKind k);

/// Summary of the pre-activations z of a batch (the logit of the sigmoid net, the log relative
/// weight of the monotone one) and of how many weights sit where their gradient is gone.
struct LogitStats {
  double min = 0, max = 0, sum = 0, sum_sq = 0;
  double saturated = 0;  // sigmoid: s within 1e-3 of 1 (normalised: the vanishing side) or, without
                         // normalisation, also of 0; monotone: never (0)
  double count = 0;
};

template <class T>
class MetaWeightNet {
 public:
  MetaWeightNet(WeightNetKind kind, std::size_t hidden, bool normalize, std::size_t max_batch);
  WeightNetKind kind() const { return kind_; }
  std::size_t num_params() const;
  bool normalize() const { return normalize_; }
  void init(VecU<T> lambda, Rng& rng) const;
  /// weights[i] = w_i(ℓ_i); the losses are copied (they are the detached input kept for backward).
  void forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights, const SumFn& sum = {});
  /// The un-normalised weights (sigmoid: s_i; monotone: r_i = exp z_i ∈ (0, 1]): a per-sample score
  /// that does not depend on the batch; no backward.
  void scores(VecU<const T> lambda, VecU<const T> losses, VecU<T> out);
  /// The un-normalised weights of the last forward's batch.
  VecU<const T> last_scores() const { return VecU<const T>(score_.data(), batch_); }
  /// The log of the last evaluation's (forward or scores) un-normalised weights, not clamped: softmax
  /// z(ℓ) − z(0), monotone z(ℓ), sigmoid log σ(a). Where the weight is clamped (|z| ≥ 80) the log-weight
  /// still ranks the samples; a ranking or averaging score is better taken from it.
  VecU<const T> last_log_weights() const { return VecU<const T>(logit_.data(), evaluated_); }
  /// The non-increasing envelope of the log-weight at the last evaluation's losses: the log of the
  /// largest weight the net gives to any loss ≥ ℓ_i (exact: the net is piecewise linear in ℓ),
  /// clamped above at 80. Where the learned weight is a bump over the loss, this is its falling
  /// side continued flat to the left: a low value flags a loss beyond where the net rejects samples.
  void log_weight_envelope(VecU<const T> lambda, VecU<T> out);
  /// Pre-activation statistics of the last forward's (local) batch (one small host copy).
  LogitStats last_logit_stats() const;
  /// grad = Σ_i dweights[i] ∂w_i/∂λ over the whole (global) batch of the last forward, identical on
  /// every rank (overwritten).
  void backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad, const SumFn& sum = {});

 private:
  WeightNetKind kind_;
  std::size_t hidden_;
  std::unique_ptr<nn::Mlp<T>> mlp_;  // the sigmoid net (null for monotone)
  bool normalize_;
  std::size_t batch_ = 0;     // local batch of the last forward
  double global_batch_ = 0;   // B over all ranks
  double global_sum_ = 0;     // Σ of the un-normalised weights over all ranks
  Mat<T> input_;              // [max_batch][1]
  Mat<T> dscore_;             // [max_batch][1]
  Vec<T> score_;              // un-normalised weights
  Vec<T> logit_;              // log of the un-normalised weights of the last evaluation, not clamped
  std::size_t evaluated_ = 0; // rows of the last evaluation (forward or scores)
  Vec<T> grad_ones_;          // Σ_k ∂s_k/∂λ (normalisation term), num_params (empty for softmax)
  Vec<double> active_rows_;   // softmax: per hidden unit, the batch rows on which it is active
  Vec<double> kinks_;         // softmax, sigmoid: the envelope's kinks and their values
  // Host staging, allocated once: the λ-gradient's parts are summed over ranks in host memory (the
  // SumFn), and the logit statistics are reduced on the host.
  HostVec<T> grad_host_, ones_host_;   // num_params (ones_host_ empty for softmax)
  HostVec<double> active_host_;        // softmax: hidden
  HostVec<T> logit_host_, score_host_; // max_batch
  std::vector<double> packed_;         // the parts summed over ranks

  /// Un-normalised weights of n losses into out (and z into logit_ for the monotone net).
  void evaluate(VecU<const T> lambda, std::size_t n, VecU<T> out);

 public:  // kernels (public for nvcc's extended lambdas)
  /// softmax: z − z(0) (clamped) and r = exp of it for the first n inputs.
  void softmax_forward(VecU<const T> lambda, std::size_t n, VecU<T> out);
  /// softmax: the Mlp's upstream over n + 1 rows: scale·(dw_j − mean)·r_j, 0 for the reference.
  void softmax_upstream(VecU<const T> dweights, VecU<const T> r, double scale, double mean, VecU<T> out) const;
  /// softmax: per hidden unit, the number of the last forward's n batch rows where it is active.
  void count_active_rows(std::size_t n);
  /// softmax: the normalised weights' λ-gradient by one backward of the centred upstream.
  void softmax_backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad, const SumFn& sum);
  /// monotone: z and r = exp(z) of the first n inputs.
  void monotone_forward(VecU<const T> lambda, std::size_t n, VecU<T> out);
  /// monotone, over the last forward's batch: g1 = Σ_j dw_j ∂r_j/∂λ and, when `second`,
  /// g2 = Σ_j ∂r_j/∂λ (∂r_j/∂λ = r_j ∂z_j/∂λ).
  void monotone_backward(VecU<const T> lambda, VecU<const T> dweights, VecU<const T> r, bool second, VecU<T> g1,
                         VecU<T> g2) const;
};

}  // namespace sama::meta
