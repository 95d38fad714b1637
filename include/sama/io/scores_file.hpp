#pragma once
// scores.h5: per-sample scores of a training run, one row per training sample, written collectively
// by all ranks with parallel HDF5 (MPI-IO): rank r writes its contiguous block of rows of every
// dataset in one collective write. The file goes to a temporary name and is renamed into place by
// rank 0 once every rank has closed it, so a scores.h5 is always complete.
//
// Layout: /sample_id int64, /label_observed int32, /label_true int32, /is_noisy uint8 and
// /scores/<name> float64, all [N]; string and numeric attributes on the root and on each score.
#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sama::io {

struct Attributes {
  std::map<std::string, std::string> text;
  std::map<std::string, double> number;
};

/// This rank's rows [first, first + sample_id.size()) of a table of `total` rows.
struct ScoresBlock {
  std::size_t total = 0, first = 0;
  std::vector<std::int64_t> sample_id;
  std::vector<std::int32_t> label_observed, label_true;
  std::vector<std::uint8_t> is_noisy;
  struct Column {
    std::string name;
    std::vector<double> values;
    Attributes attributes;  // the same on every rank
  };
  std::vector<Column> scores;  // the same names in the same order on every rank
};

/// Collective over `comm`. Blocks must tile [0, total) in rank order. Attributes must be identical on
/// every rank. Without parallel HDF5 in this build, more than one rank throws.
void write_scores_file(const std::string& path, const ScoresBlock& mine, const Attributes& root, MPI_Comm comm);

}  // namespace sama::io
