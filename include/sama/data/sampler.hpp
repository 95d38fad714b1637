#pragma once
// Epoch-based sampling: the order of an epoch is a global permutation keyed by (seed, stream, epoch);
// a global batch is the next batch_size ids of it, and rank r of P takes its contiguous slice. The
// trajectory therefore does not depend on P. The last incomplete batch of an epoch is dropped.
#include <cstdint>
#include <vector>

namespace sama::data {

class EpochSampler {
 public:
  EpochSampler(std::vector<std::int64_t> ids, std::size_t global_batch, std::uint64_t seed, std::uint64_t stream,
               int rank = 0, int ranks = 1);
  /// The ids of this rank's share of the next global batch (advances the position).
  const std::vector<std::int64_t>& next();
  std::size_t batches_per_epoch() const { return ids_.size() / global_batch_; }
  std::size_t local_batch() const { return local_end_ - local_begin_; }
  std::int64_t epoch() const { return epoch_; }
  std::size_t position() const { return position_; }
  /// Jump to (epoch, position) as saved in a checkpoint.
  void seek(std::int64_t epoch, std::size_t position);

 private:
  void shuffle_epoch();
  std::vector<std::int64_t> ids_;
  std::vector<std::int64_t> order_;
  std::vector<std::int64_t> batch_;
  std::size_t global_batch_;
  std::uint64_t seed_, stream_;
  std::size_t local_begin_, local_end_;
  std::int64_t epoch_ = 0;
  std::size_t position_ = 0;  // batches taken in the current epoch
};

}  // namespace sama::data
