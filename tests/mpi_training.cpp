// Many ranks (run by ctest at P = 1, 2 and 3): every expectation is computed from the communicator
// size, so one test holds at any rank count.
#include "sama/app/deck.hpp"
#include "sama/app/sample_scores.hpp"
#include "sama/app/trainer.hpp"
#include "sama/comm/gradient_reducer.hpp"
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/scores_file.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cmath>

namespace {
using namespace sama;

std::vector<float> rank_data(std::size_t n, int rank) {
  Rng rng(42, 1000 + static_cast<std::uint64_t>(rank));
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

/// Layers of the given sizes laid out contiguously, listed last-first (backward's order).
std::vector<std::pair<std::size_t, std::size_t>> layers_of(const std::vector<std::size_t>& sizes) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t off = 0;
  std::vector<std::pair<std::size_t, std::size_t>> fwd;
  for (auto s : sizes) {
    fwd.emplace_back(off, s);
    off += s;
  }
  for (auto it = fwd.rbegin(); it != fwd.rend(); ++it) out.push_back(*it);
  return out;
}

void check_reducer(const std::vector<std::size_t>& sizes, double bucket_bytes, bool call_ready,
                   comm::MpiBuffer mode = comm::MpiBuffer::host) {
  comm::Communicator comm;
  std::size_t n = 0;
  for (auto s : sizes) n += s;
  auto data = rank_data(n, comm.rank());
  // Reference: the sum of every rank's data, regenerated locally in rank order.
  std::vector<double> ref(n, 0.0);
  for (int r = 0; r < comm.size(); ++r) {
    const auto d = rank_data(n, r);
    for (std::size_t i = 0; i < n; ++i) ref[i] += d[i];
  }
  // Host mode reduces the host vector in place; the device modes a View in the default memory space.
  sama::Vec<float> dev("dev", mode == comm::MpiBuffer::host ? 0 : n);
  using HostU = Kokkos::View<float*, sama::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  auto upload = [&] {
    if (mode != comm::MpiBuffer::host) Kokkos::deep_copy(dev, HostU(data.data(), n));
  };
  upload();
  const auto layers = layers_of(sizes);
  auto reducer = comm::make_mpi_reducer(comm, mode == comm::MpiBuffer::host ? data.data() : dev.data(), n, layers,
                                        bucket_bytes, mode);
  for (int rep = 0; rep < 2; ++rep) {  // the same reducer serves several steps
    if (rep == 1) {  // fresh inputs in the same buffer (the reducer holds its address)
      const auto again = rank_data(n, comm.rank());
      std::copy(again.begin(), again.end(), data.begin());
      upload();
    }
    reducer->begin();
    if (call_ready)
      for (const auto& [off, cnt] : layers) reducer->ready(off, cnt);
    reducer->finish();
    if (mode != comm::MpiBuffer::host) Kokkos::deep_copy(HostU(data.data(), n), dev);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_NEAR(data[i], ref[i], 1e-5 * comm.size()) << "element " << i << " of " << n;
  }
  EXPECT_EQ(reducer->stats().steps, 2);
}

TEST(GradientReducer, OneElement) { check_reducer({1}, 25e6, true); }
TEST(GradientReducer, OddSizesOneBucket) { check_reducer({7, 1, 13, 3}, 25e6, true); }
TEST(GradientReducer, ManyBuckets) { check_reducer({7, 1, 13, 3, 1001, 2}, 0.0, true); }
TEST(GradientReducer, SmallBuckets) { check_reducer({500, 3, 250, 999}, 1024.0, true); }
TEST(GradientReducer, FinishLaunchesWhatWasNotReported) { check_reducer({5, 9}, 0.0, false); }
// Device buffers staged through host memory (the default on a GPU; on a host back end the same path
// with host-to-host copies), and handed to MPI as they are (parallel.gpu_aware_mpi; only run where
// the default memory space is host memory, since this MPI need not be CUDA-aware).
TEST(GradientReducer, StagedThroughHost) {
  check_reducer({7, 1, 13, 3, 1001, 2}, 0.0, true, comm::MpiBuffer::staged);
  check_reducer({500, 3, 250, 999}, 1024.0, false, comm::MpiBuffer::staged);
}
TEST(GradientReducer, GpuAwareOnHostMemory) {
  if (!Kokkos::SpaceAccessibility<sama::HostSpace, sama::MemSpace>::accessible)
    GTEST_SKIP() << "device memory: needs a CUDA-aware MPI";
  check_reducer({500, 3, 250, 999}, 1024.0, true, comm::MpiBuffer::gpu_aware);
}
TEST(GradientReducer, DefaultModeFollowsTheMemorySpace) {
  const bool host = Kokkos::SpaceAccessibility<sama::HostSpace, sama::MemSpace>::accessible;
  EXPECT_EQ(comm::default_mpi_buffer(false), host ? comm::MpiBuffer::host : comm::MpiBuffer::staged);
  EXPECT_EQ(comm::default_mpi_buffer(true), host ? comm::MpiBuffer::host : comm::MpiBuffer::gpu_aware);
}

TEST(GradientReducer, BucketsAreContiguousAndCoverEverything) {
  const auto layers = layers_of({10, 20, 30, 40});
  const auto b = comm::make_buckets(layers, 50 * 4, 4);
  // Completion order 40, 30, 20, 10 → [60,100) has 40 (<50) so it takes 30 too: [30,100); then [0,30).
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], (std::pair<std::size_t, std::size_t>{30, 100}));
  EXPECT_EQ(b[1], (std::pair<std::size_t, std::size_t>{0, 30}));
  EXPECT_EQ(comm::make_buckets(layers, 0, 4).size(), 4u);
  EXPECT_EQ(comm::make_buckets(layers, 1e9, 4).size(), 1u);
}

app::Deck small_deck(const std::string& method, const std::string& strategy) {
  return app::parse_deck(R"(
[data]
source = "synthetic"
synthetic_train = 1200
synthetic_test = 300
synthetic_features = 16
meta_size = 120
noise_rate = 0.4
[model]
hidden = [24, 16]
activation = "gelu"
[train]
steps = 25
batch_size = 48
log_interval = 25
eval_interval = 25
[parallel]
bucket_mb = 0.0005
check_replicas = 5
)",
                         "mpi_deck", {"meta.method=" + method, "meta.strategy=" + strategy, "meta.batch_size=24"});
}

app::RunResult run(const app::Deck& deck, const comm::Communicator& comm) {
  app::RunOptions opt;
  opt.keep_parameters = true;
  return app::train(deck, opt, comm);
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

/// The parameters are bitwise identical on every rank.
void expect_replicated(const comm::Communicator& comm, const std::vector<float>& v) {
  std::vector<float> mine = v, lo = v, hi = v;
  MPI_Allreduce(mine.data(), lo.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_MIN, comm.get());
  MPI_Allreduce(mine.data(), hi.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_MAX, comm.get());
  EXPECT_EQ(lo, hi);
}

/// A small ResNet (two stages of one basic block, batch norm everywhere) on seeded synthetic 2×6×5
/// images, with crop/flip augmentation.
app::Deck small_cnn_deck(const std::string& method, const std::string& strategy) {
  return app::parse_deck(R"(
[data]
source = "synthetic"
synthetic_train = 600
synthetic_test = 200
synthetic_shape = [2, 6, 5]
meta_size = 60
noise_rate = 0.4
augment = "crop_flip"
augment_padding = 1
[model]
arch = "resnet"
blocks = [1, 1]
width = 3
[train]
steps = 12
batch_size = 24
log_interval = 12
eval_interval = 12
[parallel]
bucket_mb = 0.0001
check_replicas = 4
)",
                         "mpi_cnn_deck", {"meta.method=" + method, "meta.strategy=" + strategy, "meta.batch_size=12"});
}

class Equivalence : public ::testing::TestWithParam<std::string> {};

/// The deck's run on all ranks against the same run on one rank (MPI_COMM_SELF in the same process).
void expect_matches_one_rank(const app::Deck& deck, double theta_tol, double accuracy_tol) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  const auto many = run(deck, world);
  const auto one = run(deck, self);
  ASSERT_EQ(many.theta.size(), one.theta.size());
  EXPECT_LT(rel_diff(many.theta, one.theta), theta_tol) << "P = " << world.size();
  EXPECT_LT(rel_diff(many.lambda, one.lambda), 1e-3) << "P = " << world.size();
  if (world.size() == 1) {
    EXPECT_EQ(many.theta, one.theta);
    EXPECT_EQ(many.lambda, one.lambda);
  }
  EXPECT_NEAR(many.final_test_accuracy, one.final_test_accuracy, accuracy_tol);
  expect_replicated(world, many.theta);
  expect_replicated(world, many.lambda);
  EXPECT_EQ(many.ranks, world.size());
}

// K steps on all ranks equal K steps on one rank (the reference runs on MPI_COMM_SELF in the same
// process), within a float tolerance from the different summation order.
TEST_P(Equivalence, GlobalStrategyMatchesOneRank) {
  expect_matches_one_rank(small_deck(GetParam(), "global"), 2e-5, 2.0 / 300);
}
INSTANTIATE_TEST_SUITE_P(Methods, Equivalence,
                         ::testing::Values("none", "sama", "finite_difference", "sama_jvp", "neumann", "cg",
                                           "unrolled"));

// The same for a ResNet with sync batch norm (statistics over the global batch in every pass): the
// trajectory, the running statistics included, does not depend on P beyond summation order.
class CnnEquivalence : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnEquivalence, GlobalStrategyMatchesOneRank) {
  expect_matches_one_rank(small_cnn_deck(GetParam(), "global"), 1e-4, 2.0 / 200);
}

// Without sync batch norm each rank normalises with its own shard's statistics: at P > 1 another
// trajectory (so the test above is not vacuous), with the replicas (θ and the averaged running
// statistics, through the evaluation) still identical.
TEST(CnnBatchStatistics, PerRankStatisticsChangeTheTrajectoryButKeepReplicas) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  auto deck = small_cnn_deck("sama", "global");
  deck.model.sync_batchnorm = false;
  const auto many = run(deck, world);
  const auto one = run(deck, self);
  if (world.size() > 1) {
    EXPECT_GT(rel_diff(many.theta, one.theta), 1e-3) << "P = " << world.size();
  } else {
    EXPECT_EQ(many.theta, one.theta);
  }
  expect_replicated(world, many.theta);
  double acc[2] = {many.final_test_accuracy, many.final_test_accuracy};
  MPI_Allreduce(MPI_IN_PLACE, &acc[0], 1, MPI_DOUBLE, MPI_MIN, world.get());
  MPI_Allreduce(MPI_IN_PLACE, &acc[1], 1, MPI_DOUBLE, MPI_MAX, world.get());
  EXPECT_EQ(acc[0], acc[1]);
}
INSTANTIATE_TEST_SUITE_P(Methods, CnnEquivalence,
                         ::testing::Values("none", "sama", "sama_jvp", "neumann", "cg", "unrolled"));

// The local strategy for the methods with Hessian-vector products and the unroll: v, the HVPs, the
// solves and the reverse sweep stay on each rank's shard, only the λ-gradient parts are summed, so the
// replicas stay identical; on one rank local and global are the same computation.
class LocalStrategy : public ::testing::TestWithParam<std::string> {};

TEST_P(LocalStrategy, KeepsReplicasIdentical) {
  comm::Communicator world;
  const auto local = run(small_deck(GetParam(), "local"), world);
  expect_replicated(world, local.theta);
  expect_replicated(world, local.lambda);
  EXPECT_EQ(local.meta_steps, 25);
  if (world.size() == 1) {
    const auto global = run(small_deck(GetParam(), "global"), world);
    EXPECT_EQ(local.theta, global.theta);
    EXPECT_EQ(local.lambda, global.lambda);
  }
}
INSTANTIATE_TEST_SUITE_P(Methods, LocalStrategy, ::testing::Values("sama_jvp", "neumann", "cg", "unrolled"));

// The diagnostic (reference computed at every 5th meta step on the same batches) at P ranks: with the
// global strategy its run means equal those of one rank up to summation order.
TEST(Diagnostic, GlobalStrategyMatchesOneRank) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  for (const char* reference : {"cg", "unrolled"}) {
    auto deck = small_deck("sama", "global");
    deck.meta.diagnose_every = 5;
    deck.meta.diagnose_reference = reference;
    deck.meta.diagnose_k = 4;
    const auto many = run(deck, world), one = run(deck, self);
    EXPECT_EQ(many.hypergrad_diagnoses, 5);
    EXPECT_EQ(many.hypergrad_diagnoses, one.hypergrad_diagnoses);
    EXPECT_NEAR(many.mean_hypergrad_cosine, one.mean_hypergrad_cosine, 1e-3) << reference << " P = " << world.size();
    EXPECT_NEAR(many.mean_hypergrad_norm_ratio, one.mean_hypergrad_norm_ratio, 1e-3 * one.mean_hypergrad_norm_ratio)
        << reference;
    // The diagnostic leaves the trajectory as it is.
    auto plain = deck;
    plain.meta.diagnose_every = 0;
    plain.meta.diagnose_reference = "cg";
    plain.meta.diagnose_k = 20;
    EXPECT_EQ(run(plain, world).theta, many.theta);
  }
}

// The local strategy (v and the probes per rank) keeps replicas identical and equals the global one
// on a single rank.
TEST(Strategy, LocalKeepsReplicasIdentical) {
  comm::Communicator world;
  const auto local = run(small_deck("sama", "local"), world);
  expect_replicated(world, local.theta);
  expect_replicated(world, local.lambda);
  if (world.size() == 1) {
    const auto global = run(small_deck("sama", "global"), world);
    EXPECT_EQ(local.theta, global.theta);
  }
}

TEST(Strategy, BatchMustDivideOverRanks) {
  comm::Communicator world;
  if (world.size() == 1) GTEST_SKIP() << "every batch divides over one rank";
  auto deck = small_deck("sama", "local");
  deck.train.batch_size = 47 * world.size() + 1;
  EXPECT_THROW(run(deck, world), Error);
}

// ------------------------------------------------------------------------------ restarts at P ranks

std::string run_dir(const comm::Communicator& world, const std::string& tag) {
  // One directory for the job, named on rank 0 and shared.
  char buf[256] = {};
  if (world.rank() == 0) {
    const std::string d = std::filesystem::temp_directory_path().string() + "/sama_mpi_" + tag + "_" +
                          std::to_string(::getpid());
    std::snprintf(buf, sizeof buf, "%s", d.c_str());
  }
  MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, world.get());
  return buf;
}

app::RunResult run_in(const app::Deck& deck, const comm::Communicator& comm, const std::string& out, bool resume) {
  app::RunOptions opt;
  opt.keep_parameters = true;
  opt.out_dir = out;
  opt.resume = resume;
  return app::train(deck, opt, comm);
}

/// Stop after `stop_after` steps on every rank, resume at the same P: identical to the bit to the
/// uninterrupted run (θ, λ, test accuracy and loss, train loss); returns the run directory (rank 0
/// removes it when `keep` is false).
std::string expect_bitwise_resume(app::Deck deck, const std::string& tag, long every, long stop_after, bool keep) {
  comm::Communicator world;
  const std::string base = run_dir(world, tag);
  deck.checkpoint.every_steps = every;
  const auto straight = run_in(deck, world, base + "/straight", false);
  auto stop = deck;
  stop.debug.preempt_step = stop_after - 1;
  const auto first = run_in(stop, world, base + "/split", false);
  EXPECT_TRUE(first.preempted);
  const auto second = run_in(deck, world, base + "/split", true);
  EXPECT_EQ(second.resumed_from, stop_after);
  EXPECT_EQ(second.theta, straight.theta);
  EXPECT_EQ(second.lambda, straight.lambda);
  EXPECT_EQ(second.final_test_accuracy, straight.final_test_accuracy);
  EXPECT_EQ(second.final_test_loss, straight.final_test_loss);
  EXPECT_EQ(second.final_train_loss, straight.final_train_loss);
  expect_replicated(world, second.theta);
  world.barrier();
  if (!keep && world.rank() == 0) std::filesystem::remove_all(base);
  return base;
}

// An MLP run stopped at step 13 and resumed at the same P; scores.h5, written collectively at P ranks,
// is identical to the bit as well.
TEST(Restart, SameRankCountIsBitwise) {
  comm::Communicator world;
  const std::string base = expect_bitwise_resume(small_deck("sama", "local"), "restart", 5, 13, true);
  if (world.rank() == 0) {
    const auto bytes = [](const std::string& p) {
      std::ifstream in(p, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    EXPECT_FALSE(bytes(base + "/straight/scores.h5").empty());
    EXPECT_EQ(bytes(base + "/split/scores.h5"), bytes(base + "/straight/scores.h5"));
    std::filesystem::remove_all(base);
  }
}

// A ResNet run (sync batch norm, augmentation; the running statistics reach the result through the
// evaluation that uses them).
TEST(Restart, CnnSameRankCountIsBitwise) {
  expect_bitwise_resume(small_cnn_deck("sama", "global"), "restart_cnn", 4, 7, false);
}

// Checkpoint at P ranks, resume on one rank (each rank on its own copy): within a float tolerance of
// the uninterrupted run at P (the global strategy makes the trajectory P-independent).
TEST(Restart, AnotherRankCountStaysClose) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  const std::string base = run_dir(world, "restart_p");
  auto deck = small_deck("sama", "global");
  const auto straight = run_in(deck, world, base + "/straight", false);
  auto stop = deck;
  stop.debug.preempt_step = 12;
  ASSERT_TRUE(run_in(stop, world, base + "/split", false).preempted);
  world.barrier();
  const std::string mine = base + "/resume_rank" + std::to_string(world.rank());
  std::filesystem::create_directories(mine);
  std::filesystem::copy(base + "/split", mine, std::filesystem::copy_options::recursive);
  const auto resumed = run_in(deck, self, mine, true);
  EXPECT_EQ(resumed.resumed_from, 13);
  EXPECT_EQ(resumed.ranks, 1);
  EXPECT_LT(rel_diff(resumed.theta, straight.theta), 2e-5) << "checkpoint at P = " << world.size();
  EXPECT_LT(rel_diff(resumed.lambda, straight.lambda), 1e-3);
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(base);
}

// The unroll history written at P ranks (its batches in global order) resumed on one rank, which
// takes the whole batch of every recorded step: within a float tolerance of the run at P.
TEST(Restart, UnrolledHistoryResumesAtAnotherRankCount) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  const std::string base = run_dir(world, "restart_unrolled");
  auto deck = small_deck("unrolled", "global");
  deck.meta.k = 4;
  const auto straight = run_in(deck, world, base + "/straight", false);
  auto stop = deck;
  stop.debug.preempt_step = 12;
  ASSERT_TRUE(run_in(stop, world, base + "/split", false).preempted);
  world.barrier();
  const std::string mine = base + "/resume_rank" + std::to_string(world.rank());
  std::filesystem::create_directories(mine);
  std::filesystem::copy(base + "/split", mine, std::filesystem::copy_options::recursive);
  const auto resumed = run_in(deck, self, mine, true);
  EXPECT_EQ(resumed.resumed_from, 13);
  EXPECT_LT(rel_diff(resumed.theta, straight.theta), 2e-5) << "checkpoint at P = " << world.size();
  EXPECT_LT(rel_diff(resumed.lambda, straight.lambda), 1e-3);
  // At the same P the continuation is bitwise.
  const auto again = run_in(deck, world, base + "/split", true);
  EXPECT_EQ(again.theta, straight.theta);
  EXPECT_EQ(again.lambda, straight.lambda);
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(base);
}

// A non-finite loss on the last rank only: every rank skips the same steps and stays identical.
TEST(NonFinite, OneRankMakesEveryRankSkip) {
  comm::Communicator world;
  auto deck = small_deck("sama", "local");
  deck.debug.nan_step = 7;
  deck.debug.nan_rank = world.size() - 1;
  deck.debug.nan_count = 2;
  const auto r = run(deck, world);
  EXPECT_EQ(r.nonfinite_steps, 2);
  expect_replicated(world, r.theta);
  expect_replicated(world, r.lambda);
  long counts[2] = {r.nonfinite_steps, -r.nonfinite_steps};
  MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_LONG, MPI_MAX, world.get());
  EXPECT_EQ(counts[0], -counts[1]);
}

// ------------------------------------------------------------------------------- per-sample scores

/// Score contributions of a synthetic run: sample `id` in `epoch` is visited by rank (id + epoch) % P
/// (or not at all when (id + 2 epoch) % 7 == 0), with values and correctness that depend only on
/// (id, epoch). Adds the visits owned by `rank` of `ranks`.
void add_visits(app::SampleScores& s, int rank, int ranks) {
  for (long e = 0; e < s.windows().epochs; ++e)
    for (auto id : s.ids()) {
      if ((id + 2 * e) % 7 == 0 || (id + e) % ranks != rank) continue;
      const double v = double((id * 13 + e * 5) % 17) / 3.0;
      for (int k = 0; k < app::SampleScores::kNumScores; ++k) {
        const auto score = static_cast<app::SampleScores::Score>(k);
        if (s.collects(score, e)) s.add(score, id, v + k);
      }
      s.add_correct(id, e, (id * e) % 3 != 1);
    }
}

// The same visits spread over P ranks and written collectively give the same file content as one
// rank holding them all, to the bit, and the expected means computed directly.
TEST(Scores, CollectiveWriteMatchesOneRankExactly) {
  comm::Communicator world;
  comm::Communicator self(MPI_COMM_SELF);
  std::vector<std::int64_t> ids;
  for (std::int64_t id = 0; id < 1000; ++id)
    if (id % 10 != 3) ids.push_back(id);  // the others play the meta set
  app::SampleScores::Windows w;
  w.early_first = 1;
  w.early_last = 3;
  w.meta_first = 2;
  w.meta_last = 70;
  w.epochs = 70;  // two words of per-epoch bits
  const std::string base = run_dir(world, "scores");
  if (world.rank() == 0) std::filesystem::create_directories(base);
  world.barrier();
  auto write = [&](const comm::Communicator& c, const std::string& path) {
    app::SampleScores s(ids, 1000, w);
    add_visits(s, c.rank(), c.size());
    const auto blk = s.reduce_block(c);
    io::ScoresBlock out;
    out.total = ids.size();
    out.first = blk.first;
    for (std::size_t i = 0; i < blk.count; ++i) {
      out.sample_id.push_back(ids[blk.first + i]);
      out.label_observed.push_back(static_cast<std::int32_t>(ids[blk.first + i] % 10));
      out.label_true.push_back(0);
      out.is_noisy.push_back(0);
    }
    for (int k = 0; k < app::SampleScores::kNumScores; ++k)
      out.scores.push_back({app::SampleScores::name(static_cast<app::SampleScores::Score>(k)), blk.mean[k], {}});
    out.scores.push_back({"forgetting", blk.forgetting, {}});
    io::write_scores_file(path, out, io::Attributes{{{"method", "test"}}, {{"ranks", double(c.size())}}}, c.get());
  };
  write(world, base + "/many.h5");
  world.barrier();
  if (world.rank() == 0) {
    // One rank holding all the visits (each rank's share added in turn).
    app::SampleScores all(ids, 1000, w);
    for (int r = 0; r < world.size(); ++r) add_visits(all, r, world.size());
    const auto ref = all.reduce_block(self);
    auto f = io::open_file(base + "/many.h5");
    EXPECT_EQ(io::read_dataset<std::int64_t>(f, "sample_id"), ids);
    for (int k = 0; k < app::SampleScores::kNumScores; ++k) {
      const std::string name = app::SampleScores::name(static_cast<app::SampleScores::Score>(k));
      const auto got = io::read_dataset<double>(f, "scores/" + name);
      ASSERT_EQ(got.size(), ids.size());
      for (std::size_t i = 0; i < ids.size(); ++i) {
        // Bitwise equal to the one-rank totals, and within 2^-32 of the mean computed here.
        if (std::isnan(ref.mean[k][i])) {
          EXPECT_TRUE(std::isnan(got[i])) << name << " row " << i;
          continue;
        }
        EXPECT_EQ(got[i], ref.mean[k][i]) << name << " row " << i;
        double sum = 0;
        int n = 0;
        for (long e = 0; e < w.epochs; ++e)
          if ((ids[i] + 2 * e) % 7 != 0 && all.collects(static_cast<app::SampleScores::Score>(k), e)) {
            sum += double((ids[i] * 13 + e * 5) % 17) / 3.0 + k;
            ++n;
          }
        EXPECT_NEAR(got[i], sum / n, 1e-9) << name << " row " << i;
      }
    }
    const auto forgetting = io::read_dataset<double>(f, "scores/forgetting");
    EXPECT_EQ(forgetting, ref.forgetting);
    EXPECT_EQ(io::read_attribute<double>(f, "ranks"), world.size());
    std::filesystem::remove_all(base);
  }
  world.barrier();
}

}  // namespace
