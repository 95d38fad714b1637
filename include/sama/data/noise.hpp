#pragma once
// The clean meta set and label noise on the rest of the training set.
#include <cstdint>
#include <string>
#include <vector>

namespace sama::data {

/// A class-balanced clean meta set split off a training set.
struct MetaSplit {
  std::vector<std::int64_t> train_ids;  // sample ids left for base training (sorted)
  std::vector<std::int64_t> meta_ids;   // sample ids of the clean meta set (sorted)
};
/// Picks meta_size samples, as equal a number per class as possible (the first meta_size % classes
/// classes get one more), at random with `seed`. Throws sama::Error if a class has too few samples.
MetaSplit split_meta(const std::vector<std::int32_t>& labels, int num_classes, std::size_t meta_size,
                     std::uint64_t seed);

enum class NoiseType { none, uniform, pair };
/// "none", "uniform", "pair"; anything else throws sama::Error.
NoiseType parse_noise_type(const std::string& s);

/// Observed labels after noise, with the truth kept.
struct NoisyLabels {
  std::vector<std::int32_t> observed;  // per sample id of the whole training set
  std::vector<std::int32_t> truth;
  std::vector<std::uint8_t> is_noisy;  // observed != truth
};
/// Corrupts the labels of `ids` only (the meta set stays clean). uniform: with probability `rate` the
/// label is replaced by one of the other num_classes-1 classes, uniformly; pair: with probability
/// `rate`, c -> (c+1) mod num_classes. Every corrupted label differs from its truth.
NoisyLabels apply_label_noise(const std::vector<std::int32_t>& labels, int num_classes,
                              const std::vector<std::int64_t>& ids, NoiseType type, double rate,
                              std::uint64_t seed);

}  // namespace sama::data
