// libFuzzer target: the IDX reader (sama::data::read_idx) on arbitrary bytes, gzip-compressed or not.
//
// The bytes are written to a file and read twice: as an image file paired with a valid label file,
// and as a label file paired with a valid image file. Each counterpart has as many samples as the
// fuzzed file's header claims (when that is small), so that reads get past the count check.
// sama::Error is the expected refusal; anything else, or a Dataset that breaks its invariants, is a
// finding.
#include "fuzz_common.hpp"
#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

/// The first dimension in the (possibly gzip-compressed) header of `path`, or 1 if there is none.
std::uint32_t claimed_count(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return 1;
  unsigned char h[8] = {};
  const int r = gzread(f, h, sizeof h);
  gzclose(f);
  if (r < 8 || h[3] == 0) return 1;
  const std::uint32_t n = (std::uint32_t(h[4]) << 24) | (std::uint32_t(h[5]) << 16) | (std::uint32_t(h[6]) << 8) | h[7];
  return n >= 1 && n <= 4096 ? n : 1;
}

std::vector<std::uint8_t> header(std::uint8_t ndims, std::uint32_t n) {
  return {0, 0, 0x08, ndims, std::uint8_t(n >> 24), std::uint8_t(n >> 16), std::uint8_t(n >> 8), std::uint8_t(n)};
}

void check(const sama::data::Dataset& d) {
  using sama::fuzz::finding;
  if (d.n == 0 || d.labels.size() != d.n) finding("labels do not match n");
  if (d.shape.empty() || d.u8.size() != d.n * d.features()) finding("pixels do not match n * features");
  if (d.num_classes < 1 || d.num_classes > 256) finding("num_classes out of range");
  for (auto l : d.labels)
    if (l < 0 || l >= d.num_classes) finding("label out of [0, num_classes)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = sama::fuzz::temp_file("input-idx-ubyte.gz");
  const std::string labels = sama::fuzz::temp_file("labels-idx1-ubyte");
  const std::string images = sama::fuzz::temp_file("images-idx3-ubyte");
  sama::fuzz::write_file(input, data, size);
  const std::uint32_t n = claimed_count(input);

  // As images, with n valid labels.
  std::vector<std::uint8_t> lab = header(1, n);
  for (std::uint32_t i = 0; i < n; ++i) lab.push_back(static_cast<std::uint8_t>(i % 10));
  sama::fuzz::write_file(labels, lab.data(), lab.size());
  try {
    check(sama::data::read_idx(input, labels));
  } catch (const sama::Error&) {
  }

  // As labels, with n valid 2x2 images.
  std::vector<std::uint8_t> img = header(3, n);
  for (std::uint8_t d : {0, 0, 0, 2, 0, 0, 0, 2}) img.push_back(d);
  img.resize(img.size() + 4 * std::size_t(n), 0x55);
  sama::fuzz::write_file(images, img.data(), img.size());
  try {
    check(sama::data::read_idx(images, input));
  } catch (const sama::Error&) {
  }
  return 0;
}
