#include "sama/data/sampler.hpp"

#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"

namespace sama::data {

EpochSampler::EpochSampler(std::vector<std::int64_t> ids, std::size_t global_batch, std::uint64_t seed,
                           std::uint64_t stream, int rank, int ranks)
    : ids_(std::move(ids)), global_batch_(global_batch), seed_(seed), stream_(stream) {
  SAMA_REQUIRE(global_batch_ > 0, "sampler: batch size must be positive");
  SAMA_REQUIRE(ranks > 0 && rank >= 0 && rank < ranks, "sampler: bad rank {} of {}", rank, ranks);
  SAMA_REQUIRE(global_batch_ % static_cast<std::size_t>(ranks) == 0,
               "global batch {} does not divide evenly over {} ranks", global_batch_, ranks);
  SAMA_REQUIRE(ids_.size() >= global_batch_, "sampler: {} samples are fewer than one batch of {}", ids_.size(),
               global_batch_);
  const std::size_t local = global_batch_ / static_cast<std::size_t>(ranks);
  local_begin_ = local * static_cast<std::size_t>(rank);
  local_end_ = local_begin_ + local;
  batch_.resize(local);
  shuffle_epoch();
}

void EpochSampler::shuffle_epoch() {
  order_ = ids_;
  Rng rng(seed_, stream_, static_cast<std::uint64_t>(epoch_));
  rng.shuffle(order_.begin(), order_.end());
}

const std::vector<std::int64_t>& EpochSampler::next() {
  if (position_ == batches_per_epoch()) {
    ++epoch_;
    position_ = 0;
    shuffle_epoch();
  }
  const std::size_t base = position_ * global_batch_;
  for (std::size_t i = local_begin_; i < local_end_; ++i) batch_[i - local_begin_] = order_[base + i];
  ++position_;
  return batch_;
}

void EpochSampler::seek(std::int64_t epoch, std::size_t position) {
  SAMA_REQUIRE(epoch >= 0 && position <= batches_per_epoch(), "sampler: cannot seek to epoch {} batch {}", epoch,
               position);
  epoch_ = epoch;
  position_ = position;
  shuffle_epoch();
}

}  // namespace sama::data
