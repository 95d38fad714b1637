#pragma once
// Data sets in host memory: images stay uint8 when they come as uint8 (normalised on the fly when a
// batch is gathered), or float32; labels are int32 class indices.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sama::data {

struct Dataset {
  std::string source;                // what it was read from (file name(s) or "synthetic(...)")
  std::size_t n = 0;                 // number of samples
  std::vector<std::size_t> shape;    // per-sample shape, e.g. {28, 28}
  int num_classes = 0;               // 1 + the largest label
  std::vector<std::uint8_t> u8;      // n * features() values, when the data are uint8
  std::vector<float> f32;            // n * features() values, when the data are float32
  std::vector<std::int32_t> labels;  // n labels in [0, num_classes)
  std::string checksum;              // provenance: FNV-1a 64 of the file bytes read ("" when synthetic)

  std::size_t features() const;
  bool is_u8() const { return !u8.empty(); }
  /// Sample i, feature j, as a raw value (uint8 as 0..255, float as stored).
  float raw(std::size_t i, std::size_t j) const;
};

/// Reads a gzip-compressed (or plain) IDX image file and its label file, e.g. Fashion-MNIST.
/// Checks magic numbers, dimensions against the real content, label range and count agreement; any
/// problem throws sama::Error naming the file and what is wrong.
Dataset read_idx(const std::string& images_path, const std::string& labels_path);

/// Fashion-MNIST from a directory holding train-/t10k- images and labels (.gz).
Dataset read_fashion_mnist(const std::string& dir, bool train);

/// Reads an HDF5 file with /images [N, ...] (uint8 or float32) and /labels [N] (any integer type).
/// Non-finite float pixels, negative labels, mismatched N and missing datasets throw sama::Error.
Dataset read_hdf5(const std::string& path);

/// Reads `path` with read_hdf5 in a forked child process first. HDF5 1.10 can crash (SIGSEGV) inside
/// the library on corrupted metadata, before any error is returned; in the child such a crash becomes
/// a sama::Error naming the file instead of taking the run down. A clean error or success in the child
/// returns normally (the caller then reads the file itself and gets the same error, or the data).
void probe_hdf5_in_child(const std::string& path);
/// The same with another reader of the file (e.g. a keep mask's).
void probe_hdf5_in_child(const std::string& path, const std::function<void(const std::string&)>& reader);

/// A seeded synthetic classification set: `classes` Gaussian clusters in `features` dimensions.
/// The same (seed, stream) gives the same set; train and test use different streams.
Dataset make_synthetic(std::size_t n, std::size_t features, int classes, double separation,
                       std::uint64_t seed, std::uint64_t stream);

/// Mean and standard deviation of all raw values of the given samples (for on-the-fly normalisation).
struct Normalization {
  float scale = 1.0f;   // raw * scale ...
  float shift = 0.0f;   // ... + shift  == (raw/255 - mean)/std for uint8 data
};
Normalization compute_normalization(const Dataset& d, const std::vector<std::int64_t>& ids);

/// Gathers samples ids[0..count) into out[count * features] (row-major), normalised.
void gather(const Dataset& d, const Normalization& norm, const std::int64_t* ids, std::size_t count,
            float* out);
void gather(const Dataset& d, const Normalization& norm, const std::int64_t* ids, std::size_t count,
            double* out);

}  // namespace sama::data
