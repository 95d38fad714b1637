// End to end: the smoke deck trains, its losses fall, and every output exists and parses.
#include "sama/app/deck.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {
using namespace sama;

std::vector<std::vector<double>> read_csv(const std::string& path, std::vector<std::string>& header) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::stringstream hs(line);
  for (std::string c; std::getline(hs, c, ',');) header.push_back(c);
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream ls(line);
    std::string cell;
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (!std::getline(ls, cell, ',')) cell.clear();
      row.push_back(cell.empty() ? NAN : std::stod(cell));
    }
    rows.push_back(row);
  }
  return rows;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Smoke, TrainsAndWritesParsableOutputs) {
  test::TempDir dir("smoke");
  const std::string out = dir.file("run");
  const auto deck = app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml");
  comm::Communicator comm;
  app::RunOptions opt;
  opt.out_dir = out;
  const auto r = app::train(deck, opt, comm);

  // Learning happened: the meta (clean) loss and the test loss fall, accuracy far above chance.
  std::vector<std::string> header;
  const auto rows = read_csv(out + "/metrics.csv", header);
  ASSERT_GE(rows.size(), 3u);
  auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name;
    return static_cast<std::size_t>(it - header.begin());
  };
  std::vector<double> meta_loss, test_loss;
  for (const auto& row : rows) {
    if (std::isfinite(row[col("meta_loss")])) meta_loss.push_back(row[col("meta_loss")]);
    if (std::isfinite(row[col("test_loss")])) test_loss.push_back(row[col("test_loss")]);
  }
  ASSERT_GE(meta_loss.size(), 2u);
  ASSERT_GE(test_loss.size(), 2u);
  EXPECT_LT(meta_loss.back(), 0.7 * meta_loss.front());
  EXPECT_LT(test_loss.back(), test_loss.front());
  EXPECT_LT(test_loss.back(), std::log(10.0));
  EXPECT_GT(r.final_test_accuracy, 0.5);
  // The Meta-Weight-Net learned to down-weight noisy labels.
  EXPECT_LT(r.mean_weight_noisy, r.mean_weight_clean);

  // summary.json holds the documented keys with the run's values.
  const std::string summary = slurp(out + "/summary.json");
  for (const char* key : {"final_test_accuracy", "best_test_accuracy", "final_train_loss", "steps", "ranks",
                          "method", "samples_per_second", "peak_rss_mb"})
    EXPECT_NE(summary.find(std::string("\"") + key + "\":"), std::string::npos) << key;
  EXPECT_NE(summary.find("\"steps\": " + std::to_string(deck.train.steps)), std::string::npos);
  EXPECT_NE(summary.find("\"method\": \"sama\""), std::string::npos);

  // The resolved deck parses back to the same deck.
  const auto resolved = app::load_deck(out + "/deck.resolved.toml");
  EXPECT_EQ(resolved.train.steps, deck.train.steps);
  EXPECT_EQ(resolved.meta.method, deck.meta.method);

  // weights.h5: one row per training sample (meta set excluded) with labels and the noise flag.
  io::H5Handle f = io::open_file(out + "/weights.h5");
  const auto ids = io::read_dataset<std::int64_t>(f, "sample_id");
  const auto w = io::read_dataset<float>(f, "meta_weight");
  const auto logw = io::read_dataset<float>(f, "log_weight");
  const auto obs = io::read_dataset<std::int32_t>(f, "label_observed");
  const auto truth = io::read_dataset<std::int32_t>(f, "label_true");
  const auto noisy = io::read_dataset<std::uint8_t>(f, "is_noisy");
  const std::size_t n = static_cast<std::size_t>(deck.data.synthetic_train - deck.data.meta_size);
  ASSERT_EQ(ids.size(), n);
  ASSERT_EQ(w.size(), n);
  std::size_t flipped = 0;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(noisy[i] != 0, obs[i] != truth[i]);
    // Un-normalised weights: softmax exp(z(ℓ) − z(0)) > 0 (relative to a zero loss, so above 1 where
    // the net raises a loss's weight); the sigmoid and monotone nets' lie in (0, 1).
    EXPECT_GT(w[i], 0.0f);
    EXPECT_TRUE(std::isfinite(w[i]));
    if (deck.meta.weight_net != "softmax") EXPECT_LT(w[i], 1.0f);
    // log_weight is the weight's log where the weight is not clamped at e^±80, and beyond it.
    if (std::abs(logw[i]) < 80) EXPECT_NEAR(std::log(w[i]), logw[i], 1e-4 * std::max(1.0f, std::abs(logw[i]))) << i;
    else EXPECT_NEAR(std::log(w[i]), std::copysign(80.0f, logw[i]), 1e-3) << i;
    flipped += noisy[i];
  }
  EXPECT_NEAR(double(flipped) / n, deck.data.noise_rate, 0.05);
  EXPECT_EQ(io::read_string_attribute(f, "method"), "sama");
}

TEST(Smoke, CompletedRunIsNotOverwritten) {
  test::TempDir dir("smoke_twice");
  auto deck = app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml", {"train.steps=20"});
  comm::Communicator comm;
  app::RunOptions opt;
  opt.out_dir = dir.file("run");
  app::train(deck, opt, comm);
  EXPECT_THROW(app::train(deck, opt, comm), Error);
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/summary.json")));
}

TEST(Smoke, BaselineLossDecreases) {
  auto deck = app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml",
                             {"meta.method=none", "data.noise_rate=0.0", "data.noise_type=none"});
  comm::Communicator comm;
  app::RunOptions opt;  // no files
  const auto r = app::train(deck, opt, comm);
  EXPECT_LT(r.final_train_loss, 0.5 * r.first_train_loss);
  EXPECT_EQ(r.meta_steps, 0);
}

}  // namespace

namespace {

// An image model on flat feature vectors is refused naming the deck; on synthetic images it trains.
TEST(Smoke, ImageModelsNeedImages) {
  using namespace sama;
  const std::string deck = std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml";
  comm::Communicator comm(MPI_COMM_SELF);
  app::RunOptions opt;
  sama::test::expect_error(
      [&] { app::train(app::load_deck(deck, {"model.arch=\"cnn\""}), opt, comm); },
      {"smoke.toml", "model.arch = \"cnn\" needs images", "synthetic"});
  const auto r = app::train(app::load_deck(deck, {"model.arch=\"cnn\"", "model.channels=[4]", "model.hidden=[16]",
                                                  "data.synthetic_shape=[2, 4, 4]", "train.steps=300"}),
                            opt, comm);
  // 10 classes, 40% noisy labels: the MLP of this deck reaches 0.405 in 300 steps; chance is 0.1. (Not
  // augmented: crop and flip would scramble these Gaussian clusters, which are not images.)
  EXPECT_GT(r.final_test_accuracy, 0.3);
  EXPECT_LT(r.final_train_loss, r.first_train_loss);
}

}  // namespace
