#pragma once
// Batch normalisation over (N, H, W) per channel of [B, C, H, W]; [B, F] is the case H = W = 1
// (BatchNorm1d). y = γ x̂ + β with x̂ = (x − μ) / sqrt(σ² + eps).
//
// Parameters, in order: γ [C] (init 1), β [C] (init 0). Buffers, in order: running_mean [C] (init 0),
// running_var [C] (init 1).
//
// Modes: train and probe normalise with the batch statistics (mean, biased variance); only train
// updates the running statistics, PyTorch's way: running = (1 − momentum)·running + momentum·batch with
// the unbiased variance n/(n − 1)·σ² for running_var. eval normalises with the running statistics.
//
// Sync batch norm (ctx.batch_sum set, train and probe): the statistics are those of the batch over
// all ranks, from ONE batch_sum call per forward of 2C + 1 values of T: this rank's count n and, per
// channel, Σ(x − K) and Σ(x − K)², shifted by K = running_mean, a value identical on all ranks (the
// running statistics are initialised from the same seed and only ever updated with the synchronised
// statistics; eval needs them identical anyway), so the second moment does not cancel catastrophically
// in float once the running mean tracks the batch mean. Backward calls batch_sum once (2C values:
// Σdy, Σdy·x̂) when dx is wanted, forward_tangent once (2C: Σẋ, Σx̂·ẋ) when ẋ is non-empty,
// backward_tangent once (4C: Σdy, Σdy·x̂, Σḋy, Σ(ḋy·x̂ + dy·R{x̂})) when dx_dot is wanted. The parameter
// gradients dγ, dβ stay this rank's (the caller sums gradients over ranks as for every parameter).
// The module fences before each call and reads the sums right after it returns. The count travels as
// a T (exact in float up to 2^24 values per channel over all ranks, within one rounding beyond).
// A call is skipped identically on every rank (eval mode, no dx wanted, an empty ẋ: all structural).
// Without batch_sum, the statistics are this rank's batch's; they are two-pass (shifted by the local
// mean, itself from a first pass).
//
// Kernels work on planes: the B·C planes (b, c) of H·W contiguous values each, so the channel is fixed
// per plane and the inner loops are contiguous: the element-wise kernels are one team per plane (a
// device's team threads share the plane's contiguous values), the per-plane sums a flat range over
// planes (B·C of them, e.g. 2048 for [128, 16, 28, 28]). A per-channel sum is a sum per plane first (in double,
// several interleaved accumulators, rounded to T into scratch; sums over the same data fused into one
// pass), then, per channel, the sum in double over its B planes in order of b: a fixed order, no
// atomics, so results are deterministic.
//
// Degenerate batches: with one value per channel (n = 1) the batch variance is 0 and x̂ = 0, which is
// well defined (y = β, dx = 0) in probe mode; train mode throws sama::Error when this rank alone has
// n = 1 (no unbiased variance, as PyTorch), and with batch_sum and a global n ≤ 1 (not visible on the
// host without a round trip) it leaves running_var unchanged.
//
// saved: mean [C], inverse std [C] (in eval mode those of the running statistics), the global count
// [1]; x̂ is recomputed from x (one fused multiply-add) rather than kept (B·C·H·W more per layer).
// tangent: the tangent of the mean μ̇ [C] and m = (1/n)Σ x̂·ẋ [C] (R{1/σ} = −m/σ²); both 0 in eval mode.
// scratch: 4C + 1 + 4·B·C: the per-channel sums (up to 4C + 1 values, what batch_sum sees), then up
// to four per-plane sums [4][B·C] (forward 2, backward 2 or 3 with sample_sq, forward_tangent 2,
// backward_tangent 4). sample_sq: sample b's share Σ_c (Σ_hw dy·x̂)² + (Σ_hw dy)², from backward's
// per-plane sums.
#include "sama/nn/module.hpp"

namespace sama::nn {

template <class T>
class BatchNorm final : public Module<T> {
 public:
  explicit BatchNorm(Shape in, double eps = 1e-5, double momentum = 0.1);
  std::string kind() const override { return "batchnorm"; }
  std::string describe() const override;
  std::size_t channels() const { return this->in_shape().c; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  std::size_t num_params() const override { return 2 * channels(); }
  std::size_t num_buffers() const override { return 2 * channels(); }
  ModuleSizes sizes(std::size_t batch) const override;
  /// γ = 1, β = 0, running_mean = 0, running_var = 1 (no draws).
  void init(VecU<T> p, VecU<T> buffers, Rng& rng) const override;

  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;

 private:
  /// Scratch layout: kReduced·C + 1 per-channel values, then kPerPlane·B·C per-plane ones.
  static constexpr std::size_t kReduced = 4, kPerPlane = 4;
  double eps_, momentum_;
};

}  // namespace sama::nn
