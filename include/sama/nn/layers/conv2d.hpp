#pragma once
// 2-D convolution (cross-correlation, as PyTorch's Conv2d) as an nn::Module:
//   y[n, o, i, j] = b[o] + Σ_{c, u, v} W[o, c, u, v] · x[n, c, i·s − p + u, j·s − p + v]   (zero padding)
// Parameters, in θ order: W [Cout][Cin][kh][kw] (row-major), then b [Cout] when bias is on.
// Output shape: (Cout, (H + 2p − kh)/s + 1, (W + 2p − kw)/s + 1).
//
// Layout (GEMM-based, im2col). With P = Ho·Wo output pixels and K = Cin·kh·kw, the samples of a chunk
// of Bc samples are unfolded into one matrix with Q = Bc·P columns
//   col [K, Q]     row (c, u, v), column (n, pixel): the input under kernel tap (c, u, v) at that pixel
// so that every pass is one large GEMM per chunk (its long dimension is Q), and every copy kernel moves
// contiguous image rows (stride 1: vectorisable copies):
//   forward          Z [Cout, Q] = W · col;  y[n, o, :] = Z[o, n·P : (n+1)·P] (+ b[o]), a row copy
//   backward  dW     Dz [Cout, Q] = dy regrouped the same way;  dW (+)= Dz · colᵀ
//             dx     dcol = Wᵀ · Dz  [K, Q] (in col's storage), then col2im: one thread per input row
//                    accumulates its taps in a fixed order (race-free, deterministic)
//   db = Σ_{n, pixel} dy: one team per output channel.
// The tangent passes are the same GEMMs on (Ẇ, ẋ, ḋy). Nothing is saved between passes: every pass
// rebuilds col from x (saved = tangent = upstream = 0).
//
// 1×1 kernels with stride 1 and no padding skip im2col altogether: col_n is x_n itself, so each sample
// is one GEMM on x and y in place (y_n [Cout, HW] = W · x_n [Cin, HW], dW += dy_n · x_nᵀ, dx_n = Wᵀ·dy_n).
//
// Scratch (sizes(B).scratch, elements of T), with Bc = min(B, chunk) samples per chunk:
//   Bc·(K·P (col / dcol) + Cout·P (Z / Dz) + Cout·K (per-sample gradient shares)) + K·P (one sample's col)
// (1×1 stride-1 pad-0: Bc·Cout·K only). The chunk is the largest number of samples whose per-sample
// scratch fits in scratch_budget() elements (at least one sample), so the scratch is bounded whatever the
// batch; it is non-decreasing in B, so regions planned for the largest batch serve every smaller one.
// Default budget (kDefaultScratchBudget): on the host 2^18 elements (1 MiB of float), so col stays in
// a core's L2 cache between im2col and the GEMM that reads it — measured on the development machine
// (ResNet-like 16→16 3×3 on 28×28, batch 128, float, one thread): forward 9.9 ms and backward 24 ms
// with one sample per chunk, vs 21.8 ms and 41 ms with 64 samples (32 MiB of col); one GEMM over the
// whole batch alone takes 13 ms. On a device 2^24 elements (64 MiB of float), for GEMMs long enough
// to fill it.
//
// Threads: im2col, one per (tap, sample, output row) on a device, per (tap, sample) on the host; col2im,
// one per (sample, channel, input row); the regrouping copies, one per (sample, channel, output row).
// Every range is flat; rows rather than elements keep the index divisions off the inner loops.
//
// Per-sample squared gradient shares (ctx.sample_sq non-empty): for each sample n, col_n [K, P] is
// rebuilt alone (im2col of one sample; a block of columns of col is not a row-major matrix; a chunk of
// one sample, the host's usual case, uses its col as it is) and one
// extra GEMM G_n = dy_n [Cout, P] · col_nᵀ goes into the scratch; one reduction per chunk (a team per
// sample) adds ‖G_n‖² + ‖Σ_pixel dy_n‖² to sample_sq[n]. This doubles the weight gradient's FLOPs
// (2·Cout·K·P per sample) and its im2col traffic, and issues B small GEMMs; it is exact, not an estimate.
#include "sama/nn/module.hpp"

namespace sama::nn {

template <class T>
class Conv2d final : public Module<T> {
 public:
  /// Scratch budget per call by default, in elements of T: small on the host (cache), large on a device.
  static constexpr std::size_t kDefaultScratchBudget =
      Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible ? std::size_t(1) << 18 : std::size_t(1) << 24;

  Conv2d(Shape in, std::size_t out_channels, std::size_t kernel_h, std::size_t kernel_w, std::size_t stride,
         std::size_t padding, bool bias);
  /// Square kernel with a bias (3 to 5 arguments; the general form takes all 7, so a call with 6 — a
  /// rectangular kernel without its bias flag — does not compile rather than meaning something else).
  Conv2d(Shape in, std::size_t out_channels, std::size_t kernel, std::size_t stride = 1, std::size_t padding = 0)
      : Conv2d(in, out_channels, kernel, kernel, stride, padding, true) {}

  std::string kind() const override { return "conv2d"; }
  /// e.g. "conv3x3(16, stride 2, pad 1)"; stride 1, padding 0 and a bias are not mentioned.
  std::string describe() const override;
  std::size_t num_params() const override { return weights() + (bias_ ? cout_ : 0); }
  ModuleSizes sizes(std::size_t batch) const override;

  /// PyTorch's default: W and b uniform in ±1/sqrt(Cin·kh·kw), drawn in θ order on the host.
  void init(VecU<T> p, VecU<T> buffers, Rng& rng) const override;

  void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const override;
  /// dW = Σ_n dy_n · col_nᵀ, db = Σ dy, dx = col2im(Wᵀ dy).
  void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                VecU<T> dp) const override;
  /// ẏ = conv(x; Ẇ, ḃ) + conv(ẋ; W).
  void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                       MatU<const T> y, MatU<T> y_dot) const override;
  /// R{dW} = wgrad(ḋy, x) + wgrad(dy, ẋ),  R{db} = Σ ḋy,  R{dx} = convᵀ(ḋy; W) + convᵀ(dy; Ẇ).
  void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                        MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                        MatU<T> dx_dot, VecU<T> dp_dot) const override;

  std::size_t out_channels() const { return cout_; }
  std::size_t kernel_h() const { return kh_; }
  std::size_t kernel_w() const { return kw_; }
  std::size_t stride() const { return stride_; }
  std::size_t padding() const { return pad_; }
  bool has_bias() const { return bias_; }
  /// Whether the layer runs without im2col (1×1 kernel, stride 1, no padding).
  bool pointwise() const { return kh_ == 1 && kw_ == 1 && stride_ == 1 && pad_ == 0; }
  /// Samples per chunk for a batch of B.
  std::size_t chunk(std::size_t batch) const;
  std::size_t scratch_budget() const { return budget_; }
  /// Sets the scratch budget (elements of T) before the regions are planned; at least one sample's
  /// worth is always used.
  void set_scratch_budget(std::size_t elements) { budget_ = elements; }

  // Kernels (public for nvcc's extended-lambda rule). `n0` is the chunk's first sample, `bc` its size.
  /// col [K, bc·P] = the patches of rows [n0, n0 + bc) of src.
  void im2col(MatU<const T> src, std::size_t n0, std::size_t bc, T* col) const;
  /// dst rows [n0, n0 + bc) = col2im(dcol), dcol [K, bc·P] (overwritten).
  void col2im(const T* dcol, std::size_t n0, std::size_t bc, MatU<T> dst) const;
  /// dst rows [n0, n0 + bc) = z regrouped per sample + bias (z [Cout, bc·P]; a null z or bias counts as zero).
  void unfold_out(const T* z, const T* bias, std::size_t n0, std::size_t bc, MatU<T> dst) const;
  /// z [Cout, bc·P] = rows [n0, n0 + bc) of g regrouped (z[o, n·P + pixel] = g[n0 + n, o·P + pixel]).
  void fold_out(MatU<const T> g, std::size_t n0, std::size_t bc, T* z) const;
  /// db[o] = Σ_{n, pixel} g[n, o, pixel] (overwritten).
  void bias_sum(MatU<const T> g, T* db) const;
  /// sq[n0 + n] += ‖G_n‖² (G [bc][Cout·K]) + ‖Σ_pixel g_n‖² (with a bias).
  void add_sample_sq(const T* gn, MatU<const T> g, std::size_t n0, std::size_t bc, VecU<T> sq) const;

 private:
  std::size_t cin_, h_, w_, cout_, kh_, kw_, stride_, pad_, ho_, wo_;
  bool bias_;
  std::size_t budget_ = kDefaultScratchBudget;

  std::size_t weights() const { return cout_ * cin_ * kh_ * kw_; }
  std::size_t pixels() const { return ho_ * wo_; }
  std::size_t patch() const { return cin_ * kh_ * kw_; }
  std::size_t per_sample_scratch() const;
  std::size_t fixed_scratch() const;
  /// The scratch region's start, checked to hold sizes(batch).scratch.
  T* scratch(const ModuleCtx<T>& c, std::size_t batch) const;
};

}  // namespace sama::nn
