#include "sama/nn/linear.hpp"

#include "sama/core/gemm.hpp"

#include <cmath>
#include <type_traits>

namespace sama::nn {

namespace {
/// db[j] = Σ_i dy(i, j). On a serial host back end the rows are streamed (contiguous, vectorised);
/// elsewhere one thread per output column.
template <class T>
void bias_gradient(MatU<const T> dy, T* db, std::size_t batch, std::size_t out) {
#ifdef KOKKOS_ENABLE_SERIAL
  if constexpr (std::is_same_v<ExecSpace, Kokkos::Serial>) {
    for (std::size_t j = 0; j < out; ++j) db[j] = T(0);
    for (std::size_t i = 0; i < batch; ++i) {
      const T* row = &dy(i, 0);
      for (std::size_t j = 0; j < out; ++j) db[j] += row[j];
    }
    return;
  }
#endif
  Kokkos::parallel_for(
      "sama::Linear::backward_bias", Range(0, out), KOKKOS_LAMBDA(const std::size_t j) {
        T s = 0;
        for (std::size_t i = 0; i < batch; ++i) s += dy(i, j);
        db[j] = s;
      });
}
}  // namespace

template <class T>
void Linear<T>::init(VecU<T> p, Rng& rng) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(this->in()));
  auto h = Kokkos::create_mirror_view(p);
  for (std::size_t i = 0; i < h.extent(0); ++i) h(i) = static_cast<T>(rng.uniform(-bound, bound));
  Kokkos::deep_copy(p, h);
}

template <class T>
void Linear<T>::forward(VecU<const T> p, MatU<const T> x, MatU<T> y) const {
  const std::size_t in = this->in(), out = this->out(), batch = x.extent(0);
  MatU<const T> w(p.data(), out, in);
  const T* b = p.data() + out * in;
  // y = b (broadcast), then y += x Wᵀ in one GEMM with beta = 1.
  Kokkos::parallel_for(
      "sama::Linear::forward_bias", Range(0, batch), KOKKOS_LAMBDA(const std::size_t i) {
        for (std::size_t j = 0; j < out; ++j) y(i, j) = b[j];
      });
  gemm<T>(Op::N, Op::T, T(1), x, w, T(1), y);
}

template <class T>
void Linear<T>::backward(VecU<const T> p, MatU<const T> x, MatU<const T> /*y*/, MatU<const T> dy, MatU<T> dx,
                         VecU<T> dp) const {
  const std::size_t in = this->in(), out = this->out(), batch = x.extent(0);
  MatU<const T> w(p.data(), out, in);
  MatU<T> dw(dp.data(), out, in);
  T* db = dp.data() + out * in;
  gemm<T>(Op::T, Op::N, T(1), dy, x, T(0), dw);  // dW = dyᵀ x
  bias_gradient(dy, db, batch, out);
  if (dx.data() != nullptr) gemm<T>(Op::N, Op::N, T(1), dy, w, T(0), dx);  // dx = dy W
}

template <class T>
void Linear<T>::forward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                MatU<const T> /*y*/, MatU<T> y_dot) const {
  const std::size_t in = this->in(), out = this->out(), batch = x.extent(0);
  MatU<const T> w(p.data(), out, in);
  // ẏ = ḃ (broadcast) + x Ẇᵀ, then += ẋ Wᵀ; a zero tangent contributes nothing.
  T beta = T(0);
  if (p_dot.data() != nullptr) {
    MatU<const T> w_dot(p_dot.data(), out, in);
    const T* b_dot = p_dot.data() + out * in;
    Kokkos::parallel_for(
        "sama::Linear::forward_tangent_bias", Range(0, batch), KOKKOS_LAMBDA(const std::size_t i) {
          for (std::size_t j = 0; j < out; ++j) y_dot(i, j) = b_dot[j];
        });
    gemm<T>(Op::N, Op::T, T(1), x, w_dot, T(1), y_dot);
    beta = T(1);
  }
  if (x_dot.data() != nullptr) {
    gemm<T>(Op::N, Op::T, T(1), x_dot, w, beta, y_dot);
  } else if (beta == T(0)) {
    Kokkos::deep_copy(y_dot, T(0));
  }
}

template <class T>
void Linear<T>::backward_tangent(VecU<const T> p, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                 MatU<const T> /*y*/, MatU<const T> /*y_dot*/, MatU<const T> dy,
                                 MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> dp_dot) const {
  const std::size_t in = this->in(), out = this->out(), batch = x.extent(0);
  MatU<const T> w(p.data(), out, in);
  MatU<T> dw_dot(dp_dot.data(), out, in);
  gemm<T>(Op::T, Op::N, T(1), dy_dot, x, T(0), dw_dot);                              // ḋyᵀ x
  if (x_dot.data() != nullptr) gemm<T>(Op::T, Op::N, T(1), dy, x_dot, T(1), dw_dot);  // + dyᵀ ẋ
  bias_gradient(dy_dot, dp_dot.data() + out * in, batch, out);                        // Σ_i ḋy_i
  if (dx_dot.data() == nullptr) return;
  gemm<T>(Op::N, Op::N, T(1), dy_dot, w, T(0), dx_dot);  // ḋy W
  if (p_dot.data() != nullptr)
    gemm<T>(Op::N, Op::N, T(1), dy, MatU<const T>(p_dot.data(), out, in), T(1), dx_dot);  // + dy Ẇ
}

template class Linear<float>;
template class Linear<double>;

}  // namespace sama::nn
