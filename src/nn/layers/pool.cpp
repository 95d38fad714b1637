#include "sama/nn/layers/pool.hpp"

#include "sama/core/error.hpp"

#include <string>

namespace sama::nn {

PoolGeometry pool_geometry(const char* kind, Shape in, std::size_t k, std::size_t stride, std::size_t padding) {
  SAMA_REQUIRE(in.size() > 0, "{}: empty input shape {}", kind, to_string(in));
  SAMA_REQUIRE(k >= 1 && stride >= 1, "{}: window {} and stride {} must be at least 1", kind, k, stride);
  SAMA_REQUIRE(2 * padding <= k, "{}: padding {} exceeds half the window {}", kind, padding, k);
  SAMA_REQUIRE(in.h + 2 * padding >= k && in.w + 2 * padding >= k, "{}: a {}x{} window (padding {}) does not fit {}",
               kind, k, k, padding, to_string(in));
  PoolGeometry g;
  g.h = static_cast<long>(in.h);
  g.w = static_cast<long>(in.w);
  g.k = static_cast<long>(k);
  g.stride = static_cast<long>(stride);
  g.pad = static_cast<long>(padding);
  g.oh = (g.h + 2 * g.pad - g.k) / g.stride + 1;
  g.ow = (g.w + 2 * g.pad - g.k) / g.stride + 1;
  return g;
}

namespace {
std::string window_text(const char* kind, const PoolGeometry& g) {
  return std::string(kind) + std::to_string(g.k) + "x" + std::to_string(g.k) + "(stride " + std::to_string(g.stride) +
         ", pad " + std::to_string(g.pad) + ")";
}

/// Index (within the plane) of the largest value of window (oh, ow): −∞ padding, first index on ties,
/// the first NaN if any. Every window holds at least one real element (padding ≤ k / 2).
template <class T>
KOKKOS_INLINE_FUNCTION long window_argmax(const T* plane, const PoolGeometry& g, long oh, long ow) {
  const long hs = oh * g.stride - g.pad, ws = ow * g.stride - g.pad;
  long best = -1;
  T bv = T(0);
  for (long ih = hs; ih < hs + g.k; ++ih) {
    if (ih < 0 || ih >= g.h) continue;
    for (long iw = ws; iw < ws + g.k; ++iw) {
      if (iw < 0 || iw >= g.w) continue;
      const T v = plane[ih * g.w + iw];
      if (best < 0 || v > bv || (v != v && bv == bv)) {
        best = ih * g.w + iw;
        bv = v;
      }
    }
  }
  return best;
}

/// The range [lo, hi] of output rows (or columns) whose window covers input row i.
KOKKOS_INLINE_FUNCTION void covering(long i, long k, long stride, long pad, long out, long& lo, long& hi) {
  const long first = i + pad - k + 1;  // oh·stride ≥ first
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (i + pad) / stride;
  if (hi > out - 1) hi = out - 1;
}

/// y[plane][oh, ow] = x[plane][argmax], or (avg) the window's sum / k².
template <class T>
void pool_forward(bool max, const PoolGeometry& g, std::size_t planes, const T* xp, T* yp) {
  const std::size_t per = static_cast<std::size_t>(g.oh * g.ow), in_per = static_cast<std::size_t>(g.h * g.w);
  const T inv_area = T(1) / T(g.k * g.k);
  Kokkos::parallel_for(
      max ? "sama::MaxPool2d::forward" : "sama::AvgPool2d::forward", Range(0, planes * per),
      KOKKOS_LAMBDA(const std::size_t o) {
        const std::size_t pl = o / per;
        const long r = static_cast<long>(o - pl * per), oh = r / g.ow, ow = r - oh * g.ow;
        const T* plane = xp + pl * in_per;
        if (max) {
          yp[o] = plane[window_argmax(plane, g, oh, ow)];
          return;
        }
        const long hs = oh * g.stride - g.pad, ws = ow * g.stride - g.pad;
        T s = T(0);
        for (long ih = hs; ih < hs + g.k; ++ih) {
          if (ih < 0 || ih >= g.h) continue;
          for (long iw = ws; iw < ws + g.k; ++iw)
            if (iw >= 0 && iw < g.w) s += plane[ih * g.w + iw];
        }
        yp[o] = s * inv_area;
      });
}

/// dx[plane][i] = Σ over the windows covering i (max: that picked i) of dy / (max ? 1 : k²); a gather,
/// so deterministic. dyp == nullptr: dx = 0.
template <class T>
void pool_backward(bool max, const PoolGeometry& g, std::size_t planes, const T* xp, const T* dyp, T* dxp) {
  const std::size_t per = static_cast<std::size_t>(g.oh * g.ow), in_per = static_cast<std::size_t>(g.h * g.w);
  const T inv_area = T(1) / T(g.k * g.k);
  Kokkos::parallel_for(
      max ? "sama::MaxPool2d::backward" : "sama::AvgPool2d::backward", Range(0, planes * in_per),
      KOKKOS_LAMBDA(const std::size_t i) {
        if (dyp == nullptr) {
          dxp[i] = T(0);
          return;
        }
        const std::size_t pl = i / in_per;
        const long r = static_cast<long>(i - pl * in_per), ih = r / g.w, iw = r - ih * g.w;
        const T* plane = xp + pl * in_per;
        const T* dplane = dyp + pl * per;
        long h0, h1, w0, w1;
        covering(ih, g.k, g.stride, g.pad, g.oh, h0, h1);
        covering(iw, g.k, g.stride, g.pad, g.ow, w0, w1);
        T s = T(0);
        for (long oh = h0; oh <= h1; ++oh)
          for (long ow = w0; ow <= w1; ++ow) {
            if (max && window_argmax(plane, g, oh, ow) != r) continue;
            s += dplane[oh * g.ow + ow];
          }
        dxp[i] = max ? s : s * inv_area;
      });
}

/// ẏ = ẋ at each window's argmax of x.
template <class T>
void max_pool_tangent(const PoolGeometry& g, std::size_t planes, const T* xp, const T* xdp, T* ydp) {
  const std::size_t per = static_cast<std::size_t>(g.oh * g.ow), in_per = static_cast<std::size_t>(g.h * g.w);
  Kokkos::parallel_for(
      "sama::MaxPool2d::forward_tangent", Range(0, planes * per), KOKKOS_LAMBDA(const std::size_t o) {
        const std::size_t pl = o / per;
        const long r = static_cast<long>(o - pl * per), oh = r / g.ow, ow = r - oh * g.ow;
        ydp[o] = xdp[pl * in_per + static_cast<std::size_t>(window_argmax(xp + pl * in_per, g, oh, ow))];
      });
}

Shape pooled(Shape in, const PoolGeometry& g) {
  return Shape{in.c, static_cast<std::size_t>(g.oh), static_cast<std::size_t>(g.ow)};
}

template <class T>
void zero(MatU<T> m) {
  if (m.data() != nullptr) Kokkos::deep_copy(m, T(0));
}
}  // namespace

// ---- MaxPool2d ----

template <class T>
MaxPool2d<T>::MaxPool2d(Shape in, std::size_t k, std::size_t stride, std::size_t padding)
    : Module<T>(in, pooled(in, pool_geometry("maxpool", in, k, stride, padding))),
      g_(pool_geometry("maxpool", in, k, stride, padding)) {}

template <class T>
std::string MaxPool2d<T>::describe() const {
  return window_text("maxpool", g_);
}

template <class T>
void MaxPool2d<T>::forward(const ModuleCtx<T>&, MatU<const T> x, MatU<T> y) const {
  pool_forward(true, g_, x.extent(0) * this->in_shape().c, x.data(), y.data());
}

template <class T>
void MaxPool2d<T>::backward(const ModuleCtx<T>&, MatU<const T> x, MatU<const T>, MatU<const T> dy, MatU<T> dx,
                            VecU<T>) const {
  if (dx.data() == nullptr) return;
  pool_backward(true, g_, x.extent(0) * this->in_shape().c, x.data(), dy.data(), dx.data());
}

template <class T>
void MaxPool2d<T>::forward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T> x, MatU<const T> x_dot,
                                   MatU<const T>, MatU<T> y_dot) const {
  if (x_dot.data() == nullptr) return zero(y_dot);
  max_pool_tangent(g_, x.extent(0) * this->in_shape().c, x.data(), x_dot.data(), y_dot.data());
}

template <class T>
void MaxPool2d<T>::backward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T> x, MatU<const T>,
                                    MatU<const T>, MatU<const T>, MatU<const T>, MatU<const T> dy_dot,
                                    MatU<T> dx_dot, VecU<T>) const {
  if (dx_dot.data() == nullptr) return;
  pool_backward(true, g_, x.extent(0) * this->in_shape().c, x.data(), dy_dot.data(), dx_dot.data());
}

// ---- AvgPool2d ----

template <class T>
AvgPool2d<T>::AvgPool2d(Shape in, std::size_t k, std::size_t stride, std::size_t padding)
    : Module<T>(in, pooled(in, pool_geometry("avgpool", in, k, stride, padding))),
      g_(pool_geometry("avgpool", in, k, stride, padding)) {}

template <class T>
std::string AvgPool2d<T>::describe() const {
  return window_text("avgpool", g_);
}

template <class T>
void AvgPool2d<T>::forward(const ModuleCtx<T>&, MatU<const T> x, MatU<T> y) const {
  pool_forward(false, g_, x.extent(0) * this->in_shape().c, x.data(), y.data());
}

template <class T>
void AvgPool2d<T>::backward(const ModuleCtx<T>&, MatU<const T> x, MatU<const T>, MatU<const T> dy, MatU<T> dx,
                            VecU<T>) const {
  if (dx.data() == nullptr) return;
  pool_backward(false, g_, x.extent(0) * this->in_shape().c, x.data(), dy.data(), dx.data());
}

template <class T>
void AvgPool2d<T>::forward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T> x, MatU<const T> x_dot,
                                   MatU<const T>, MatU<T> y_dot) const {
  if (x_dot.data() == nullptr) return zero(y_dot);
  pool_forward(false, g_, x.extent(0) * this->in_shape().c, x_dot.data(), y_dot.data());
}

template <class T>
void AvgPool2d<T>::backward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T> x, MatU<const T>,
                                    MatU<const T>, MatU<const T>, MatU<const T>, MatU<const T> dy_dot,
                                    MatU<T> dx_dot, VecU<T>) const {
  if (dx_dot.data() == nullptr) return;
  pool_backward(false, g_, x.extent(0) * this->in_shape().c, x.data(), dy_dot.data(), dx_dot.data());
}

// ---- GlobalAvgPool ----

template <class T>
void GlobalAvgPool<T>::forward(const ModuleCtx<T>&, MatU<const T> x, MatU<T> y) const {
  const std::size_t rows = x.extent(0) * this->in_shape().c, hw = this->in_shape().h * this->in_shape().w;
  const T* xp = x.data();
  T* yp = y.data();
  Kokkos::parallel_for(
      "sama::GlobalAvgPool::forward", Range(0, rows), KOKKOS_LAMBDA(const std::size_t r) {
        T s = T(0);
        for (std::size_t k = 0; k < hw; ++k) s += xp[r * hw + k];
        yp[r] = s / T(hw);
      });
}

template <class T>
void GlobalAvgPool<T>::backward(const ModuleCtx<T>&, MatU<const T> x, MatU<const T>, MatU<const T> dy, MatU<T> dx,
                                VecU<T>) const {
  if (dx.data() == nullptr) return;
  const std::size_t n = x.extent(0) * this->in(), hw = this->in_shape().h * this->in_shape().w;
  const T* dyp = dy.data();
  T* dxp = dx.data();
  Kokkos::parallel_for(
      "sama::GlobalAvgPool::backward", Range(0, n),
      KOKKOS_LAMBDA(const std::size_t i) { dxp[i] = dyp == nullptr ? T(0) : dyp[i / hw] / T(hw); });
}

template <class T>
void GlobalAvgPool<T>::forward_tangent(const ModuleCtx<T>& c, VecU<const T>, MatU<const T>, MatU<const T> x_dot,
                                       MatU<const T>, MatU<T> y_dot) const {
  if (x_dot.data() == nullptr) return zero(y_dot);
  forward(c, x_dot, y_dot);
}

template <class T>
void GlobalAvgPool<T>::backward_tangent(const ModuleCtx<T>& c, VecU<const T>, MatU<const T> x, MatU<const T>,
                                        MatU<const T> y, MatU<const T>, MatU<const T>, MatU<const T> dy_dot,
                                        MatU<T> dx_dot, VecU<T> dp_dot) const {
  backward(c, x, y, dy_dot, dx_dot, dp_dot);
}

template class MaxPool2d<float>;
template class MaxPool2d<double>;
template class AvgPool2d<float>;
template class AvgPool2d<double>;
template class GlobalAvgPool<float>;
template class GlobalAvgPool<double>;

}  // namespace sama::nn
