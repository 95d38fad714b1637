// Checkpoints: exact continuation, damage detection with fallback, stop requests, non-finite steps.
#include "sama/app/deck.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/io/checkpoint.hpp"
#include "sama/io/h5.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {
using namespace sama;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// metrics.csv without the timing columns (samples_per_s, elapsed_s), which differ between runs.
std::string metrics_without_timing(const std::string& path) {
  std::istringstream in(slurp(path));
  std::string line, out;
  std::vector<std::string> header;
  bool first = true;
  std::vector<bool> keep;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    if (line.back() == ',') cells.emplace_back();
    if (first) {
      for (const auto& c : cells) keep.push_back(c != "samples_per_s" && c != "elapsed_s" && c != "comm_hidden");
      first = false;
    }
    for (std::size_t i = 0; i < cells.size(); ++i)
      if (i < keep.size() && keep[i]) out += cells[i] + ",";
    out += "\n";
  }
  return out;
}

app::Deck deck(std::vector<std::string> sets = {}) {
  sets.insert(sets.begin(), "train.steps=120");
  sets.insert(sets.begin(), "train.log_interval=25");
  sets.insert(sets.begin(), "train.eval_interval=40");
  return app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml", sets);
}

app::RunResult run(const app::Deck& d, const std::string& out, bool resume = false) {
  comm::Communicator comm;
  app::RunOptions opt;
  opt.out_dir = out;
  opt.keep_parameters = true;
  opt.resume = resume;
  return app::train(d, opt, comm);
}

class Restart : public ::testing::TestWithParam<std::string> {};

// N steps, stop, resume, the rest == all steps straight, to the bit: parameters, per-sample weights
// file, metrics (timing columns aside) and the results.
TEST_P(Restart, ContinuationIsBitwise) {
  test::TempDir dir("restart");
  const std::string optimizer = GetParam();
  const std::vector<std::string> sets = {"optimizer.name=" + optimizer, "checkpoint.every_steps=30"};
  const auto straight = run(deck(sets), dir.file("straight"));
  auto stop_sets = sets;
  stop_sets.push_back("debug.preempt_step=70");
  const auto first = run(deck(stop_sets), dir.file("split"));
  ASSERT_TRUE(first.preempted);
  EXPECT_EQ(first.steps, 71);
  EXPECT_FALSE(fs::exists(dir.file("split/summary.json")));
  const auto second = run(deck(sets), dir.file("split"), true);
  EXPECT_FALSE(second.preempted);
  EXPECT_EQ(second.resumed_from, 71);
  EXPECT_EQ(second.theta, straight.theta);
  EXPECT_EQ(second.lambda, straight.lambda);
  EXPECT_EQ(second.final_test_accuracy, straight.final_test_accuracy);
  EXPECT_EQ(second.final_train_loss, straight.final_train_loss);
  EXPECT_EQ(second.meta_steps, straight.meta_steps);
  EXPECT_EQ(slurp(dir.file("split/weights.h5")), slurp(dir.file("straight/weights.h5")));
  // The per-sample score sums run across the restart (fixed point, carried in the checkpoint).
  EXPECT_EQ(slurp(dir.file("split/scores.h5")), slurp(dir.file("straight/scores.h5")));
  EXPECT_EQ(metrics_without_timing(dir.file("split/metrics.csv")),
            metrics_without_timing(dir.file("straight/metrics.csv")));
}
INSTANTIATE_TEST_SUITE_P(Optimizers, Restart, ::testing::Values("adam", "sgd"));

// The same for the hypergradient methods: `unrolled` carries its history of the last K base steps
// (θ, λ, optimizer state, batch ids and Meta-Weight-Net inputs) in the checkpoint; the diagnostic its
// window and run sums.
class MethodRestart : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(MethodRestart, ContinuationIsBitwise) {
  test::TempDir dir("restart_method");
  auto sets = GetParam();
  sets.push_back("checkpoint.every_steps=30");
  const auto straight = run(deck(sets), dir.file("straight"));
  auto stop_sets = sets;
  stop_sets.push_back("debug.preempt_step=70");
  ASSERT_TRUE(run(deck(stop_sets), dir.file("split")).preempted);
  const auto second = run(deck(sets), dir.file("split"), true);
  EXPECT_EQ(second.resumed_from, 71);
  EXPECT_EQ(second.theta, straight.theta);
  EXPECT_EQ(second.lambda, straight.lambda);
  EXPECT_EQ(second.meta_steps, straight.meta_steps);
  EXPECT_EQ(second.hypergrad_diagnoses, straight.hypergrad_diagnoses);
  EXPECT_EQ(second.mean_hypergrad_cosine, straight.mean_hypergrad_cosine);
  EXPECT_EQ(metrics_without_timing(dir.file("split/metrics.csv")),
            metrics_without_timing(dir.file("straight/metrics.csv")));
}
INSTANTIATE_TEST_SUITE_P(
    Methods, MethodRestart,
    ::testing::Values(std::vector<std::string>{"meta.method=sama_jvp"},
                      std::vector<std::string>{"meta.method=neumann", "meta.k=3"},
                      std::vector<std::string>{"meta.method=cg", "meta.k=3"},
                      std::vector<std::string>{"meta.method=unrolled", "meta.k=4"},
                      std::vector<std::string>{"meta.method=unrolled", "meta.k=3", "optimizer.name=sgd",
                                               "optimizer.momentum=0.9"},
                      std::vector<std::string>{"meta.diagnose_every=7", "meta.diagnose_reference=unrolled",
                                               "meta.diagnose_k=5"}),
    [](const auto& info) {
      std::string name;
      for (const auto& s : info.param) name += (name.empty() ? "" : "_") + s.substr(s.find('=') + 1);
      for (auto& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

// ------------------------------------------------------------------------------ format 1 (positional)

/// A checkpoint of this sama (format 2: the train state by name) in the layout of format 1, as sama
/// wrote it before: counters, results, samplers, thread layout, diagnostic and weight-net health in
/// positional arrays, the per-rank window sums in rows of 9 (two unused) and 10 values.
io::CheckpointData to_format1(const io::CheckpointData& c) {
  io::CheckpointData old = c;
  old.format = 1;
  auto take_i = [&](const std::string& name) {
    const std::int64_t v = c.i(name, 1)[0];
    old.ints.erase(name);
    return v;
  };
  auto take_d = [&](const std::string& name) {
    const double v = c.d(name, 1)[0];
    old.doubles.erase(name);
    return v;
  };
  auto take_rows = [&](const std::vector<std::string>& names, std::size_t stride) {
    const auto ranks = static_cast<std::size_t>(c.ranks);
    std::vector<double> rows(stride * ranks, 0.0);
    for (std::size_t f = 0; f < names.size(); ++f) {
      const auto& v = c.d(names[f], ranks);
      for (std::size_t r = 0; r < ranks; ++r) rows[r * stride + f] = v[r];
      old.doubles.erase(names[f]);
    }
    return rows;
  };
  old.ints["sampler"] = {take_i("sampler.epoch"), take_i("sampler.position"), take_i("meta_sampler.epoch"),
                         take_i("meta_sampler.position")};
  old.ints["counters"] = {take_i("counters.meta_steps"),   take_i("counters.nonfinite_total"),
                          take_i("counters.nonfinite_run"), take_i("counters.first_window"),
                          take_i("window.steps"),           take_i("window.meta_steps")};
  old.ints["threads"] = {take_i("threads.per_rank"), take_i("threads.blas"), take_i("threads.kokkos_concurrency")};
  old.doubles["results"] = {take_d("results.final_test_accuracy"), take_d("results.best_test_accuracy"),
                            take_d("results.final_test_loss"),     take_d("results.final_train_loss"),
                            take_d("results.first_train_loss"),    take_d("results.mean_weight_clean"),
                            take_d("results.mean_weight_noisy"),   take_d("results.train_seconds")};
  old.doubles["rank_windows"] =
      take_rows({"window.base_loss", "window.meta_loss", "window.epsilon", "window.weight_clean_sum",
                 "window.weight_clean_count", "window.weight_noisy_sum", "window.weight_noisy_count"},
                9);
  old.doubles["hypergrad_diagnostics"] = {take_d("diagnostics.window_cosine"),
                                          take_d("diagnostics.window_ratio"),
                                          double(take_i("diagnostics.window_count")),
                                          take_d("diagnostics.run_cosine"),
                                          take_d("diagnostics.run_ratio"),
                                          double(take_i("diagnostics.run_count"))};
  old.doubles["weight_net_health"] = {take_d("weight_net.lambda_grad_norm_sum"),
                                      double(take_i("weight_net.lambda_grad_norms")),
                                      double(take_i("weight_net.collapsed_at_step")),
                                      double(take_i("weight_net.weights_spread"))};
  old.doubles["rank_weight_windows"] =
      take_rows({"weight_window.weight_sum", "weight_window.weight_sq_sum", "weight_window.loss_sum",
                 "weight_window.loss_sq_sum", "weight_window.count", "weight_window.logit_min",
                 "weight_window.logit_max", "weight_window.logit_sum", "weight_window.logit_sq_sum",
                 "weight_window.saturated"},
                10);
  return old;
}

// A run resumed from a checkpoint of format 1 (the positional layout, made here from this sama's
// checkpoint at the same step) continues exactly as from the named one: the same as a straight run.
TEST(Restart, Format1CheckpointResumesBitwise) {
  test::TempDir dir("format1");
  const std::vector<std::string> sets = {"checkpoint.every_steps=30", "meta.diagnose_every=7",
                                         "meta.diagnose_reference=unrolled", "meta.diagnose_k=5"};
  const auto straight = run(deck(sets), dir.file("straight"));
  auto stop_sets = sets;
  stop_sets.push_back("debug.preempt_step=70");
  ASSERT_TRUE(run(deck(stop_sets), dir.file("split")).preempted);
  const std::string ckdir = io::checkpoint_dir(dir.file("split"));
  const auto found = io::find_checkpoint(ckdir);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->data.step, 71);
  // This sama writes format 2, one array per quantity, and no positional array.
  EXPECT_EQ(found->data.format, 2);
  EXPECT_EQ(found->data.i("counters.meta_steps", 1)[0], found->data.i("meta_optimizer.steps", 1)[0]);
  for (const char* positional : {"counters", "sampler", "threads"}) EXPECT_EQ(found->data.ints.count(positional), 0u);
  for (const char* positional : {"results", "rank_windows", "hypergrad_diagnostics", "weight_net_health",
                                 "rank_weight_windows"})
    EXPECT_EQ(found->data.doubles.count(positional), 0u);
  // Replace every checkpoint of the interrupted run by the format-1 one.
  const io::CheckpointData old = to_format1(found->data);
  for (const auto& e : fs::directory_iterator(ckdir)) fs::remove(e.path());
  io::write_checkpoint(ckdir, old, 2);
  const auto reread = io::find_checkpoint(ckdir);
  ASSERT_TRUE(reread);
  EXPECT_EQ(reread->data.format, 1);
  EXPECT_EQ(reread->data.doubles.count("results"), 1u);
  EXPECT_EQ(reread->data.ints.count("counters.meta_steps"), 0u);
  const auto second = run(deck(sets), dir.file("split"), true);
  EXPECT_EQ(second.resumed_from, 71);
  EXPECT_EQ(second.theta, straight.theta);
  EXPECT_EQ(second.lambda, straight.lambda);
  EXPECT_EQ(second.meta_steps, straight.meta_steps);
  EXPECT_EQ(second.best_test_accuracy, straight.best_test_accuracy);
  EXPECT_EQ(second.first_train_loss, straight.first_train_loss);
  EXPECT_EQ(second.hypergrad_diagnoses, straight.hypergrad_diagnoses);
  EXPECT_EQ(second.mean_hypergrad_cosine, straight.mean_hypergrad_cosine);
  EXPECT_EQ(second.meta_weight_collapsed_at_step, straight.meta_weight_collapsed_at_step);
  EXPECT_EQ(slurp(dir.file("split/weights.h5")), slurp(dir.file("straight/weights.h5")));
  EXPECT_EQ(slurp(dir.file("split/scores.h5")), slurp(dir.file("straight/scores.h5")));
  EXPECT_EQ(metrics_without_timing(dir.file("split/metrics.csv")),
            metrics_without_timing(dir.file("straight/metrics.csv")));
}

// A format-1 checkpoint whose positional array has the wrong size is refused, naming the file and array.
TEST(Restart, Format1CheckpointWithAShortArrayIsRefused) {
  test::TempDir dir("format1_short");
  const std::vector<std::string> sets = {"checkpoint.every_steps=30"};
  auto stop_sets = sets;
  stop_sets.push_back("debug.preempt_step=40");
  ASSERT_TRUE(run(deck(stop_sets), dir.file("run")).preempted);
  const std::string ckdir = io::checkpoint_dir(dir.file("run"));
  auto old = to_format1(io::find_checkpoint(ckdir)->data);
  old.ints["counters"].pop_back();
  for (const auto& e : fs::directory_iterator(ckdir)) fs::remove(e.path());
  const std::string path = io::write_checkpoint(ckdir, old, 2);
  test::expect_error([&] { run(deck(sets), dir.file("run"), true); }, {path, "counters"});
}

TEST(Restart, ResumeRefusesAnotherDeck) {
  test::TempDir dir("restart_deck");
  ASSERT_TRUE(run(deck({"debug.preempt_step=20"}), dir.file("run")).preempted);
  try {
    run(deck({"model.hidden=[32]"}), dir.file("run"), true);
    FAIL() << "resumed under another model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden"), std::string::npos) << e.what();
  }
  // Logging and checkpoint settings may change.
  EXPECT_NO_THROW(run(deck({"train.log_interval=7", "checkpoint.keep=3"}), dir.file("run"), true));
}

TEST(Restart, ResumeWithoutCheckpointFails) {
  test::TempDir dir("restart_none");
  EXPECT_THROW(run(deck(), dir.file("run"), true), Error);
}

TEST(Restart, WallTimeBudgetStopsWithACheckpoint) {
  test::TempDir dir("budget");
  const auto r = run(deck({"checkpoint.wall_time_minutes=1e-9"}), dir.file("run"));
  EXPECT_TRUE(r.preempted);
  EXPECT_EQ(r.steps, 1);
  EXPECT_TRUE(fs::exists(dir.file("run/checkpoints/latest")));
}

// ------------------------------------------------------------------------------ damaged checkpoints

io::CheckpointData sample(long step) {
  io::CheckpointData c;
  c.step = step;
  c.deck = "[train]\nseed = 1\n";
  c.floats["theta"] = std::vector<float>(70000, 0.5f);  // more than one chunk
  c.floats["theta"][12345] = static_cast<float>(step);
  c.doubles["results"] = {0.25, 0.5};
  c.ints["sampler"] = {1, 2, 3, 4};
  return c;
}

void flip_bit_in_theta(const std::string& path) {
  // Find the stored 12345th value's bytes (unique) and flip one bit next to it.
  std::string bytes = slurp(path);
  const float marker = 0.5f;
  std::string pattern(reinterpret_cast<const char*>(&marker), sizeof marker);
  const auto pos = bytes.find(pattern + pattern + pattern + pattern);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 100] ^= 0x10;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct Damage {
  const char* name;
  void (*apply)(const std::string& path);
};

const Damage kDamages[] = {
    {"flipped bit in a dataset", [](const std::string& p) { flip_bit_in_theta(p); }},
    {"truncated to half", [](const std::string& p) { fs::resize_file(p, fs::file_size(p) / 2); }},
    {"truncated to 100 bytes", [](const std::string& p) { fs::resize_file(p, 100); }},
    {"emptied", [](const std::string& p) { fs::resize_file(p, 0); }},
    {"missing dataset",
     [](const std::string& p) {
       io::H5Handle f = io::open_file(p, true);
       H5Ldelete(f, "float/theta", H5P_DEFAULT);
     }},
    {"newer format",
     [](const std::string& p) {
       io::H5Handle f = io::open_file(p, true);
       io::write_attribute<std::int64_t>(f, "format_version", io::kCheckpointFormat + 1);
     }},
    {"wrong CRC",
     [](const std::string& p) {
       io::H5Handle f = io::open_file(p, true);
       io::write_attribute<std::int64_t>(f, "payload_crc32", 12345);
     }},
    {"changed step",
     [](const std::string& p) {
       io::H5Handle f = io::open_file(p, true);
       io::write_attribute<std::int64_t>(f, "step", 999);
     }},
    {"replaced by text", [](const std::string& p) { std::ofstream(p, std::ios::trunc) << "not a checkpoint\n"; }},
};

// Every kind of damage to the newest checkpoint is detected: never loaded; the previous good one is.
TEST(DamagedCheckpoint, DetectedAndPreviousUsed) {
  int injected = 0, detected = 0;
  for (const auto& damage : kDamages) {
    test::TempDir dir("damage");
    const std::string d = dir.file("ck");
    io::write_checkpoint(d, sample(10), 3);
    const std::string newest = io::write_checkpoint(d, sample(20), 3);
    damage.apply(newest);
    ++injected;
    const auto found = io::find_checkpoint(d);
    ASSERT_TRUE(found.has_value()) << damage.name;
    EXPECT_EQ(found->data.step, 10) << damage.name << ": a damaged checkpoint was loaded";
    EXPECT_EQ(found->data.floats.at("theta")[12345], 10.0f) << damage.name;
    ASSERT_EQ(found->rejected.size(), 1u) << damage.name;
    EXPECT_NE(found->rejected[0].find("step_000000000020.h5"), std::string::npos) << found->rejected[0];
    detected += found->data.step == 10 && found->rejected.size() == 1;
    std::cout << "damage '" << damage.name << "': " << found->rejected[0] << "\n";
  }
  std::cout << injected << " corruptions injected, " << detected << " detected, " << injected - detected
            << " silent loads\n";
  EXPECT_EQ(detected, injected);
}

TEST(DamagedCheckpoint, GarbagePointerFallsBack) {
  test::TempDir dir("pointer");
  const std::string d = dir.file("ck");
  io::write_checkpoint(d, sample(10), 2);
  std::ofstream(d + "/latest", std::ios::trunc) << "../../etc/passwd\n";
  auto found = io::find_checkpoint(d);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->data.step, 10);
  ASSERT_EQ(found->rejected.size(), 1u);
  EXPECT_NE(found->rejected[0].find("latest"), std::string::npos);
  std::ofstream(d + "/latest", std::ios::trunc) << "step_000000000099.h5\n";
  found = io::find_checkpoint(d);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->data.step, 10);
}

TEST(DamagedCheckpoint, NoGoodCheckpointIsAnError) {
  test::TempDir dir("allbad");
  const std::string d = dir.file("ck");
  const auto a = io::write_checkpoint(d, sample(10), 2);
  const auto b = io::write_checkpoint(d, sample(20), 2);
  fs::resize_file(a, 10);
  fs::resize_file(b, 10);
  try {
    io::find_checkpoint(d);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step_000000000010.h5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step_000000000020.h5"), std::string::npos) << msg;
  }
  EXPECT_FALSE(io::find_checkpoint(dir.file("empty")).has_value());
}

TEST(Checkpoint, KeepsTheNewestK) {
  test::TempDir dir("keep");
  const std::string d = dir.file("ck");
  for (long s : {5, 10, 15, 20}) io::write_checkpoint(d, sample(s), 2);
  EXPECT_FALSE(fs::exists(d + "/step_000000000005.h5"));
  EXPECT_FALSE(fs::exists(d + "/step_000000000010.h5"));
  EXPECT_TRUE(fs::exists(d + "/step_000000000015.h5"));
  EXPECT_TRUE(fs::exists(d + "/step_000000000020.h5"));
  EXPECT_EQ(slurp(d + "/latest"), "step_000000000020.h5\n");
  const auto c = io::read_checkpoint(d + "/step_000000000020.h5");
  EXPECT_EQ(c.floats.at("theta"), sample(20).floats.at("theta"));
  EXPECT_EQ(c.ints.at("sampler"), sample(20).ints.at("sampler"));
  EXPECT_EQ(c.deck, sample(20).deck);
}

TEST(Checkpoint, ResumedRunDamagedNewestFallsBackAndCompletes) {
  test::TempDir dir("resume_damaged");
  const auto straight = run(deck({"checkpoint.every_steps=20"}), dir.file("straight"));
  ASSERT_TRUE(run(deck({"checkpoint.every_steps=20", "debug.preempt_step=50"}), dir.file("run")).preempted);
  // Damage the newest (step 51): the resume must use step 40 and still end bitwise equal.
  fs::resize_file(dir.file("run/checkpoints/step_000000000051.h5"), 64);
  const auto r = run(deck({"checkpoint.every_steps=20"}), dir.file("run"), true);
  EXPECT_EQ(r.resumed_from, 40);
  EXPECT_EQ(r.theta, straight.theta);
  EXPECT_EQ(slurp(dir.file("run/weights.h5")), slurp(dir.file("straight/weights.h5")));
}

// ------------------------------------------------------------------------------ non-finite values

TEST(NonFinite, StepsSkippedAndCounted) {
  test::TempDir dir("nan");
  const auto r = run(deck({"debug.nan_step=30", "debug.nan_rank=0", "debug.nan_count=3"}), dir.file("run"));
  EXPECT_EQ(r.nonfinite_steps, 3);
  EXPECT_FALSE(r.preempted);
  for (float x : r.theta) ASSERT_TRUE(std::isfinite(x));
  EXPECT_NE(slurp(dir.file("run/summary.json")).find("\"nonfinite_steps\": 3"), std::string::npos);
}

TEST(NonFinite, TooManyInARowStopTheRun) {
  test::TempDir dir("nan_stop");
  try {
    run(deck({"debug.nan_step=10", "debug.nan_rank=0", "debug.nan_count=50", "train.max_nonfinite=5"}),
        dir.file("run"));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("5 consecutive steps"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step 14"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir.file("run/summary.json")));
}

TEST(NonFinite, CountSurvivesRestart) {
  test::TempDir dir("nan_restart");
  const std::vector<std::string> sets = {"debug.nan_step=30", "debug.nan_rank=0", "debug.nan_count=2"};
  auto stop = sets;
  stop.push_back("debug.preempt_step=60");
  ASSERT_TRUE(run(deck(stop), dir.file("run")).preempted);
  const auto r = run(deck(sets), dir.file("run"), true);
  EXPECT_EQ(r.nonfinite_steps, 2);
}

}  // namespace
