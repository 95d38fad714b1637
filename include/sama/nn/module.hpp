#pragma once
// A module of the layer graph: maps a batch of tensors x [B, C, H, W] to y [B, C', H', W'].
//
// Tensors are flat and row-major, [N, C, H, W]; a module sees a batch as a matrix [B, C·H·W] (an
// MLP's [B, F] is the case H = W = 1) and knows the per-sample shapes of its input and output.
//
// A module holds no parameters, buffers or activations. Everything a call reads or writes besides its
// input and output arrives in a ModuleCtx, sliced by the caller from flat storage planned once:
//   p         its slice of θ (num_params)
//   buffers   its slice of the non-trained state (num_buffers), e.g. batch norm's running statistics;
//             written only by a forward in Mode::train
//   saved     what forward keeps for the later passes over the same batch (saved_size): backward,
//             forward_tangent, backward_tangent. A composite keeps its children's outputs here.
//   tangent   what forward_tangent keeps for backward_tangent (tangent_size)
//   upstream  when non-empty, backward keeps here every internal upstream gradient that
//             backward_tangent needs (upstream_size; only composites have internal ones)
//   scratch   transient workspace of one call (scratch_size)
//   sample_sq when non-empty, backward ADDS to sample_sq[i] the squared norm of sample i's share of
//             the module's parameter gradient (the i-th term of the sum over the batch, given the
//             upstream gradient): the GraNd score
//   batch_sum when set, batch statistics are summed over ranks with it (sync batch norm); otherwise
//             they are this rank's batch's
// Sizes are in elements of T, depend only on the batch and never decrease with it (most grow linearly;
// a scratch may be bounded, e.g. a convolution working in chunks of samples), so regions planned for
// the largest batch serve every smaller one. A composite lays out its children's regions for the batch
// of the call, so the layout is the same for every pass over one batch.
//
// Forward mode (the R-operator of Pearlmutter 1994): forward_tangent is the directional derivative of
// forward along tangents ṗ of the parameters and ẋ of the input; backward_tangent that of backward
// (along ṗ, ẋ, ẏ and ḋy = R{dy}). An empty view (data() == nullptr) stands for a zero tangent, and an
// empty dx / dx_dot for "not wanted". Exact Hessian-vector products are R{backward} after R{forward}.
//
// The passes over one batch come in this order: forward; then backward (possibly keeping upstream);
// forward_tangent then backward_tangent (after a backward that kept upstream), any number of times.
// All passes of one batch get the same mode, parameters, buffers and regions.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"

#include <functional>
#include <string>
#include <vector>

namespace sama::nn {

/// Per-sample shape of an activation, [C, H, W].
struct Shape {
  std::size_t c = 1, h = 1, w = 1;
  std::size_t size() const { return c * h * w; }
  friend bool operator==(const Shape& a, const Shape& b) { return a.c == b.c && a.h == b.h && a.w == b.w; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
};
/// "C×H×W" ("F" for H = W = 1).
inline std::string to_string(const Shape& s) {
  if (s.h == 1 && s.w == 1) return std::to_string(s.c);
  return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
}

/// train: batch statistics, and the running statistics are updated (the base step's forward only).
/// probe: batch statistics, nothing updated (SAMA probes, meta passes, HVPs, unrolled replays,
///        diagnostics). eval: running statistics (evaluation).
enum class Mode { train, probe, eval };
inline const char* to_string(Mode m) { return m == Mode::train ? "train" : m == Mode::probe ? "probe" : "eval"; }

/// In-place sum over ranks of n values in the execution space's memory.
template <class T>
using BatchSum = std::function<void(T* data, std::size_t n)>;

template <class T>
struct ModuleCtx {
  Mode mode = Mode::probe;
  VecU<const T> p;
  VecU<T> buffers;
  VecU<T> saved;
  VecU<T> tangent;
  VecU<T> upstream;
  VecU<T> scratch;
  VecU<T> sample_sq;
  const BatchSum<T>* batch_sum = nullptr;
};

/// The sizes a module asks for, for a batch of B.
struct ModuleSizes {
  std::size_t saved = 0, tangent = 0, upstream = 0, scratch = 0;
};

template <class T>
class Module {
 public:
  Module(Shape in, Shape out) : in_(in), out_(out) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual std::string kind() const = 0;
  /// One line for logs (e.g. "conv3x3(16, stride 2)"); composites list their children.
  virtual std::string describe() const { return kind(); }
  const Shape& in_shape() const { return in_; }
  const Shape& out_shape() const { return out_; }
  std::size_t in() const { return in_.size(); }
  std::size_t out() const { return out_.size(); }
  virtual std::size_t num_params() const { return 0; }
  virtual std::size_t num_buffers() const { return 0; }
  virtual ModuleSizes sizes(std::size_t /*batch*/) const { return {}; }

  /// Seeded initialisation of the parameters and buffers (host draws, in a fixed order).
  virtual void init(VecU<T> /*p*/, VecU<T> /*buffers*/, Rng& /*rng*/) const {}
  /// The parameter groups of the leaf modules (offset within this module's p, count), in order: an
  /// optimizer's per-layer groups (LAMB's trust ratios).
  virtual void param_groups(std::size_t offset, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
    if (num_params() > 0) out.emplace_back(offset, num_params());
  }

  /// y = f(x) [B, out] (overwritten).
  virtual void forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const = 0;
  /// Given dy = ∂L/∂y: dp = ∂L/∂p (overwritten) and, when dx is non-empty, dx = ∂L/∂x (overwritten).
  /// dx never aliases dy.
  virtual void backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                        VecU<T> dp) const = 0;
  /// ẏ = ∂f/∂p·ṗ + ∂f/∂x·ẋ (overwritten).
  virtual void forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                               MatU<const T> y, MatU<T> y_dot) const = 0;
  /// dp_dot = R{dp} (overwritten) and, when dx_dot is non-empty, dx_dot = R{dx} (overwritten).
  virtual void backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                                MatU<T> dx_dot, VecU<T> dp_dot) const = 0;

 protected:
  /// For composites whose output shape grows with their children.
  void set_out_shape(Shape s) { out_ = s; }

 private:
  Shape in_, out_;
};

/// A view of n elements at `offset` of a region (empty when n == 0 or the region is empty).
template <class T>
VecU<T> region(VecU<T> r, std::size_t offset, std::size_t n) {
  if (n == 0 || r.data() == nullptr) return VecU<T>();
  SAMA_REQUIRE(offset + n <= r.extent(0), "module region [{}, {}) outside a region of {}", offset, offset + n,
               r.extent(0));
  return VecU<T>(r.data() + offset, n);
}
/// A region seen as a batch matrix [rows, cols].
template <class T>
MatU<T> region_mat(VecU<T> r, std::size_t offset, std::size_t rows, std::size_t cols) {
  if (rows * cols == 0 || r.data() == nullptr) return MatU<T>();
  SAMA_REQUIRE(offset + rows * cols <= r.extent(0), "module region [{}, {}) outside a region of {}", offset,
               offset + rows * cols, r.extent(0));
  return MatU<T>(r.data() + offset, rows, cols);
}
/// A (possibly empty) view as its const counterpart.
template <class T>
MatU<const T> as_const(MatU<T> m) {
  return m.data() == nullptr ? MatU<const T>() : MatU<const T>(m.data(), m.extent(0), m.extent(1));
}
template <class T>
VecU<const T> as_const(VecU<T> v) {
  return v.data() == nullptr ? VecU<const T>() : VecU<const T>(v.data(), v.extent(0));
}

}  // namespace sama::nn
