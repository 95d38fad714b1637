// libFuzzer target: the HDF5 data reader (sama::data::read_hdf5) on arbitrary bytes.
//
// The bytes are written to a .h5 file and read. sama::Error is the expected refusal; anything else
// (a crash, a sanitizer report, another exception type, a Dataset that breaks its invariants) is a
// finding. Only the sama code is instrumented: a crash inside the HDF5 library shows as a SEGV.
#include "fuzz_common.hpp"
#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"
#include "sama/io/h5.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // HDF5 would print its error stack for every refused file; sama reports errors itself. The HDF5
  // reader needs neither MPI nor Kokkos (serial file access), so neither is initialised.
  sama::io::silence_errors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using sama::fuzz::finding;
  const std::string path = sama::fuzz::temp_file("input.h5");
  sama::fuzz::write_file(path, data, size);
  try {
    const sama::data::Dataset d = sama::data::read_hdf5(path);
    if (d.n == 0 || d.labels.size() != d.n) finding("labels do not match n");
    const std::size_t values = d.is_u8() ? d.u8.size() : d.f32.size();
    if (d.shape.empty() || values != d.n * d.features()) finding("pixels do not match n * features");
    if (d.num_classes < 1 || d.num_classes > 65536) finding("num_classes out of range");
    for (auto l : d.labels)
      if (l < 0 || l >= d.num_classes) finding("label out of [0, num_classes)");
    for (float v : d.f32)
      if (!std::isfinite(v)) finding("non-finite pixel accepted");
  } catch (const sama::Error&) {
  }
  return 0;
}
