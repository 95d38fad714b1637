#pragma once
// Per-sample training statistics for data pruning and noise detection (scores.h5).
//
// While training, every visit of a sample (once per epoch, on whichever rank holds it) adds to that
// sample's running sums: the weight net's un-normalised weight and its log, EL2N ‖softmax − onehot(y)‖₂,
// GraNd ‖∂ℓ_i/∂θ‖₂ (all of θ, exact per sample), the loss, and one bit "classified correctly" per
// epoch for forgetting events. The sums are fixed point (64-bit two's complement, resolution 2⁻³²) and every
// (sample, epoch) bit is set by at most one rank, so adding the ranks' partial sums is exact and
// order-independent: the totals are bitwise the same at any rank count split and across restarts.
#include "sama/comm/communicator.hpp"
#include "sama/io/checkpoint.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace sama::app {

class SampleScores {
 public:
  /// The averaged scores; each is summed over the epochs of its window.
  /// meta_weight: the un-normalised weight (capped at weight_cap()), its arithmetic mean the pruning
  /// score; meta_log_weight: the weight's log (its mean: the log of the geometric mean weight).
  enum Score : int { meta_weight = 0, el2n, grand, loss, meta_weight_envelope, meta_log_weight, kNumScores };
  static const char* name(Score s);

  /// Zero-based epochs [first, last) of each window, and the run's number of epochs (≥ 1).
  struct Windows {
    long early_first = 0, early_last = 0;  // EL2N, GraNd
    long meta_first = 0, meta_last = 0;    // meta_weight
    long detect_first = 0, detect_last = 0;  // meta_log_weight, meta_weight_envelope
    long epochs = 1;                       // loss and forgetting: the whole run
  };

  /// ids: the training samples' global ids (the rows, in this order); dataset_size bounds the ids.
  SampleScores(std::vector<std::int64_t> ids, std::size_t dataset_size, Windows windows);

  const Windows& windows() const { return w_; }
  /// Whether score s is collected in this epoch.
  bool collects(Score s, long epoch) const;
  /// The largest meta_weight a visit adds: 2²⁰, or less where the window has more than 2¹⁰ epochs, so
  /// that a sample's fixed-point sum stays below 2³⁰ (exact) however long the run.
  double weight_cap() const;
  /// One visit of sample `id`: adds value to score s. Non-finite or implausibly large values (≥ 2³⁰)
  /// are not counted.
  void add(Score s, std::int64_t id, double value);
  /// Whether sample `id` was classified correctly (observed label) when visited in `epoch`.
  void add_correct(std::int64_t id, long epoch, bool correct);

  /// Sums the partial accumulators of all ranks into rank 0 (a copy; the ranks keep their own), for a
  /// checkpoint: the returned arrays are meaningful on rank 0 only. The layout (kLayout, the number of
  /// scores and of per-epoch words) is saved alongside; restore refuses a checkpoint whose scores were
  /// summed with another layout (an older sama's), naming what differs, rather than misreading it.
  void save(io::CheckpointData& c, const comm::Communicator& comm) const;
  /// Takes the totals of a checkpoint (on rank 0; the other ranks start from zero).
  void restore(const io::CheckpointData& c, const comm::Communicator& comm);

  /// The final per-sample values of a block of rows [first, first + count) after summing all ranks
  /// (collective: a reduce-scatter gives each rank its own block).
  struct Block {
    std::size_t first = 0, count = 0;
    std::vector<double> mean[kNumScores];  // NaN where the sample had no visit in the window
    std::vector<double> forgetting;        // forgetting events; never learned = the number of epochs,
                                           // never visited = NaN
  };
  Block reduce_block(const comm::Communicator& comm) const;

  std::size_t rows() const { return ids_.size(); }
  const std::vector<std::int64_t>& ids() const { return ids_; }

  /// Forgetting events from per-epoch bits (bit e of the words: epoch e): a visit classified wrongly
  /// after a visit classified correctly is one event; a sample never classified correctly gets
  /// `epochs` (more than any learned sample can reach); a sample never visited gets NaN.
  static double forgetting_events(const std::uint64_t* correct, const std::uint64_t* visited, long epochs);

 private:
  // One row of fields per sample: sums[kNumScores], counts[kNumScores], correct bits[W], visited bits[W].
  std::size_t fields() const { return 2 * kNumScores + 2 * words_; }
  /// Version of what the sums hold: 2 = meta_weight is the capped weight and meta_log_weight its log.
  static constexpr std::int64_t kLayout = 2;
  std::uint64_t* row(std::int64_t id);

  std::vector<std::int64_t> ids_;
  std::vector<std::int32_t> row_of_id_;  // -1 for ids that are not training rows (the meta set)
  Windows w_;
  std::size_t words_;                    // 64-bit words of per-epoch bits
  std::vector<std::uint64_t> acc_;       // rows × fields, row-major
};

}  // namespace sama::app
