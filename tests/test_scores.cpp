// Per-sample scores (scores.h5): the exact per-sample gradient norm of the MLP (GraNd) against each
// sample's own gradient, EL2N and correctness against softmax by hand, forgetting events against a
// direct count, the fixed-point sums' independence of the order of addition, and the score windows.
#include "sama/app/deck.hpp"
#include "sama/app/sample_scores.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/io/h5.hpp"
#include "sama/nn/classifier.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace {
using namespace sama;
using sama::test::expect_error;
using sama::test::to_device;
using sama::test::to_host;

std::vector<double> normal_vec(Rng& rng, std::size_t n) {
  std::vector<double> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

Mat<double> to_mat(const std::vector<double>& h, std::size_t rows, std::size_t cols) {
  Mat<double> m("scores_test", rows, cols);
  Kokkos::deep_copy(m, Kokkos::View<const double**, Kokkos::LayoutRight, HostSpace,
                                    Kokkos::MemoryTraits<Kokkos::Unmanaged>>(h.data(), rows, cols));
  return m;
}

class SampleGradNorm : public ::testing::TestWithParam<nn::ActivationKind> {};

// The backward's per-sample norms (with arbitrary per-sample coefficients c_i) equal c_i² times the
// squared norm of sample i's own gradient, computed by a separate backward with coefficients e_i.
TEST_P(SampleGradNorm, EqualsEachSamplesOwnGradient) {
  const std::size_t b = 7, features = 5, classes = 4;
  nn::Classifier<double> model({features, 6, 5, classes}, GetParam(), b);
  Rng rng(7, 1);
  Vec<double> theta("theta", model.num_params()), grad("grad", model.num_params());
  model.init(theta, rng);
  const auto x = to_mat(normal_vec(rng, b * features), b, features);
  std::vector<int> yh(b);
  for (std::size_t i = 0; i < b; ++i) yh[i] = static_cast<int>(rng.below(classes));
  const auto y = to_device(yh);
  std::vector<double> ch(b);
  for (auto& c : ch) c = rng.uniform(-2, 2);
  const auto coef = to_device(ch);
  Vec<double> losses("losses", b), sq("sq", b);
  Kokkos::deep_copy(sq, 0.0);

  model.losses(theta, x, y, losses);
  model.net().set_sample_grad_norms(sq);
  model.backward(theta, coef, y, grad);
  model.net().set_sample_grad_norms(VecU<double>());
  const auto got = to_host(sq);

  for (std::size_t i = 0; i < b; ++i) {
    std::vector<double> e(b, 0.0);
    e[i] = 1.0;
    model.losses(theta, x, y, losses);
    model.backward(theta, to_device(e), y, grad);  // ∂ℓ_i/∂θ alone
    const auto g = to_host(grad);
    const double want = ch[i] * ch[i] * std::inner_product(g.begin(), g.end(), g.begin(), 0.0);
    EXPECT_NEAR(got[i], want, 1e-12 * std::max(1.0, want)) << "sample " << i;
  }
  // Unset, the buffer is left alone.
  model.losses(theta, x, y, losses);
  model.backward(theta, coef, y, grad);
  EXPECT_EQ(to_host(sq), got);
}
INSTANTIATE_TEST_SUITE_P(Activations, SampleGradNorm,
                         ::testing::Values(nn::ActivationKind::relu, nn::ActivationKind::gelu, nn::ActivationKind::tanh));

TEST(SampleErrors, El2nAndCorrectnessFromTheSoftmax) {
  const std::size_t b = 9, features = 3, classes = 5;
  nn::Classifier<double> model({features, 4, classes}, nn::ActivationKind::tanh, b);
  Rng rng(3, 2);
  Vec<double> theta("theta", model.num_params()), losses("losses", b), el2n("el2n", b);
  Vec<int> correct("correct", b);
  model.init(theta, rng);
  const auto x = to_mat(normal_vec(rng, b * features), b, features);
  std::vector<int> yh(b);
  for (std::size_t i = 0; i < b; ++i) yh[i] = static_cast<int>(rng.below(classes));
  const auto y = to_device(yh);
  model.losses(theta, x, y, losses);
  model.sample_errors(y, el2n, correct);
  auto z = Kokkos::create_mirror_view_and_copy(HostSpace(), model.logits());
  const auto e = to_host(el2n);
  const auto c = to_host(correct);
  for (std::size_t i = 0; i < b; ++i) {
    double zmax = z(i, 0), sum = 0;
    std::size_t best = 0;
    for (std::size_t j = 0; j < classes; ++j) {
      zmax = std::max(zmax, z(i, j));
      if (z(i, j) > z(i, best)) best = j;
    }
    for (std::size_t j = 0; j < classes; ++j) sum += std::exp(z(i, j) - zmax);
    double sq = 0;
    for (std::size_t j = 0; j < classes; ++j) {
      const double p = std::exp(z(i, j) - zmax) / sum - (static_cast<int>(j) == yh[i] ? 1.0 : 0.0);
      sq += p * p;
    }
    EXPECT_NEAR(e[i], std::sqrt(sq), 1e-14) << "sample " << i;
    EXPECT_EQ(c[i], static_cast<int>(best) == yh[i] ? 1 : 0) << "sample " << i;
  }
}

// Forgetting events against a direct count over the visited epochs.
TEST(SampleScores, ForgettingEvents) {
  auto events = [](const std::vector<int>& seq) {  // 1 correct, 0 wrong, -1 not visited
    std::uint64_t correct[2] = {0, 0}, visited[2] = {0, 0};
    for (std::size_t e = 0; e < seq.size(); ++e) {
      if (seq[e] < 0) continue;
      visited[e / 64] |= std::uint64_t(1) << (e % 64);
      if (seq[e] == 1) correct[e / 64] |= std::uint64_t(1) << (e % 64);
    }
    return app::SampleScores::forgetting_events(correct, visited, static_cast<long>(seq.size()));
  };
  EXPECT_EQ(events({1, 0, 1, 1, 0}), 2);
  EXPECT_EQ(events({0, 0, 1, 1, 1}), 0);
  EXPECT_EQ(events({1, -1, 0, -1, 1}), 1);  // unvisited epochs are skipped
  EXPECT_EQ(events({0, 0, 0, -1}), 4);      // never learned: the number of epochs
  EXPECT_TRUE(std::isnan(events({-1, -1, -1})));
  std::vector<int> long_run(100);
  for (std::size_t e = 0; e < long_run.size(); ++e) long_run[e] = e % 3 == 2 ? 0 : 1;  // 1 1 0 1 1 0 ...
  EXPECT_EQ(events(long_run), 33);  // crosses the 64-epoch word boundary
}

// The sums are fixed point: the same contributions in any order give bitwise the same means, within
// 2⁻³² of the exact mean; windows select epochs; values that are not finite are not counted.
TEST(SampleScores, SumsAreOrderIndependentAndExact) {
  comm::Communicator comm(MPI_COMM_SELF);
  const std::vector<std::int64_t> ids = {1, 2, 4, 7, 8};
  app::SampleScores::Windows w;
  w.early_first = 1;
  w.early_last = 3;
  w.meta_first = 2;
  w.meta_last = 4;
  w.epochs = 4;
  app::SampleScores a(ids, 10, w), b(ids, 10, w);
  struct Visit {
    std::int64_t id;
    long epoch;
    double value;
  };
  std::vector<Visit> visits;
  Rng rng(5, 3);
  for (long e = 0; e < w.epochs; ++e)
    for (auto id : ids) visits.push_back({id, e, rng.uniform(-90, 3)});  // log-weights are negative too
  visits.push_back({7, 0, std::nan("")});
  visits.push_back({7, 1, std::numeric_limits<double>::infinity()});
  for (const auto& v : visits)
    for (auto s : {app::SampleScores::loss, app::SampleScores::el2n, app::SampleScores::meta_weight})
      if (a.collects(s, v.epoch)) a.add(s, v.id, v.value);
  for (auto it = visits.rbegin(); it != visits.rend(); ++it)
    for (auto s : {app::SampleScores::meta_weight, app::SampleScores::el2n, app::SampleScores::loss})
      if (b.collects(s, it->epoch)) b.add(s, it->id, it->value);
  const auto ra = a.reduce_block(comm), rb = b.reduce_block(comm);
  for (int s = 0; s < app::SampleScores::kNumScores; ++s) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (std::isnan(ra.mean[s][i])) EXPECT_TRUE(std::isnan(rb.mean[s][i]));
      else EXPECT_EQ(ra.mean[s][i], rb.mean[s][i]);
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    for (auto s : {app::SampleScores::loss, app::SampleScores::el2n, app::SampleScores::meta_weight}) {
      double sum = 0;
      long n = 0;
      for (const auto& v : visits)
        if (v.id == ids[i] && a.collects(s, v.epoch) && std::isfinite(v.value)) {
          sum += v.value;
          ++n;
        }
      EXPECT_NEAR(ra.mean[s][i], sum / n, 1e-9) << app::SampleScores::name(s) << " sample " << ids[i];
    }
    EXPECT_TRUE(std::isnan(ra.mean[app::SampleScores::grand][i]));  // nothing added
  }
  EXPECT_THROW(a.add(app::SampleScores::loss, 3, 1.0), Error);  // not a training sample
}

// A checkpoint's score sums are continued only in the layout they were summed in: the same layout
// restores exactly, a run extended to more epochs takes the rows over, and sums of an older sama (no
// layout recorded; meta_weight then summed log-weights) or of another layout are refused by name.
TEST(SampleScores, CheckpointLayoutIsChecked) {
  comm::Communicator comm(MPI_COMM_SELF);
  const std::vector<std::int64_t> ids = {0, 2, 3};
  app::SampleScores::Windows w;
  w.meta_last = w.early_last = w.epochs = 3;
  app::SampleScores a(ids, 4, w);
  a.add(app::SampleScores::meta_weight, 2, 1.5);
  a.add(app::SampleScores::meta_log_weight, 2, -0.25);
  a.add_correct(3, 1, true);
  io::CheckpointData c;
  c.source = "ck.h5";
  a.save(c, comm);
  const auto mean_of_2 = [&](const app::SampleScores& s, app::SampleScores::Score k) {
    return s.reduce_block(comm).mean[k][1];
  };
  app::SampleScores b(ids, 4, w);
  b.restore(c, comm);
  EXPECT_EQ(mean_of_2(b, app::SampleScores::meta_weight), 1.5);
  EXPECT_EQ(mean_of_2(b, app::SampleScores::meta_log_weight), -0.25);
  app::SampleScores::Windows longer = w;
  longer.epochs = 130;  // three words of epoch bits instead of one
  app::SampleScores extended(ids, 4, longer);
  extended.restore(c, comm);
  EXPECT_EQ(mean_of_2(extended, app::SampleScores::meta_weight), 1.5);
  EXPECT_EQ(extended.reduce_block(comm).forgetting[2], 0.0);  // sample 3: learned at epoch 1, never forgotten

  io::CheckpointData old = c;
  old.ints.erase("sample_scores_layout");
  expect_error([&] { b.restore(old, comm); }, {"ck.h5", "older sama", "sample_scores_layout", "--overwrite"});
  io::CheckpointData other = c;
  other.ints["sample_scores_layout"][1] -= 1;
  expect_error([&] { b.restore(other, comm); }, {"ck.h5", "with 5 scores", "with 6"});
  io::CheckpointData cut = c;
  cut.ints["sample_scores"].pop_back();
  expect_error([&] { b.restore(cut, comm); }, {"ck.h5", "'sample_scores'", "3 rows"});
}

// A visit adds at most weight_cap() to meta_weight: 2²⁰, less where the window is longer than 2¹⁰
// epochs, so that a sample's sum (at most cap × visits) stays exact.
TEST(SampleScores, WeightCapKeepsSumsExact) {
  app::SampleScores::Windows w;
  w.meta_last = w.epochs = 40;
  EXPECT_EQ(app::SampleScores({0}, 1, w).weight_cap(), 1048576.0);
  w.meta_last = w.epochs = 5000;
  const double cap = app::SampleScores({0}, 1, w).weight_cap();
  EXPECT_LT(cap * 5000, 1073741824.0 + 1);
  EXPECT_GT(cap * 5000, 1073741824.0 - 5000);
}

// A window given in the deck must fit the run; the defaults shrink to fit.
TEST(ScoresDeck, WindowsAreValidated) {
  const std::string deck = std::string(SAMA_SOURCE_DIR) + "/inputs/smoke.toml";
  EXPECT_THROW(app::load_deck(deck, {"scores.early_epochs=[3, 2]"}), Error);
  EXPECT_THROW(app::load_deck(deck, {"scores.early_epochs=[1]"}), Error);
  EXPECT_THROW(app::load_deck(deck, {"scores.meta_weight_epochs=[-1, 4]"}), Error);
  EXPECT_THROW(app::load_deck(deck, {"scores.detection_epochs=[2, 2]"}), Error);
  comm::Communicator comm(MPI_COMM_SELF);
  app::RunOptions opt;
  test::TempDir dir("scores_window");
  opt.out_dir = dir.file("run");
  try {
    app::train(app::load_deck(deck, {"train.steps=50", "scores.early_epochs=[1, 9]"}), opt, comm);
    ADD_FAILURE() << "a window past the end of the run was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scores.early_epochs"), std::string::npos) << e.what();
  }
  // Defaults on a run of two epochs, and the file's windows say so.
  app::train(app::load_deck(deck, {"train.steps=60"}), opt, comm);
  auto f = io::open_file(dir.file("run/scores.h5"));
  auto el2n = io::open_dataset(f, "scores/el2n");
  EXPECT_EQ(io::read_attribute<double>(el2n, "window_first_epoch"), 1);
  EXPECT_EQ(io::read_attribute<double>(el2n, "window_last_epoch"), 2);
  // meta_weight shares EL2N's early window; the detectors average the whole run.
  for (const char* name : {"scores/meta_weight", "scores/meta_log_weight", "scores/meta_weight_envelope"}) {
    auto d = io::open_dataset(f, name);
    const bool whole = std::string(name) != "scores/meta_weight";
    EXPECT_EQ(io::read_attribute<double>(d, "window_first_epoch"), whole ? 0 : 1) << name;
    EXPECT_EQ(io::read_attribute<double>(d, "window_last_epoch"), 2) << name;
  }
  // ... and follows it when only early_epochs is set.
  opt.overwrite = true;
  app::train(app::load_deck(deck, {"train.steps=60", "scores.early_epochs=[0, 1]"}), opt, comm);
  auto g = io::open_file(dir.file("run/scores.h5"));
  auto mw = io::open_dataset(g, "scores/meta_weight");
  EXPECT_EQ(io::read_attribute<double>(mw, "window_first_epoch"), 0);
  EXPECT_EQ(io::read_attribute<double>(mw, "window_last_epoch"), 1);
  const auto ids = io::read_dataset<std::int64_t>(f, "sample_id");
  const auto grand = io::read_dataset<double>(f, "scores/grand");
  ASSERT_EQ(ids.size(), grand.size());
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
}

}  // namespace
