// Clean meta-set selection and synthetic label noise; see include/sama/data/noise.hpp.
#include "sama/data/noise.hpp"

#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"

#include <algorithm>
#include <cmath>

namespace sama::data {

namespace {

void check_labels(const std::vector<std::int32_t>& labels, int num_classes, const char* what) {
  if (num_classes < 1) fail("{}: num_classes must be positive (got {})", what, num_classes);
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= num_classes)
      fail("{}: label {} of sample {} is outside [0, {})", what, labels[i], i, num_classes);
}

}  // namespace

MetaSplit split_meta(const std::vector<std::int32_t>& labels, int num_classes, std::size_t meta_size,
                     std::uint64_t seed) {
  const char* what = "meta split";
  check_labels(labels, num_classes, what);
  if (meta_size > labels.size())
    fail("{}: meta_size {} is larger than the training set ({} samples)", what, meta_size, labels.size());

  const std::size_t C = static_cast<std::size_t>(num_classes);
  std::vector<std::vector<std::int64_t>> by_class(C);
  for (std::size_t i = 0; i < labels.size(); ++i)
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));

  Rng rng(seed, Stream::meta_split);
  std::vector<std::uint8_t> in_meta(labels.size(), 0);
  MetaSplit out;
  out.meta_ids.reserve(meta_size);
  for (std::size_t c = 0; c < C; ++c) {
    const std::size_t quota = meta_size / C + (c < meta_size % C ? 1 : 0);
    auto& ids = by_class[c];
    if (ids.size() < quota)
      fail("{}: class {} has only {} samples, but the meta set of {} needs {} of it", what, c, ids.size(),
           meta_size, quota);
    if (quota == 0) continue;
    rng.shuffle(ids.begin(), ids.end());
    for (std::size_t k = 0; k < quota; ++k) {
      out.meta_ids.push_back(ids[k]);
      in_meta[static_cast<std::size_t>(ids[k])] = 1;
    }
  }
  std::sort(out.meta_ids.begin(), out.meta_ids.end());
  out.train_ids.reserve(labels.size() - meta_size);
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (!in_meta[i]) out.train_ids.push_back(static_cast<std::int64_t>(i));
  return out;
}

NoiseType parse_noise_type(const std::string& s) {
  if (s == "none") return NoiseType::none;
  if (s == "uniform") return NoiseType::uniform;
  if (s == "pair") return NoiseType::pair;
  fail("unknown noise type '{}' (expected none, uniform or pair)", s);
}

NoisyLabels apply_label_noise(const std::vector<std::int32_t>& labels, int num_classes,
                              const std::vector<std::int64_t>& ids, NoiseType type, double rate,
                              std::uint64_t seed) {
  const char* what = "label noise";
  check_labels(labels, num_classes, what);
  if (!(rate >= 0.0 && rate <= 1.0)) fail("{}: rate must be in [0, 1] (got {})", what, rate);
  if (type != NoiseType::none && type != NoiseType::uniform && type != NoiseType::pair)
    fail("{}: invalid noise type {}", what, static_cast<int>(type));
  if (type != NoiseType::none && rate > 0.0 && num_classes < 2)
    fail("{}: corrupting labels needs at least 2 classes (got {})", what, num_classes);

  std::vector<std::uint8_t> seen(labels.size(), 0);
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::int64_t id = ids[k];
    if (id < 0 || static_cast<std::uint64_t>(id) >= labels.size())
      fail("{}: sample id {} (position {}) is out of range for {} labels", what, id, k, labels.size());
    if (seen[static_cast<std::size_t>(id)]++) fail("{}: sample id {} appears twice in the ids", what, id);
  }

  NoisyLabels out;
  out.truth = labels;
  out.observed = labels;
  out.is_noisy.assign(labels.size(), 0);
  if (type == NoiseType::none || rate == 0.0) return out;

  Rng rng(seed, Stream::noise);
  const auto C = static_cast<std::uint64_t>(num_classes);
  for (std::int64_t id : ids) {
    const auto i = static_cast<std::size_t>(id);
    if (!(rng.uniform() < rate)) continue;
    const auto c = static_cast<std::uint64_t>(labels[i]);
    std::uint64_t nc;
    if (type == NoiseType::uniform) {
      nc = rng.below(C - 1);  // one of the other C-1 classes
      if (nc >= c) ++nc;
    } else {
      nc = (c + 1) % C;
    }
    out.observed[i] = static_cast<std::int32_t>(nc);
    out.is_noisy[i] = 1;
  }
  return out;
}

}  // namespace sama::data
