#include "sama/nn/layers/conv2d.hpp"

#include "sama/core/gemm.hpp"

#include <algorithm>
#include <cmath>

namespace sama::nn {

namespace {

using Team = Kokkos::TeamPolicy<ExecSpace>;
using Member = Team::member_type;

Shape conv_out_shape(const Shape& in, std::size_t cout, std::size_t kh, std::size_t kw, std::size_t stride,
                     std::size_t pad) {
  SAMA_REQUIRE(in.c > 0 && in.h > 0 && in.w > 0, "conv2d: the input shape {} has a zero extent", to_string(in));
  SAMA_REQUIRE(cout > 0, "conv2d: the number of output channels must be positive");
  SAMA_REQUIRE(kh > 0 && kw > 0, "conv2d: the kernel {}x{} has a zero extent", kh, kw);
  SAMA_REQUIRE(stride > 0, "conv2d: the stride must be positive");
  SAMA_REQUIRE(kh <= in.h + 2 * pad && kw <= in.w + 2 * pad,
               "conv2d: the kernel {}x{} is larger than the padded input {}x{} (input {}x{}, padding {})", kh, kw,
               in.h + 2 * pad, in.w + 2 * pad, in.h, in.w, pad);
  return Shape{cout, (in.h + 2 * pad - kh) / stride + 1, (in.w + 2 * pad - kw) / stride + 1};
}

/// Sample n of a batch matrix seen as a [rows, cols] matrix (rows·cols = the matrix's width).
template <class T>
MatU<T> sample(MatU<T> m, std::size_t n, std::size_t rows, std::size_t cols) {
  return MatU<T>(m.data() + n * m.extent(1), rows, cols);
}
template <class T>
MatU<const T> cmat(const T* p, std::size_t rows, std::size_t cols) {
  return MatU<const T>(p, rows, cols);
}

/// The output columns [lo, hi) whose kernel tap v lands inside the input: pad <= o·s + v < pad + w.
KOKKOS_INLINE_FUNCTION void tap_range(std::size_t v, std::size_t pad, std::size_t w, std::size_t s,
                                      std::size_t wo, std::size_t& lo, std::size_t& hi) {
  hi = pad + w > v ? (pad + w - v + s - 1) / s : 0;
  if (hi > wo) hi = wo;
  lo = v >= pad ? 0 : (pad - v + s - 1) / s;
  if (lo > hi) lo = hi;
}

}  // namespace

template <class T>
Conv2d<T>::Conv2d(Shape in, std::size_t out_channels, std::size_t kernel_h, std::size_t kernel_w,
                  std::size_t stride, std::size_t padding, bool bias)
    : Module<T>(in, conv_out_shape(in, out_channels, kernel_h, kernel_w, stride, padding)),
      cin_(in.c),
      h_(in.h),
      w_(in.w),
      cout_(out_channels),
      kh_(kernel_h),
      kw_(kernel_w),
      stride_(stride),
      pad_(padding),
      ho_(this->out_shape().h),
      wo_(this->out_shape().w),
      bias_(bias) {}

template <class T>
std::string Conv2d<T>::describe() const {
  std::string s = "conv" + std::to_string(kh_) + "x" + std::to_string(kw_) + "(" + std::to_string(cout_);
  if (stride_ != 1) s += ", stride " + std::to_string(stride_);
  if (pad_ != 0) s += ", pad " + std::to_string(pad_);
  if (!bias_) s += ", no bias";
  return s + ")";
}

template <class T>
std::size_t Conv2d<T>::per_sample_scratch() const {
  const std::size_t shares = cout_ * patch();
  return pointwise() ? shares : pixels() * patch() + pixels() * cout_ + shares;
}

template <class T>
std::size_t Conv2d<T>::fixed_scratch() const {
  return pointwise() ? 0 : patch() * pixels();  // one sample's col, for the per-sample shares
}

template <class T>
std::size_t Conv2d<T>::chunk(std::size_t batch) const {
  const std::size_t room = budget_ > fixed_scratch() ? budget_ - fixed_scratch() : 0;
  const std::size_t fit = std::max<std::size_t>(1, room / per_sample_scratch());
  return std::min(batch, fit);
}

template <class T>
ModuleSizes Conv2d<T>::sizes(std::size_t batch) const {
  ModuleSizes s;
  if (batch > 0) s.scratch = chunk(batch) * per_sample_scratch() + fixed_scratch();
  return s;
}

template <class T>
T* Conv2d<T>::scratch(const ModuleCtx<T>& c, std::size_t batch) const {
  const std::size_t need = sizes(batch).scratch;
  SAMA_REQUIRE(c.scratch.extent(0) >= need && c.scratch.data() != nullptr,
               "{}: a scratch region of {} elements given, {} needed for a batch of {}", describe(),
               c.scratch.extent(0), need, batch);
  return c.scratch.data();
}

template <class T>
void Conv2d<T>::init(VecU<T> p, VecU<T> /*buffers*/, Rng& rng) const {
  SAMA_REQUIRE(p.extent(0) == num_params(), "conv2d init: {} parameters given, {} expected", p.extent(0),
               num_params());
  const double bound = 1.0 / std::sqrt(static_cast<double>(patch()));
  auto h = Kokkos::create_mirror_view(p);
  for (std::size_t i = 0; i < h.extent(0); ++i) h(i) = static_cast<T>(rng.uniform(-bound, bound));
  Kokkos::deep_copy(p, h);
}

// ---------------------------------------------------------------------------------------------------
// Kernels.

// Each thread moves one contiguous run (an output row of col, an input row, a row of y), so the
// divisions that locate it are paid once per run and the copies are stride-1 when the stride is 1.

template <class T>
void Conv2d<T>::im2col(MatU<const T> src, std::size_t n0, std::size_t bc, T* col) const {
  // One thread per (tap k = (c, u, v), sample, block of output rows): contiguous runs of col's row k.
  // On the host a block is the whole image (the divisions that locate a thread's work cost more than
  // a short row's copy); on a device, one row, for threads enough to fill it.
  const std::size_t P = pixels(), Q = bc * P, K = patch(), kk = kh_ * kw_, kw = kw_, ho = ho_, wo = wo_;
  const std::size_t s = stride_, pad = pad_, H = h_, W = w_, hw = h_ * w_;
  constexpr bool whole_image = Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible;
  const std::size_t blocks = whole_image ? 1 : ho, rows = whole_image ? ho : 1;
  Kokkos::parallel_for(
      "sama::Conv2d::im2col", Range(0, K * bc * blocks), KOKKOS_LAMBDA(const std::size_t idx) {
        const std::size_t t = blocks == 1 ? idx : idx / blocks, oh0 = (idx - t * blocks) * rows;
        const std::size_t k = t / bc, n = t - k * bc;
        const std::size_t ci = k / kk, uv = k - ci * kk, u = uv / kw, v = uv - u * kw;
        std::size_t lo, hi;
        tap_range(v, pad, W, s, wo, lo, hi);
        const T* img = &src(n0 + n, ci * hw);
        for (std::size_t oh = oh0; oh < oh0 + rows; ++oh) {
          T* out = col + k * Q + n * P + oh * wo;
          const std::size_t ihp = oh * s + u;  // row in the padded input
          if (ihp < pad || ihp >= pad + H) {
            for (std::size_t ow = 0; ow < wo; ++ow) out[ow] = T(0);
            continue;
          }
          const T* line = img + (ihp - pad) * W;
          for (std::size_t ow = 0; ow < lo; ++ow) out[ow] = T(0);
          if (s == 1) {
            for (std::size_t ow = lo; ow < hi; ++ow) out[ow] = line[ow + v - pad];
          } else {
            for (std::size_t ow = lo; ow < hi; ++ow) out[ow] = line[ow * s + v - pad];
          }
          for (std::size_t ow = hi; ow < wo; ++ow) out[ow] = T(0);
        }
      });
}

template <class T>
void Conv2d<T>::col2im(const T* dcol, std::size_t n0, std::size_t bc, MatU<T> dst) const {
  // One thread per (sample, input channel, input row): the row is zeroed, then every tap (u, v) adds
  // its contributions in a fixed order.
  const std::size_t P = pixels(), Q = bc * P, kh = kh_, kw = kw_, ho = ho_, wo = wo_;
  const std::size_t s = stride_, pad = pad_, H = h_, W = w_, hw = h_ * w_, cin = cin_;
  Kokkos::parallel_for(
      "sama::Conv2d::col2im", Range(0, bc * cin * H), KOKKOS_LAMBDA(const std::size_t idx) {
        const std::size_t nc = idx / H, ih = idx - nc * H;
        const std::size_t n = nc / cin, ci = nc - n * cin;
        T* row = &dst(n0 + n, ci * hw + ih * W);
        for (std::size_t iw = 0; iw < W; ++iw) row[iw] = T(0);
        const std::size_t ihp = ih + pad;
        for (std::size_t u = 0; u < kh && u <= ihp; ++u) {
          const std::size_t d = ihp - u;  // = oh·s
          if (s != 1 && d % s != 0) continue;
          const std::size_t oh = s == 1 ? d : d / s;
          if (oh >= ho) continue;
          for (std::size_t v = 0; v < kw; ++v) {
            const T* src = dcol + ((ci * kh + u) * kw + v) * Q + n * P + oh * wo;
            std::size_t lo, hi;
            tap_range(v, pad, W, s, wo, lo, hi);
            if (s == 1) {
              for (std::size_t ow = lo; ow < hi; ++ow) row[ow + v - pad] += src[ow];
            } else {
              for (std::size_t ow = lo; ow < hi; ++ow) row[ow * s + v - pad] += src[ow];
            }
          }
        }
      });
}

template <class T>
void Conv2d<T>::unfold_out(const T* z, const T* bias, std::size_t n0, std::size_t bc, MatU<T> dst) const {
  // One thread per (sample, output channel, output row).
  const std::size_t P = pixels(), Q = bc * P, cout = cout_, ho = ho_, wo = wo_;
  const bool has_z = z != nullptr, has_b = bias != nullptr;
  Kokkos::parallel_for(
      "sama::Conv2d::unfold_out", Range(0, bc * cout * ho), KOKKOS_LAMBDA(const std::size_t idx) {
        const std::size_t no = idx / ho, oh = idx - no * ho;
        const std::size_t n = no / cout, o = no - n * cout;
        const T b = has_b ? bias[o] : T(0);
        T* row = &dst(n0 + n, o * P + oh * wo);
        if (has_z) {
          const T* zr = z + o * Q + n * P + oh * wo;
          for (std::size_t ow = 0; ow < wo; ++ow) row[ow] = b + zr[ow];
        } else {
          for (std::size_t ow = 0; ow < wo; ++ow) row[ow] = b;
        }
      });
}

template <class T>
void Conv2d<T>::fold_out(MatU<const T> g, std::size_t n0, std::size_t bc, T* z) const {
  // One thread per (output channel, sample, output row).
  const std::size_t P = pixels(), Q = bc * P, ho = ho_, wo = wo_;
  Kokkos::parallel_for(
      "sama::Conv2d::fold_out", Range(0, cout_ * bc * ho), KOKKOS_LAMBDA(const std::size_t idx) {
        const std::size_t t = idx / ho, oh = idx - t * ho;
        const std::size_t o = t / bc, n = t - o * bc;
        const T* src = &g(n0 + n, o * P + oh * wo);
        T* zr = z + o * Q + n * P + oh * wo;
        for (std::size_t ow = 0; ow < wo; ++ow) zr[ow] = src[ow];
      });
}

template <class T>
void Conv2d<T>::bias_sum(MatU<const T> g, T* db) const {
  const std::size_t P = pixels(), batch = g.extent(0);
  Kokkos::parallel_for(
      "sama::Conv2d::bias_sum", Team(static_cast<int>(cout_), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t o = static_cast<std::size_t>(t.league_rank());
        T s = T(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, batch),
            [&](const std::size_t n, T& acc) {
              const T* row = &g(n, o * P);
              for (std::size_t pix = 0; pix < P; ++pix) acc += row[pix];
            },
            s);
        Kokkos::single(Kokkos::PerTeam(t), [&]() { db[o] = s; });
      });
}

template <class T>
void Conv2d<T>::add_sample_sq(const T* gn, MatU<const T> g, std::size_t n0, std::size_t bc, VecU<T> sq) const {
  const std::size_t P = pixels(), cout = cout_, ck = cout_ * patch();
  const bool has_b = bias_;
  Kokkos::parallel_for(
      "sama::Conv2d::sample_sq", Team(static_cast<int>(bc), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t n = static_cast<std::size_t>(t.league_rank());
        const T* gi = gn + n * ck;
        T sw = T(0), sb = T(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, ck), [&](const std::size_t i, T& acc) { acc += gi[i] * gi[i]; }, sw);
        if (has_b) {
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, cout),
              [&](const std::size_t o, T& acc) {
                T v = T(0);
                for (std::size_t pix = 0; pix < P; ++pix) v += g(n0 + n, o * P + pix);
                acc += v * v;
              },
              sb);
        }
        Kokkos::single(Kokkos::PerTeam(t), [&]() { sq(n0 + n) += sw + sb; });
      });
}

// ---------------------------------------------------------------------------------------------------
// Passes.

template <class T>
void Conv2d<T>::forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const {
  const std::size_t B = x.extent(0), P = pixels(), K = patch(), cout = cout_;
  if (B == 0) return;
  const auto w = cmat(c.p.data(), cout, K);
  const T* b = bias_ ? c.p.data() + weights() : nullptr;
  if (pointwise()) {  // y_n = W x_n (+ b)
    if (b) unfold_out(nullptr, b, 0, B, y);
    for (std::size_t n = 0; n < B; ++n)
      gemm<T>(Op::N, Op::N, T(1), w, sample(x, n, cin_, P), b ? T(1) : T(0), sample(y, n, cout, P));
    return;
  }
  const std::size_t bc = chunk(B);
  T* col = scratch(c, B);
  T* z = col + bc * K * P;
  for (std::size_t n0 = 0; n0 < B; n0 += bc) {
    const std::size_t m = std::min(bc, B - n0), Q = m * P;
    im2col(x, n0, m, col);
    gemm<T>(Op::N, Op::N, T(1), w, cmat(col, K, Q), T(0), MatU<T>(z, cout, Q));  // Z = W col
    unfold_out(z, b, n0, m, y);
  }
}

template <class T>
void Conv2d<T>::backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> /*y*/, MatU<const T> dy, MatU<T> dx,
                         VecU<T> dp) const {
  const std::size_t B = x.extent(0), P = pixels(), K = patch(), cout = cout_;
  SAMA_REQUIRE(dp.extent(0) == num_params(), "conv2d backward: dp has {} elements, {} expected", dp.extent(0),
               num_params());
  if (B == 0) {
    Kokkos::deep_copy(dp, T(0));
    return;
  }
  const auto w = cmat(c.p.data(), cout, K);
  MatU<T> dw(dp.data(), cout, K);
  if (bias_) bias_sum(dy, dp.data() + weights());
  const bool want_sq = c.sample_sq.data() != nullptr, want_dx = dx.data() != nullptr;
  const std::size_t bc = chunk(B);
  T* col = scratch(c, B);
  if (pointwise()) {
    T* g = col;  // per-sample shares [bc][Cout·K]
    for (std::size_t n = 0; n < B; ++n)
      gemm<T>(Op::N, Op::T, T(1), sample(dy, n, cout, P), sample(x, n, cin_, P), n == 0 ? T(0) : T(1), dw);
    if (want_sq) {
      for (std::size_t n0 = 0; n0 < B; n0 += bc) {
        const std::size_t m = std::min(bc, B - n0);
        for (std::size_t i = 0; i < m; ++i)
          gemm<T>(Op::N, Op::T, T(1), sample(dy, n0 + i, cout, P), sample(x, n0 + i, cin_, P), T(0),
                  MatU<T>(g + i * cout * K, cout, K));
        add_sample_sq(g, dy, n0, m, c.sample_sq);
      }
    }
    if (want_dx)
      for (std::size_t n = 0; n < B; ++n)
        gemm<T>(Op::T, Op::N, T(1), w, sample(dy, n, cout, P), T(0), sample(dx, n, cin_, P));
    return;
  }
  T* z = col + bc * K * P;
  T* g = z + bc * cout * P;  // per-sample shares [bc][Cout·K]
  T* one = g + bc * cout * K;  // one sample's col [K, P]
  for (std::size_t n0 = 0; n0 < B; n0 += bc) {
    const std::size_t m = std::min(bc, B - n0), Q = m * P;
    im2col(x, n0, m, col);
    fold_out(dy, n0, m, z);
    const auto zm = cmat(z, cout, Q);
    gemm<T>(Op::N, Op::T, T(1), zm, cmat(col, K, Q), n0 == 0 ? T(0) : T(1), dw);  // dW (+)= Dz colᵀ
    if (want_sq) {
      for (std::size_t i = 0; i < m; ++i) {
        if (m > 1) im2col(x, n0 + i, 1, one);  // a chunk of one sample is its col already
        gemm<T>(Op::N, Op::T, T(1), sample(dy, n0 + i, cout, P), cmat(m > 1 ? one : col, K, P), T(0),
                MatU<T>(g + i * cout * K, cout, K));
      }
      add_sample_sq(g, dy, n0, m, c.sample_sq);
    }
    if (want_dx) {
      gemm<T>(Op::T, Op::N, T(1), w, zm, T(0), MatU<T>(col, K, Q));  // dcol = Wᵀ Dz
      col2im(col, n0, m, dx);
    }
  }
}

template <class T>
void Conv2d<T>::forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                MatU<const T> /*y*/, MatU<T> y_dot) const {
  const std::size_t B = x.extent(0), P = pixels(), K = patch(), cout = cout_;
  if (B == 0) return;
  const bool has_pd = p_dot.data() != nullptr, has_xd = x_dot.data() != nullptr;
  const auto w = cmat(c.p.data(), cout, K);
  const auto w_dot = has_pd ? cmat(p_dot.data(), cout, K) : MatU<const T>();
  const T* b_dot = has_pd && bias_ ? p_dot.data() + weights() : nullptr;
  if (pointwise()) {  // ẏ_n = ḃ + Ẇ x_n + W ẋ_n
    const bool filled = b_dot != nullptr || (!has_pd && !has_xd);
    if (filled) unfold_out(nullptr, b_dot, 0, B, y_dot);
    for (std::size_t n = 0; n < B; ++n) {
      T beta = filled ? T(1) : T(0);
      if (has_pd) {
        gemm<T>(Op::N, Op::N, T(1), w_dot, sample(x, n, cin_, P), beta, sample(y_dot, n, cout, P));
        beta = T(1);
      }
      if (has_xd) gemm<T>(Op::N, Op::N, T(1), w, sample(x_dot, n, cin_, P), beta, sample(y_dot, n, cout, P));
    }
    return;
  }
  const std::size_t bc = chunk(B);
  T* col = scratch(c, B);
  T* z = col + bc * K * P;
  for (std::size_t n0 = 0; n0 < B; n0 += bc) {
    const std::size_t m = std::min(bc, B - n0), Q = m * P;
    const MatU<T> zm(z, cout, Q);
    bool any = false;
    if (has_pd) {  // Z = Ẇ col(x)
      im2col(x, n0, m, col);
      gemm<T>(Op::N, Op::N, T(1), w_dot, cmat(col, K, Q), T(0), zm);
      any = true;
    }
    if (has_xd) {  // Z += W col(ẋ)
      im2col(x_dot, n0, m, col);
      gemm<T>(Op::N, Op::N, T(1), w, cmat(col, K, Q), any ? T(1) : T(0), zm);
      any = true;
    }
    unfold_out(any ? z : nullptr, b_dot, n0, m, y_dot);
  }
}

template <class T>
void Conv2d<T>::backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                 MatU<const T> /*y*/, MatU<const T> /*y_dot*/, MatU<const T> dy,
                                 MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> dp_dot) const {
  const std::size_t B = x.extent(0), P = pixels(), K = patch(), cout = cout_;
  SAMA_REQUIRE(dp_dot.extent(0) == num_params(), "conv2d backward_tangent: dp_dot has {} elements, {} expected",
               dp_dot.extent(0), num_params());
  if (B == 0) {
    Kokkos::deep_copy(dp_dot, T(0));
    return;
  }
  const bool has_pd = p_dot.data() != nullptr, has_xd = x_dot.data() != nullptr, want_dx = dx_dot.data() != nullptr;
  const auto w = cmat(c.p.data(), cout, K);
  const auto w_dot = has_pd ? cmat(p_dot.data(), cout, K) : MatU<const T>();
  MatU<T> dw_dot(dp_dot.data(), cout, K);
  if (bias_) bias_sum(dy_dot, dp_dot.data() + weights());  // R{db} = Σ ḋy
  if (pointwise()) {
    for (std::size_t n = 0; n < B; ++n) {
      gemm<T>(Op::N, Op::T, T(1), sample(dy_dot, n, cout, P), sample(x, n, cin_, P), n == 0 ? T(0) : T(1), dw_dot);
      if (has_xd) gemm<T>(Op::N, Op::T, T(1), sample(dy, n, cout, P), sample(x_dot, n, cin_, P), T(1), dw_dot);
    }
    if (!want_dx) return;
    for (std::size_t n = 0; n < B; ++n) {
      gemm<T>(Op::T, Op::N, T(1), w, sample(dy_dot, n, cout, P), T(0), sample(dx_dot, n, cin_, P));
      if (has_pd) gemm<T>(Op::T, Op::N, T(1), w_dot, sample(dy, n, cout, P), T(1), sample(dx_dot, n, cin_, P));
    }
    return;
  }
  const std::size_t bc = chunk(B);
  T* col = scratch(c, B);
  T* z = col + bc * K * P;
  for (std::size_t n0 = 0; n0 < B; n0 += bc) {
    const std::size_t m = std::min(bc, B - n0), Q = m * P;
    const auto zm = cmat(z, cout, Q);
    const auto colm = cmat(col, K, Q);
    const MatU<T> col_out(col, K, Q);
    // R{dW} (+)= Ḋz col(x)ᵀ
    fold_out(dy_dot, n0, m, z);
    im2col(x, n0, m, col);
    gemm<T>(Op::N, Op::T, T(1), zm, colm, n0 == 0 ? T(0) : T(1), dw_dot);
    bool z_is_dy = false;
    if (want_dx) {  // R{dx} = col2im(Wᵀ Ḋz + Ẇᵀ Dz)
      gemm<T>(Op::T, Op::N, T(1), w, zm, T(0), col_out);
      if (has_pd) {
        fold_out(dy, n0, m, z);
        z_is_dy = true;
        gemm<T>(Op::T, Op::N, T(1), w_dot, zm, T(1), col_out);
      }
      col2im(col, n0, m, dx_dot);
    }
    if (has_xd) {  // R{dW} += Dz col(ẋ)ᵀ
      if (!z_is_dy) fold_out(dy, n0, m, z);
      im2col(x_dot, n0, m, col);
      gemm<T>(Op::N, Op::T, T(1), zm, colm, T(1), dw_dot);
    }
  }
}

template class Conv2d<float>;
template class Conv2d<double>;

}  // namespace sama::nn
