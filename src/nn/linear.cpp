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

template class Linear<float>;
template class Linear<double>;

}  // namespace sama::nn
