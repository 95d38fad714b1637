#pragma once
// `sama prune`: a keep mask (io/keep_mask.hpp) from the per-sample scores of a training run
// (scores.h5), for retraining on a pruned training set (data.keep_mask).
//
// Which end of each score is kept:
//
//   --by         kept                 why
//   meta_weight  highest              the Meta-Weight-Net's weight: a low weight marks a sample the
//                                     meta-learner down-weights (under label noise, mostly noisy ones)
//   meta_weight_ highest              the weight's non-increasing envelope: keeps every loss left of
//   envelope                          the learned weight's peak, prunes beyond where it rejects
//   el2n         highest (hardest)    EL2N (Paul et al. 2021): prune the easy, well-learned samples
//   grand        highest (hardest)    GraNd (Paul et al. 2021): prune samples with small gradients
//   forgetting   highest (most often  forgetting events (Toneva et al. 2019): prune unforgettable
//                forgotten)           samples
//   loss         highest              the training loss at the observed label
//   random       a seeded uniform     the baseline; needs no score (--seed)
//                random subset
//
// Ties rank by ascending sample id (the smaller id is kept first); NaN scores (a sample never visited
// in the score's window) rank below every number, so they are pruned first.
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace sama::app {

/// One choice of --by: its name, which end is kept, and why.
struct PruneScore {
  const char* name;
  const char* kept;
  const char* why;
};
/// Every --by choice, in the order of the table above.
const std::vector<PruneScore>& prune_scores();
/// The direction table for `sama prune --help`.
std::string prune_help();

struct PruneArgs {
  std::string scores;         // scores.h5 of a training run
  std::string by;             // a name of prune_scores()
  double keep = -1.0;         // fraction kept, in (0, 1]
  bool class_balanced = false;
  long seed = 1;              // for --by random
  std::string out;            // the mask file
};

/// round(keep · n), halves rounded up: the number of samples kept out of n.
std::size_t kept_count(double keep, std::size_t n);

/// Keep flags: the kept_count(keep, N) samples of highest priority (class_balanced: within each
/// observed class c, the kept_count(keep, N_c) of highest priority). NaN priorities rank below every
/// number; equal priorities rank by ascending id. All three vectors have one entry per sample.
std::vector<std::uint8_t> select_highest(const std::vector<std::int64_t>& ids,
                                         const std::vector<std::int32_t>& labels,
                                         const std::vector<double>& priority, double keep, bool class_balanced);

/// Uniform priorities in [0, 1) for --by random: a function of (seed, id) alone, so the same seed gives
/// the same subset whatever the order or number of the samples.
std::vector<double> random_priority(const std::vector<std::int64_t>& ids, std::uint64_t seed);

/// `sama prune`: reads args.scores, writes the mask args.out atomically, prints a one-line summary to
/// `log`. Bad arguments or input throw sama::Error naming the option, file or dataset. Returns 0.
int run_prune(const PruneArgs& args, std::ostream& log);

}  // namespace sama::app
