#pragma once
// Element-wise operations and reductions over flat buffers (one kernel each).
#include "sama/core/types.hpp"

namespace sama::ops {

/// dst = src (bitwise).
template <class T>
void copy(VecU<const T> src, VecU<T> dst);
/// out = a + s * b.
template <class T>
void add_scaled(VecU<const T> a, T s, VecU<const T> b, VecU<T> out);
/// saved = x, then x = x + s * b, in one pass.
template <class T>
void save_and_add_scaled(VecU<T> x, T s, VecU<const T> b, VecU<T> saved);
/// out = s * a.
template <class T>
void scale(VecU<const T> a, T s, VecU<T> out);
/// x[i] = value.
template <class T>
void fill(VecU<T> x, T value);
/// Σ x_i y_i, accumulated in double.
template <class T>
double dot(VecU<const T> x, VecU<const T> y);
/// ‖x‖₂, accumulated in double.
template <class T>
double norm2(VecU<const T> x);
/// Σ x_i, accumulated in double.
template <class T>
double sum(VecU<const T> x);
/// True when every entry is finite.
template <class T>
bool all_finite(VecU<const T> x);
/// out[i] = (a[i] - b[i]) * s.
template <class T>
void scaled_difference(VecU<const T> a, VecU<const T> b, T s, VecU<T> out);

}  // namespace sama::ops
