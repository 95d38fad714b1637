#pragma once
// Views and execution spaces used everywhere. Only API common to Kokkos 3.4 and 4.x.
#ifdef SAMA_HOST_ONLY
#error "a host-only translation unit (SAMA_HOST_ONLY_SOURCES in CMakeLists.txt) includes Kokkos"
#endif
#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>

namespace sama {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;
using HostSpace = Kokkos::HostSpace;

/// A flat vector in the execution space's memory (one per parameter set, gradient, moment...).
template <class T>
using Vec = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace>;
/// A row-major matrix in the execution space's memory ([rows][cols], rows = batch).
template <class T>
using Mat = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace>;
/// Unmanaged views over memory owned elsewhere (e.g. a layer's slice of the flat θ buffer).
template <class T>
using VecU = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T>
using MatU = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

using Range = Kokkos::RangePolicy<ExecSpace>;

/// Host memory, named as such: mirrors for output, staging buffers. On a device build these are
/// different types from Vec/Mat, so passing one where the other is expected does not compile.
template <class T>
using HostVec = Kokkos::View<T*, Kokkos::LayoutRight, HostSpace>;
template <class T>
using HostMat = Kokkos::View<T**, Kokkos::LayoutRight, HostSpace>;
/// Whether host code may dereference a view's memory.
template <class V>
inline constexpr bool host_readable_v = Kokkos::SpaceAccessibility<HostSpace, typename V::memory_space>::accessible;
/// A view's pointer for host code (loops, MPI, HDF5, CBLAS): does not compile for a view the host
/// cannot read (a device view: copy it to a mirror first). Use it instead of .data() on the host.
template <class V>
auto host_data(const V& v) {
  static_assert(host_readable_v<V>, "host_data: this view lives in memory the host cannot read; use a mirror");
  return v.data();
}

/// A labelled, uninitialised allocation.
template <class T>
Vec<T> make_vec(const std::string& label, std::size_t n) {
  return Vec<T>(Kokkos::view_alloc(Kokkos::WithoutInitializing, label), n);
}
template <class T>
Mat<T> make_mat(const std::string& label, std::size_t rows, std::size_t cols) {
  return Mat<T>(Kokkos::view_alloc(Kokkos::WithoutInitializing, label), rows, cols);
}

/// The first `rows` rows of a matrix, as an unmanaged view (batch may be smaller than capacity).
template <class T>
MatU<T> rows_of(const Mat<T>& m, std::size_t rows) {
  return MatU<T>(m.data(), rows, m.extent(1));
}
/// A slice [offset, offset+n) of a flat vector as an unmanaged vector.
template <class T, class V>
VecU<T> slice(const V& v, std::size_t offset, std::size_t n) {
  return VecU<T>(v.data() + offset, n);
}
/// A slice of a flat vector seen as a row-major matrix.
template <class T, class V>
MatU<T> slice_mat(const V& v, std::size_t offset, std::size_t rows, std::size_t cols) {
  return MatU<T>(v.data() + offset, rows, cols);
}

}  // namespace sama
