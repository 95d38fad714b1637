#pragma once
// Math functions callable in kernels on host and device, for Kokkos 3.4 (Kokkos::Experimental) and
// ≥ 3.7 / 4.x (Kokkos::).
#include <Kokkos_Core.hpp>

namespace sama::kmath {

template <class T>
KOKKOS_INLINE_FUNCTION T kk_sqrt(T x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::sqrt(x);
#else
  return Kokkos::Experimental::sqrt(x);
#endif
}

template <class T>
KOKKOS_INLINE_FUNCTION T kk_tanh(T x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::tanh(x);
#else
  return Kokkos::Experimental::tanh(x);
#endif
}

template <class T>
KOKKOS_INLINE_FUNCTION T kk_exp(T x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::exp(x);
#else
  return Kokkos::Experimental::exp(x);
#endif
}

template <class T>
KOKKOS_INLINE_FUNCTION T kk_log1p(T x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::log1p(x);
#else
  return Kokkos::Experimental::log1p(x);
#endif
}

/// softplus(x) = log(1 + eˣ), computed without overflow: max(x, 0) + log1p(e^(−|x|)).
template <class T>
KOKKOS_INLINE_FUNCTION T softplus(T x) {
  return (x > T(0) ? x : T(0)) + kk_log1p(kk_exp(x > T(0) ? -x : x));
}

/// The logistic function 1/(1 + e^(−x)) (= softplus'), without overflow.
template <class T>
KOKKOS_INLINE_FUNCTION T logistic(T x) {
  if (x >= T(0)) return T(1) / (T(1) + kk_exp(-x));
  const T e = kk_exp(x);
  return e / (T(1) + e);
}

/// sech²(x) = 1 − tanh²(x) = 4e/(1 + e)² with e = exp(−2|x|): no cancellation as |tanh x| → 1, so
/// relative precision holds until e underflows (|x| ≈ 44 in float).
template <class T>
KOKKOS_INLINE_FUNCTION T sech2(T x) {
  const T e = kk_exp(T(-2) * (x < T(0) ? -x : x));
  return T(4) * e / ((T(1) + e) * (T(1) + e));
}

/// sign(x) ∈ {−1, 0, 1} (0 at 0, like torch.sign).
template <class T>
KOKKOS_INLINE_FUNCTION T sign(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

}  // namespace sama::kmath
