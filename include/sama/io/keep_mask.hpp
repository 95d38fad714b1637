#pragma once
// Keep masks for data pruning: which training samples a run trains on (`sama prune` writes them,
// `data.keep_mask` reads them).
//
// Layout (HDF5): /sample_id int64 [N] (the training samples' global ids, in the order of the scores
// file the mask was made from), /keep uint8 [N] (1 = keep, 0 = pruned), /label_observed int32 [N] (the
// observed, possibly corrupted, labels: a training run checks them to be sure the mask was made for
// its split, seed and noise setting). Root attributes: by, keep_fraction, kept, class_balanced, seed,
// scores_file, description (and a few optional ones: n, nan_scores, noisy fractions, noise setting).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sama::io {

struct KeepMask {
  std::vector<std::int64_t> sample_id;
  std::vector<std::uint8_t> keep;             // 0 or 1
  std::vector<std::int32_t> label_observed;
  std::string source;                         // the file it was read from ("" for one built in memory)

  // Provenance (root attributes).
  std::string by;                             // the score ranked, or "random"
  double keep_fraction = 1.0;
  bool class_balanced = false;
  std::int64_t seed = 0;
  std::string scores_file;                    // the scores.h5 it was made from

  /// Number of samples kept (ones in `keep`).
  std::size_t kept() const;
};

/// Further root attributes written with a mask (numbers as float64, text as strings).
struct KeepMaskExtras {
  std::map<std::string, double> number;
  std::map<std::string, std::string> text;
};

/// Writes `mask` to `path` atomically (a temporary file in the same directory, fsync'ed, renamed), so a
/// reader never sees a half-written mask. Columns of different lengths or keep values other than 0/1
/// throw before anything is written.
void write_keep_mask(const std::string& path, const KeepMask& mask, const KeepMaskExtras& extras = {});

/// Reads a mask written by write_keep_mask. A missing file or dataset, columns of different lengths,
/// keep values other than 0/1, duplicate sample ids, or a `kept` attribute that disagrees with /keep
/// throw sama::Error naming the file and the dataset.
KeepMask read_keep_mask(const std::string& path);

/// The ids a training run keeps. `train_ids` are the run's training samples (global ids, in the run's
/// order) and `observed_label_by_id[id]` the observed label of sample `id` after label noise. The mask
/// must list the same ids in the same order with the same observed labels, otherwise it was made for
/// another split, seed or noise setting: sama::Error names the mask file and the first mismatching
/// sample. Returns the kept ids in the mask's order; a mask that keeps nothing is an error too.
std::vector<std::int64_t> kept_ids(const KeepMask& mask, const std::vector<std::int64_t>& train_ids,
                                   const std::vector<std::int32_t>& observed_label_by_id);

}  // namespace sama::io
