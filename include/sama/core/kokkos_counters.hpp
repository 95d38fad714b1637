#pragma once
// Counts of what Kokkos does (View allocations, deep copies, kernel launches, profiling regions),
// taken through Kokkos' tool callbacks, and RAII profiling regions for the phases of a training step.
//
// install() sets the callbacks once per process (API present in Kokkos 3.4 and 4.x); callbacks that a
// Kokkos tool had already set (--kokkos-tools-libs, KOKKOS_TOOLS_LIBS) are still called. With callbacks
// set, Kokkos considers a profiling tool loaded: in Kokkos 4 that adds a fence before each kernel and
// copy (the tools' default "global fencing"), which costs nothing on Serial and OpenMP but serialises
// a GPU stream. This header includes no Kokkos header.
#include <string>

namespace sama {

struct KokkosCounts {
  // View allocations and deallocations by memory space: host (HostSpace, and pinned host memory) or
  // device (any other space: CUDA, CUDA UVM, HIP, SYCL ...).
  long host_allocations = 0, device_allocations = 0;
  long host_deallocations = 0, device_deallocations = 0;
  // deep_copy between Views by direction; `aliased`: source and destination share memory (a host
  // mirror of a host View: no data moves); `fills`: deep_copy(view, scalar) (a kernel, no transfer).
  long copies_host_to_device = 0, copies_device_to_host = 0, copies_host_to_host = 0, copies_device_to_device = 0;
  long copies_aliased = 0, fills = 0;
  // Kernel launches (parallel_for / parallel_reduce / parallel_scan, Kokkos' own included) and
  // profiling regions pushed.
  long parallel_for = 0, parallel_reduce = 0, parallel_scan = 0;
  long regions = 0;

  long allocations() const { return host_allocations + device_allocations; }
  long kernels() const { return parallel_for + parallel_reduce + parallel_scan; }
  /// Copies that move data between host and device memory.
  long transfers() const { return copies_host_to_device + copies_device_to_host; }
  /// Copies that move data (every direction, not aliased, not fills).
  long copies() const {
    return copies_host_to_device + copies_device_to_host + copies_host_to_host + copies_device_to_device;
  }
  KokkosCounts& operator+=(const KokkosCounts& o);
  KokkosCounts& operator-=(const KokkosCounts& o);
  friend KokkosCounts operator+(KokkosCounts a, const KokkosCounts& b) { return a += b; }
  friend KokkosCounts operator-(KokkosCounts a, const KokkosCounts& b) { return a -= b; }
  bool operator==(const KokkosCounts& o) const;
  bool operator!=(const KokkosCounts& o) const { return !(*this == o); }
};

namespace kokkos_counters {

/// Sets the counting callbacks (idempotent; call after Kokkos::initialize). Counting goes on until
/// the process ends; counts only grow (take differences of read()).
void install();
bool installed();
/// The counts since install().
KokkosCounts read();
/// Diagnosis: print each View allocation (space, label, bytes) to stderr while on.
void trace_allocations(bool on);
/// True for the name of a memory space in host memory ("Host", "CudaHostPinned", ...).
bool is_host_space(const char* space_name);

}  // namespace kokkos_counters

/// A Kokkos profiling region (Kokkos::Profiling::pushRegion / popRegion) for the life of the object,
/// pushed only when a tool (or install()) is listening. Names are "sama::" + the phase.
class ScopedRegion {
 public:
  explicit ScopedRegion(const char* name);
  ~ScopedRegion() { end(); }
  /// Pops the region now (once).
  void end();
  ScopedRegion(const ScopedRegion&) = delete;
  ScopedRegion& operator=(const ScopedRegion&) = delete;

 private:
  bool pushed_ = false;
};

}  // namespace sama
