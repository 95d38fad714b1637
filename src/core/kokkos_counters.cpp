// Kokkos tool callbacks that count View allocations, deep copies, kernel launches and regions.
// Uses only Kokkos::Tools::Experimental::{get_callbacks, set_*_callback} and Kokkos::Profiling::
// {pushRegion, popRegion}, which Kokkos 3.4 and 4.x both have; setting a callback marks a profiling
// library as loaded in both (Kokkos::Tools::profileLibraryLoaded()), which is what makes Kokkos call them.
#include "sama/core/kokkos_counters.hpp"

#include <Kokkos_Core.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace sama {

KokkosCounts& KokkosCounts::operator+=(const KokkosCounts& o) {
  host_allocations += o.host_allocations;
  device_allocations += o.device_allocations;
  host_deallocations += o.host_deallocations;
  device_deallocations += o.device_deallocations;
  copies_host_to_device += o.copies_host_to_device;
  copies_device_to_host += o.copies_device_to_host;
  copies_host_to_host += o.copies_host_to_host;
  copies_device_to_device += o.copies_device_to_device;
  copies_aliased += o.copies_aliased;
  fills += o.fills;
  parallel_for += o.parallel_for;
  parallel_reduce += o.parallel_reduce;
  parallel_scan += o.parallel_scan;
  regions += o.regions;
  return *this;
}

KokkosCounts& KokkosCounts::operator-=(const KokkosCounts& o) {
  host_allocations -= o.host_allocations;
  device_allocations -= o.device_allocations;
  host_deallocations -= o.host_deallocations;
  device_deallocations -= o.device_deallocations;
  copies_host_to_device -= o.copies_host_to_device;
  copies_device_to_host -= o.copies_device_to_host;
  copies_host_to_host -= o.copies_host_to_host;
  copies_device_to_device -= o.copies_device_to_device;
  copies_aliased -= o.copies_aliased;
  fills -= o.fills;
  parallel_for -= o.parallel_for;
  parallel_reduce -= o.parallel_reduce;
  parallel_scan -= o.parallel_scan;
  regions -= o.regions;
  return *this;
}

bool KokkosCounts::operator==(const KokkosCounts& o) const {
  return host_allocations == o.host_allocations && device_allocations == o.device_allocations &&
         host_deallocations == o.host_deallocations && device_deallocations == o.device_deallocations &&
         copies_host_to_device == o.copies_host_to_device && copies_device_to_host == o.copies_device_to_host &&
         copies_host_to_host == o.copies_host_to_host && copies_device_to_device == o.copies_device_to_device &&
         copies_aliased == o.copies_aliased && fills == o.fills && parallel_for == o.parallel_for &&
         parallel_reduce == o.parallel_reduce && parallel_scan == o.parallel_scan && regions == o.regions;
}

namespace kokkos_counters {
namespace {

using Count = std::atomic<long>;
struct State {
  Count host_alloc{0}, device_alloc{0}, host_dealloc{0}, device_dealloc{0};
  Count h2d{0}, d2h{0}, h2h{0}, d2d{0}, aliased{0}, fills{0};
  Count pfor{0}, preduce{0}, pscan{0}, regions{0};
  std::atomic<bool> trace{false};
};
State& state() {
  static State s;
  return s;
}
void bump(Count& c) { c.fetch_add(1, std::memory_order_relaxed); }

// The callbacks set before install() (a Kokkos tool's), called after counting.
Kokkos::Tools::Experimental::EventSet previous;
std::once_flag installed_flag;
std::atomic<bool> is_installed{false};

void on_allocate(const Kokkos_Profiling_SpaceHandle space, const char* label, const void* ptr, const uint64_t size) {
  State& s = state();
  bump(is_host_space(space.name) ? s.host_alloc : s.device_alloc);
  if (s.trace.load(std::memory_order_relaxed))
    std::fprintf(stderr, "kokkos allocation: space %s, label '%s', %llu bytes\n", space.name, label,
                 static_cast<unsigned long long>(size));
  if (previous.allocate_data) previous.allocate_data(space, label, ptr, size);
}

void on_deallocate(const Kokkos_Profiling_SpaceHandle space, const char* label, const void* ptr, const uint64_t size) {
  State& s = state();
  bump(is_host_space(space.name) ? s.host_dealloc : s.device_dealloc);
  if (previous.deallocate_data) previous.deallocate_data(space, label, ptr, size);
}

void on_deep_copy(Kokkos_Profiling_SpaceHandle dst_space, const char* dst_label, const void* dst_ptr,
                  Kokkos_Profiling_SpaceHandle src_space, const char* src_label, const void* src_ptr, uint64_t size) {
  State& s = state();
  // deep_copy(view, scalar) reports the scalar as a host source labelled "Scalar" (Kokkos 3.4 and 4.x)
  // or "(none)" (4.x, with an execution space argument).
  const bool fill = src_label && (std::strcmp(src_label, "Scalar") == 0 || std::strcmp(src_label, "(none)") == 0);
  if (fill) {
    bump(s.fills);
  } else if (dst_ptr == src_ptr) {
    bump(s.aliased);
  } else {
    const bool dst_host = is_host_space(dst_space.name), src_host = is_host_space(src_space.name);
    bump(src_host ? (dst_host ? s.h2h : s.h2d) : (dst_host ? s.d2h : s.d2d));
  }
  if (previous.begin_deep_copy)
    previous.begin_deep_copy(dst_space, dst_label, dst_ptr, src_space, src_label, src_ptr, size);
}

void on_begin_for(const char* name, const uint32_t dev, uint64_t* id) {
  bump(state().pfor);
  if (previous.begin_parallel_for) previous.begin_parallel_for(name, dev, id);
}
void on_begin_reduce(const char* name, const uint32_t dev, uint64_t* id) {
  bump(state().preduce);
  if (previous.begin_parallel_reduce) previous.begin_parallel_reduce(name, dev, id);
}
void on_begin_scan(const char* name, const uint32_t dev, uint64_t* id) {
  bump(state().pscan);
  if (previous.begin_parallel_scan) previous.begin_parallel_scan(name, dev, id);
}
void on_push_region(const char* name) {
  bump(state().regions);
  if (previous.push_region) previous.push_region(name);
}

}  // namespace

bool is_host_space(const char* name) {
  // "Host" (HostSpace), and host memory of a device runtime: CudaHostPinned, HIPHostPinned, SYCLHostUSM.
  return name && std::strstr(name, "Host") != nullptr;
}

void install() {
  std::call_once(installed_flag, [] {
    namespace T = Kokkos::Tools::Experimental;
    previous = T::get_callbacks();
    T::set_allocate_data_callback(on_allocate);
    T::set_deallocate_data_callback(on_deallocate);
    T::set_begin_deep_copy_callback(on_deep_copy);
    T::set_begin_parallel_for_callback(on_begin_for);
    T::set_begin_parallel_reduce_callback(on_begin_reduce);
    T::set_begin_parallel_scan_callback(on_begin_scan);
    T::set_push_region_callback(on_push_region);
    is_installed = true;
  });
}

bool installed() { return is_installed.load(); }

KokkosCounts read() {
  const State& s = state();
  const auto r = [](const Count& c) { return c.load(std::memory_order_relaxed); };
  KokkosCounts c;
  c.host_allocations = r(s.host_alloc);
  c.device_allocations = r(s.device_alloc);
  c.host_deallocations = r(s.host_dealloc);
  c.device_deallocations = r(s.device_dealloc);
  c.copies_host_to_device = r(s.h2d);
  c.copies_device_to_host = r(s.d2h);
  c.copies_host_to_host = r(s.h2h);
  c.copies_device_to_device = r(s.d2d);
  c.copies_aliased = r(s.aliased);
  c.fills = r(s.fills);
  c.parallel_for = r(s.pfor);
  c.parallel_reduce = r(s.preduce);
  c.parallel_scan = r(s.pscan);
  c.regions = r(s.regions);
  return c;
}

void trace_allocations(bool on) { state().trace = on; }

}  // namespace kokkos_counters

ScopedRegion::ScopedRegion(const char* name) {
  if (Kokkos::Tools::profileLibraryLoaded()) {
    Kokkos::Profiling::pushRegion(name);
    pushed_ = true;
  }
}

void ScopedRegion::end() {
  if (pushed_) Kokkos::Profiling::popRegion();
  pushed_ = false;
}

}  // namespace sama
