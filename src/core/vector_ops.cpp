#include "sama/core/vector_ops.hpp"

#include "sama/core/error.hpp"

#include <cmath>

namespace sama::ops {

template <class T>
void copy(VecU<const T> src, VecU<T> dst) {
  SAMA_REQUIRE(src.extent(0) == dst.extent(0), "ops::copy: sizes {} and {} differ", src.extent(0), dst.extent(0));
  Kokkos::deep_copy(dst, src);
}

template <class T>
void add_scaled(VecU<const T> a, T s, VecU<const T> b, VecU<T> out) {
  Kokkos::parallel_for(
      "sama::ops::add_scaled", Range(0, out.extent(0)), KOKKOS_LAMBDA(const std::size_t i) { out(i) = a(i) + s * b(i); });
}

template <class T>
void save_and_add_scaled(VecU<T> x, T s, VecU<const T> b, VecU<T> saved) {
  Kokkos::parallel_for(
      "sama::ops::save_and_add_scaled", Range(0, x.extent(0)), KOKKOS_LAMBDA(const std::size_t i) {
        const T v = x(i);
        saved(i) = v;
        x(i) = v + s * b(i);
      });
}

template <class T>
void scale(VecU<const T> a, T s, VecU<T> out) {
  Kokkos::parallel_for(
      "sama::ops::scale", Range(0, out.extent(0)), KOKKOS_LAMBDA(const std::size_t i) { out(i) = s * a(i); });
}

template <class T>
void fill(VecU<T> x, T value) {
  Kokkos::deep_copy(x, value);
}

template <class T>
double dot(VecU<const T> x, VecU<const T> y) {
  // Blocks of 8 summed as a tree, then accumulated in double: one dependent add per block (the
  // plain loop is latency-bound and cannot be vectorised without reassociation). The n % 8 tail is
  // one more iteration of the same kernel, added element by element (on Serial, the same order as
  // a host loop after the blocks), so nothing reads the views on the host.
  const std::size_t n = x.extent(0), blocks = n / 8, tail = n - 8 * blocks;
  const T* xp = x.data();
  const T* yp = y.data();
  double r = 0;
  Kokkos::parallel_reduce(
      "sama::ops::dot", Range(0, blocks + (tail > 0 ? 1 : 0)),
      KOKKOS_LAMBDA(const std::size_t b, double& acc) {
        const T* a = xp + 8 * b;
        const T* c = yp + 8 * b;
        if (b == blocks) {
          for (std::size_t j = 0; j < tail; ++j) acc += static_cast<double>(a[j]) * static_cast<double>(c[j]);
          return;
        }
        double p[8];
        for (int j = 0; j < 8; ++j) p[j] = static_cast<double>(a[j]) * static_cast<double>(c[j]);
        acc += ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
      },
      r);
  return r;
}

template <class T>
double norm2(VecU<const T> x) {
  return std::sqrt(dot<T>(x, x));
}

template <class T>
double sum(VecU<const T> x) {
  double r = 0;
  Kokkos::parallel_reduce(
      "sama::ops::sum", Range(0, x.extent(0)),
      KOKKOS_LAMBDA(const std::size_t i, double& acc) { acc += static_cast<double>(x(i)); }, r);
  return r;
}

template <class T>
bool all_finite(VecU<const T> x) {
  std::size_t bad = 0;
  Kokkos::parallel_reduce(
      "sama::ops::all_finite", Range(0, x.extent(0)),
      KOKKOS_LAMBDA(const std::size_t i, std::size_t& acc) {
        const T v = x(i);
        acc += (v - v == T(0)) ? 0 : 1;  // NaN and ±Inf give NaN
      },
      bad);
  return bad == 0;
}

template <class T>
void scaled_difference(VecU<const T> a, VecU<const T> b, T s, VecU<T> out) {
  Kokkos::parallel_for(
      "sama::ops::scaled_difference", Range(0, out.extent(0)),
      KOKKOS_LAMBDA(const std::size_t i) { out(i) = (a(i) - b(i)) * s; });
}

#define SAMA_INSTANTIATE(T)                                         \
  template void copy<T>(VecU<const T>, VecU<T>);                    \
  template void add_scaled<T>(VecU<const T>, T, VecU<const T>, VecU<T>); \
  template void scale<T>(VecU<const T>, T, VecU<T>);                \
  template void save_and_add_scaled<T>(VecU<T>, T, VecU<const T>, VecU<T>); \
  template void fill<T>(VecU<T>, T);                                \
  template double dot<T>(VecU<const T>, VecU<const T>);             \
  template double norm2<T>(VecU<const T>);                          \
  template double sum<T>(VecU<const T>);                            \
  template bool all_finite<T>(VecU<const T>);                       \
  template void scaled_difference<T>(VecU<const T>, VecU<const T>, T, VecU<T>);
SAMA_INSTANTIATE(float)
SAMA_INSTANTIATE(double)
#undef SAMA_INSTANTIATE

}  // namespace sama::ops
