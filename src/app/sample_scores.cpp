#include "sama/app/sample_scores.hpp"

#include "sama/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace sama::app {
namespace {
constexpr double kScale = 4294967296.0;  // 2³²: fixed-point resolution 2⁻³²
constexpr double kMaxValue = 1073741824.0;  // 2³⁰: |value| per visit; a sum is exact while Σ|value| < 2³¹

std::vector<std::int64_t> as_int64(const std::vector<std::uint64_t>& v) {
  std::vector<std::int64_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(std::uint64_t));
  return out;
}
}  // namespace

const char* SampleScores::name(Score s) {
  switch (s) {
    case meta_weight: return "meta_weight";
    case meta_weight_envelope: return "meta_weight_envelope";
    case meta_log_weight: return "meta_log_weight";
    case el2n: return "el2n";
    case grand: return "grand";
    case loss: return "loss";
    default: return "?";
  }
}

SampleScores::SampleScores(std::vector<std::int64_t> ids, std::size_t dataset_size, Windows windows)
    : ids_(std::move(ids)), row_of_id_(dataset_size, -1), w_(windows) {
  SAMA_REQUIRE(w_.epochs >= 1, "sample scores: a run of {} epochs", w_.epochs);
  SAMA_REQUIRE(ids_.size() < static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
               "sample scores: {} samples is more than this table supports", ids_.size());
  for (std::size_t r = 0; r < ids_.size(); ++r) {
    const auto id = ids_[r];
    SAMA_REQUIRE(id >= 0 && static_cast<std::size_t>(id) < dataset_size, "sample scores: id {} outside [0, {})", id,
                 dataset_size);
    row_of_id_[static_cast<std::size_t>(id)] = static_cast<std::int32_t>(r);
  }
  words_ = static_cast<std::size_t>((w_.epochs + 63) / 64);
  acc_.assign(ids_.size() * fields(), 0);
}

bool SampleScores::collects(Score s, long epoch) const {
  switch (s) {
    case meta_weight: return epoch >= w_.meta_first && epoch < w_.meta_last;
    case meta_log_weight:
    case meta_weight_envelope: return epoch >= w_.detect_first && epoch < w_.detect_last;
    case el2n:
    case grand: return epoch >= w_.early_first && epoch < w_.early_last;
    default: return true;
  }
}

double SampleScores::weight_cap() const {
  const double visits = static_cast<double>(std::max(1L, w_.meta_last - w_.meta_first));
  return std::min(1048576.0, std::floor(kMaxValue / visits));  // 2²⁰; the sum of all visits < 2³⁰
}

std::uint64_t* SampleScores::row(std::int64_t id) {
  SAMA_REQUIRE(id >= 0 && static_cast<std::size_t>(id) < row_of_id_.size() && row_of_id_[static_cast<std::size_t>(id)] >= 0,
               "sample scores: sample {} is not a training sample", id);
  return acc_.data() + static_cast<std::size_t>(row_of_id_[static_cast<std::size_t>(id)]) * fields();
}

void SampleScores::add(Score s, std::int64_t id, double value) {
  if (!(std::abs(value) < kMaxValue)) return;  // also rejects NaN
  std::uint64_t* r = row(id);
  // Two's complement: a negative value (a log-weight) wraps, and sums modulo 2⁶⁴ stay exact and
  // order-independent; the total is read back as a signed number.
  r[s] += static_cast<std::uint64_t>(std::llround(value * kScale));
  r[kNumScores + s] += 1;
}

void SampleScores::add_correct(std::int64_t id, long epoch, bool correct) {
  if (epoch < 0 || epoch >= w_.epochs) return;
  std::uint64_t* r = row(id);
  const auto word = static_cast<std::size_t>(epoch / 64);
  const std::uint64_t bit = std::uint64_t(1) << (epoch % 64);
  if (correct) r[2 * kNumScores + word] |= bit;
  r[2 * kNumScores + words_ + word] |= bit;
}

double SampleScores::forgetting_events(const std::uint64_t* correct, const std::uint64_t* visited, long epochs) {
  bool learned = false, prev_correct = false, seen = false;
  long events = 0;
  for (long e = 0; e < epochs; ++e) {
    const std::uint64_t bit = std::uint64_t(1) << (e % 64);
    if (!(visited[e / 64] & bit)) continue;
    const bool now = (correct[e / 64] & bit) != 0;
    if (seen && prev_correct && !now) ++events;
    learned = learned || now;
    prev_correct = now;
    seen = true;
  }
  if (!seen) return std::numeric_limits<double>::quiet_NaN();
  return learned ? static_cast<double>(events) : static_cast<double>(epochs);
}

void SampleScores::save(io::CheckpointData& c, const comm::Communicator& comm) const {
  // Each (sample, epoch) bit is set on one rank only, so summing the words is the same as OR-ing them.
  std::vector<std::uint64_t> total(comm.rank() == 0 ? acc_.size() : 0);
  comm::check_mpi(MPI_Reduce(acc_.data(), total.data(), static_cast<int>(acc_.size()), MPI_UINT64_T, MPI_SUM, 0,
                             comm.get()),
                  "MPI_Reduce(sample scores)", comm.get());
  if (comm.rank() == 0) {
    c.ints["sample_scores"] = as_int64(total);
    c.ints["sample_scores_layout"] = {kLayout, kNumScores, static_cast<std::int64_t>(words_)};
  }
}

void SampleScores::restore(const io::CheckpointData& c, const comm::Communicator& comm) {
  const std::size_t rows = ids_.size(), head = 2 * kNumScores;
  // Checkpoints of sama versions before the layout was recorded summed other scores (no
  // meta_log_weight; meta_weight was the log-weight): their sums cannot be continued as these.
  if (!c.ints.count("sample_scores_layout"))
    fail("checkpoint '{}' holds per-sample score sums of an older sama (no 'sample_scores_layout'; its meta_weight "
         "summed log-weights): this version cannot continue them; finish the run with the sama that wrote it, or "
         "start afresh (--overwrite)",
         c.source);
  const auto& layout = c.i("sample_scores_layout", 3);
  if (layout[0] != kLayout || layout[1] != kNumScores)
    fail("checkpoint '{}': per-sample scores of layout {} with {} scores, this sama sums layout {} with {}; finish the "
         "run with the sama that wrote it, or start afresh (--overwrite)",
         c.source, layout[0], layout[1], kLayout, static_cast<int>(kNumScores));
  const auto& saved = c.i("sample_scores", SIZE_MAX);
  // A run extended to more epochs (more 64-bit words of per-epoch bits per row) takes its rows over.
  const auto old_words = static_cast<std::size_t>(std::max<std::int64_t>(layout[2], 0));
  const std::size_t old_fields = head + 2 * old_words;
  if (layout[2] < 0 || old_words > words_ || saved.size() != rows * old_fields)
    fail("checkpoint '{}': array 'sample_scores' has {} values for {} words of epoch bits; this run has {} rows and "
         "needs {} values",
         c.source, saved.size(), layout[2], rows, acc_.size());
  std::fill(acc_.begin(), acc_.end(), 0);
  if (comm.rank() != 0) return;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto* from = reinterpret_cast<const std::uint64_t*>(saved.data()) + r * old_fields;
    std::uint64_t* to = acc_.data() + r * fields();
    std::memcpy(to, from, head * sizeof(std::uint64_t));
    std::memcpy(to + head, from + head, old_words * sizeof(std::uint64_t));                     // correct
    std::memcpy(to + head + words_, from + head + old_words, old_words * sizeof(std::uint64_t));  // visited
  }
}

SampleScores::Block SampleScores::reduce_block(const comm::Communicator& comm) const {
  const std::size_t n = rows(), f = fields();
  const auto ranks = static_cast<std::size_t>(comm.size()), me = static_cast<std::size_t>(comm.rank());
  std::vector<int> counts(ranks);
  for (std::size_t r = 0; r < ranks; ++r) counts[r] = static_cast<int>((n * (r + 1) / ranks - n * r / ranks) * f);
  Block b;
  b.first = n * me / ranks;
  b.count = n * (me + 1) / ranks - b.first;
  std::vector<std::uint64_t> mine(b.count * f);
  comm::check_mpi(MPI_Reduce_scatter(acc_.data(), mine.data(), counts.data(), MPI_UINT64_T, MPI_SUM, comm.get()),
                  "MPI_Reduce_scatter(sample scores)", comm.get());
  for (auto& m : b.mean) m.resize(b.count);
  b.forgetting.resize(b.count);
  for (std::size_t i = 0; i < b.count; ++i) {
    const std::uint64_t* r = mine.data() + i * f;
    for (int s = 0; s < kNumScores; ++s) {
      const std::uint64_t visits = r[kNumScores + s];
      b.mean[s][i] = visits ? static_cast<double>(static_cast<std::int64_t>(r[s])) / kScale / static_cast<double>(visits)
                            : std::numeric_limits<double>::quiet_NaN();
    }
    b.forgetting[i] = forgetting_events(r + 2 * kNumScores, r + 2 * kNumScores + words_, w_.epochs);
  }
  return b;
}

}  // namespace sama::app
