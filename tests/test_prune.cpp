// `sama prune` (app/prune.hpp) and keep masks (io/keep_mask.hpp): the ranking against a brute-force
// reference, ties, NaN, class balance, the seeded random baseline, the mask file round trip, the
// training-side validation and the error messages. Expectations are computed here from the inputs.
#include "sama/app/prune.hpp"
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/keep_mask.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace sama {
namespace {
using test::expect_error;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// The reference ranking: sample i is kept when fewer than k samples of its group rank above it
/// (a number above NaN, a higher value above a lower one, then the smaller id).
std::vector<std::uint8_t> reference_keep(const std::vector<std::int64_t>& ids, const std::vector<std::int32_t>& labels,
                                         const std::vector<double>& p, double keep, bool balanced) {
  const std::size_t n = ids.size();
  std::map<std::int32_t, std::size_t> size;
  for (std::size_t i = 0; i < n; ++i) size[balanced ? labels[i] : 0]++;
  std::vector<std::uint8_t> out(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t g = balanced ? labels[i] : 0;
    const auto k = static_cast<std::size_t>(std::floor(keep * static_cast<double>(size[g]) + 0.5));
    std::size_t above = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j == i || (balanced ? labels[j] : 0) != g) continue;
      const bool nan_i = std::isnan(p[i]), nan_j = std::isnan(p[j]);
      const bool beats = nan_i != nan_j ? nan_i : (!nan_i && p[j] != p[i]) ? p[j] > p[i] : ids[j] < ids[i];
      above += beats;
    }
    out[i] = above < k;
  }
  return out;
}

std::size_t count_ones(const std::vector<std::uint8_t>& v) {
  return static_cast<std::size_t>(std::count(v.begin(), v.end(), std::uint8_t{1}));
}

/// A scores.h5 in the writer's layout: ids 0..n-1 (ascending), labels i % classes, noisy every
/// `noisy_every`-th sample, and the given score columns.
struct ScoresFile {
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> labels;
  std::vector<std::uint8_t> noisy;
  std::map<std::string, std::vector<double>> scores;

  void write(const std::string& path) const {
    io::H5Handle f = io::create_file(path);
    io::write_vector(f, "sample_id", ids);
    io::write_vector(f, "label_observed", labels);
    io::write_vector(f, "label_true", labels);
    if (!noisy.empty()) io::write_vector(f, "is_noisy", noisy);
    for (const auto& [name, v] : scores) {
      io::write_vector(f, "scores/" + name, v);
      io::H5Handle d = io::open_dataset(f, "scores/" + name);
      io::write_string_attribute(d, "description", "test score " + name);
    }
    io::write_string_attribute(f, "method", "sama");
    io::write_string_attribute(f, "noise_type", "uniform");
    io::write_attribute<double>(f, "noise_rate", 0.25);
    io::write_attribute<double>(f, "seed", 7);
  }
};

ScoresFile make_scores(std::size_t n, int classes, std::uint64_t seed) {
  ScoresFile s;
  Rng rng(seed, 99);
  for (std::size_t i = 0; i < n; ++i) {
    s.ids.push_back(static_cast<std::int64_t>(3 * i + 1));  // not contiguous: ids are not rows
    s.labels.push_back(static_cast<std::int32_t>(i % static_cast<std::size_t>(classes)));
    s.noisy.push_back(i % 4 == 0);
  }
  for (const auto& p : app::prune_scores()) {
    if (std::string(p.name) == "random") continue;
    std::vector<double> v(n);
    // Coarse values: many ties, resolved by sample id.
    for (auto& x : v) x = std::floor(rng.uniform() * 8.0) / 4.0;
    s.scores[p.name] = v;
  }
  return s;
}

io::KeepMask run_and_read(const app::PruneArgs& a, std::string* log = nullptr) {
  std::ostringstream out;
  EXPECT_EQ(app::run_prune(a, out), 0);
  if (log) *log = out.str();
  return io::read_keep_mask(a.out);
}

TEST(Prune, EveryScoreKeepsItsHighestValuesWithTiesBySampleId) {
  test::TempDir dir("prune_dir");
  const ScoresFile s = make_scores(101, 5, 1);
  s.write(dir.file("scores.h5"));
  for (const auto& p : app::prune_scores()) {
    if (std::string(p.name) == "random") continue;
    EXPECT_EQ(std::string(p.kept), "highest") << p.name;
    for (double keep : {0.1, 0.5, 0.73, 1.0}) {
      app::PruneArgs a{dir.file("scores.h5"), p.name, keep, false, 1, dir.file(std::string(p.name) + ".h5")};
      const io::KeepMask m = run_and_read(a);
      const auto expect = reference_keep(s.ids, s.labels, s.scores.at(p.name), keep, false);
      EXPECT_EQ(m.keep, expect) << p.name << " keep " << keep;
      EXPECT_EQ(m.kept(), static_cast<std::size_t>(std::floor(keep * 101 + 0.5)));
      EXPECT_EQ(m.sample_id, s.ids);
      EXPECT_EQ(m.label_observed, s.labels);
      // Every kept sample ranks at least as high as every pruned one.
      double lowest_kept = std::numeric_limits<double>::infinity(), highest_pruned = -lowest_kept;
      for (std::size_t i = 0; i < s.ids.size(); ++i) {
        const double x = s.scores.at(p.name)[i];
        if (m.keep[i]) lowest_kept = std::min(lowest_kept, x);
        else highest_pruned = std::max(highest_pruned, x);
      }
      if (keep < 1.0) {
        EXPECT_GE(lowest_kept, highest_pruned) << p.name;
      }
    }
  }
}

TEST(Prune, TiesAreBrokenBySmallerIdWhateverTheOrder) {
  const std::vector<std::int64_t> ids = {40, 7, 19, 3, 25, 11};
  const std::vector<std::int32_t> labels(ids.size(), 0);
  const std::vector<double> all_equal(ids.size(), 0.5);
  const auto keep = app::select_highest(ids, labels, all_equal, 0.5, false);
  // round(0.5 * 6) = 3: the three smallest ids, 3, 7 and 11.
  std::set<std::int64_t> kept;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (keep[i]) kept.insert(ids[i]);
  EXPECT_EQ(kept, (std::set<std::int64_t>{3, 7, 11}));
  // A higher score beats a smaller id.
  std::vector<double> p = all_equal;
  p[0] = 0.9;  // id 40
  const auto keep2 = app::select_highest(ids, labels, p, 0.5, false);
  EXPECT_EQ(keep2, reference_keep(ids, labels, p, 0.5, false));
  EXPECT_EQ(keep2[0], 1);
  EXPECT_EQ(keep2[5], 0);  // id 11 is now fourth
}

TEST(Prune, NanScoresArePrunedFirstAndCounted) {
  test::TempDir dir("prune_nan");
  ScoresFile s = make_scores(40, 4, 2);
  auto& el2n = s.scores["el2n"];
  std::size_t nans = 0;
  for (std::size_t i = 0; i < el2n.size(); i += 3, ++nans) el2n[i] = kNaN;
  s.write(dir.file("scores.h5"));
  const std::size_t finite = el2n.size() - nans;
  // Keep fewer than the finite ones: no NaN kept. Keep more: every finite one kept, NaN ones by id.
  for (double keep : {0.5, 0.9}) {
    std::string log;
    const io::KeepMask m = run_and_read({dir.file("scores.h5"), "el2n", keep, false, 1, dir.file("m.h5")}, &log);
    EXPECT_EQ(m.keep, reference_keep(s.ids, s.labels, el2n, keep, false));
    std::size_t kept_nan = 0, kept_finite = 0;
    for (std::size_t i = 0; i < el2n.size(); ++i) (std::isnan(el2n[i]) ? kept_nan : kept_finite) += m.keep[i];
    if (m.kept() <= finite) {
      EXPECT_EQ(kept_nan, 0u);
    } else {
      EXPECT_EQ(kept_finite, finite);
    }
    EXPECT_NE(log.find(std::to_string(nans) + " NaN"), std::string::npos) << log;
    io::H5Handle f = io::open_file(dir.file("m.h5"));
    EXPECT_EQ(io::read_attribute<double>(f, "nan_scores"), static_cast<double>(nans));
  }
}

TEST(Prune, ClassBalancedKeepsRoundedShareOfEachClass) {
  // Classes of awkward sizes: 1, 4, 7, 13 and 0 of class 3 (absent).
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> labels;
  std::vector<double> p;
  Rng rng(5, 1);
  const std::map<std::int32_t, int> sizes = {{0, 7}, {1, 13}, {2, 1}, {4, 4}};
  std::int64_t id = 100;
  for (const auto& [c, n] : sizes)
    for (int i = 0; i < n; ++i) {
      ids.push_back(id--);
      labels.push_back(c);
      p.push_back(rng.uniform());
    }
  for (double keep : {0.2, 0.35, 0.5, 0.9, 1.0}) {
    const auto k = app::select_highest(ids, labels, p, keep, true);
    EXPECT_EQ(k, reference_keep(ids, labels, p, keep, true)) << keep;
    std::map<std::int32_t, std::size_t> kept;
    for (std::size_t i = 0; i < ids.size(); ++i) kept[labels[i]] += k[i];
    for (const auto& [c, n] : sizes)
      EXPECT_EQ(kept[c], static_cast<std::size_t>(std::floor(keep * n + 0.5))) << "class " << c << " keep " << keep;
    EXPECT_EQ(app::kept_count(keep, 7), static_cast<std::size_t>(std::floor(keep * 7 + 0.5)));
  }
  // The same through the file: class-balanced ranks within classes, the global ranking need not.
  test::TempDir dir("prune_cb");
  const ScoresFile s = make_scores(57, 3, 3);
  s.write(dir.file("scores.h5"));
  const io::KeepMask m = run_and_read({dir.file("scores.h5"), "grand", 0.4, true, 1, dir.file("cb.h5")});
  EXPECT_EQ(m.keep, reference_keep(s.ids, s.labels, s.scores.at("grand"), 0.4, true));
  EXPECT_TRUE(m.class_balanced);
}

TEST(Prune, RandomIsDeterministicPerSeedAndDiffersAcrossSeeds) {
  test::TempDir dir("prune_rand");
  ScoresFile s = make_scores(500, 10, 4);
  s.scores.clear();  // random needs no score
  s.write(dir.file("scores.h5"));
  const auto a = run_and_read({dir.file("scores.h5"), "random", 0.3, false, 11, dir.file("a.h5")});
  const auto b = run_and_read({dir.file("scores.h5"), "random", 0.3, false, 11, dir.file("b.h5")});
  const auto c = run_and_read({dir.file("scores.h5"), "random", 0.3, false, 12, dir.file("c.h5")});
  EXPECT_EQ(a.keep, b.keep);
  EXPECT_NE(a.keep, c.keep);
  EXPECT_EQ(a.kept(), 150u);
  EXPECT_EQ(c.kept(), 150u);
  EXPECT_EQ(a.seed, 11);
  EXPECT_EQ(a.by, "random");
  // The subset depends on (seed, id) only: permuting the rows keeps the same ids.
  std::vector<std::size_t> perm(s.ids.size());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = (i * 7) % perm.size();  // 7 is coprime to 500
  std::vector<std::int64_t> ids2;
  std::vector<std::int32_t> labels2;
  for (std::size_t i : perm) {
    ids2.push_back(s.ids[i]);
    labels2.push_back(s.labels[i]);
  }
  const auto k2 = app::select_highest(ids2, labels2, app::random_priority(ids2, 11), 0.3, false);
  std::set<std::int64_t> from_file, from_perm;
  for (std::size_t i = 0; i < s.ids.size(); ++i) {
    if (a.keep[i]) from_file.insert(s.ids[i]);
    if (k2[i]) from_perm.insert(ids2[i]);
  }
  EXPECT_EQ(from_file, from_perm);
  // Roughly uniform: each class keeps close to 30% of its 50 (binomial sd ~3.2).
  std::map<std::int32_t, int> per_class;
  for (std::size_t i = 0; i < s.ids.size(); ++i) per_class[s.labels[i]] += a.keep[i];
  for (const auto& [cls, k] : per_class) EXPECT_NEAR(k, 15, 12) << "class " << cls;
}

TEST(KeepMask, RoundTripAndAttributes) {
  test::TempDir dir("mask_rt");
  const ScoresFile s = make_scores(30, 3, 6);
  s.write(dir.file("scores.h5"));
  std::string log;
  const io::KeepMask m = run_and_read({dir.file("scores.h5"), "loss", 0.6, true, 5, dir.file("mask.h5")}, &log);
  EXPECT_EQ(m.source, dir.file("mask.h5"));
  EXPECT_EQ(m.by, "loss");
  EXPECT_DOUBLE_EQ(m.keep_fraction, 0.6);
  EXPECT_TRUE(m.class_balanced);
  EXPECT_EQ(m.seed, 5);
  EXPECT_EQ(m.scores_file, dir.file("scores.h5"));
  {
    io::H5Handle f = io::open_file(dir.file("mask.h5"));
    EXPECT_EQ(io::read_attribute<std::int64_t>(f, "kept"), static_cast<std::int64_t>(m.kept()));
    EXPECT_FALSE(io::read_string_attribute(f, "description").empty());
    EXPECT_EQ(io::read_string_attribute(f, "scores_noise_type"), "uniform");
    // Noisy share among the kept samples, as printed.
    std::size_t noisy_kept = 0, noisy_all = 0;
    for (std::size_t i = 0; i < s.ids.size(); ++i) {
      noisy_all += s.noisy[i];
      noisy_kept += s.noisy[i] && m.keep[i];
    }
    EXPECT_DOUBLE_EQ(io::read_attribute<double>(f, "noisy_fraction_kept"),
                     static_cast<double>(noisy_kept) / static_cast<double>(m.kept()));
    EXPECT_DOUBLE_EQ(io::read_attribute<double>(f, "noisy_fraction_all"), static_cast<double>(noisy_all) / 30.0);
  }
  EXPECT_NE(log.find("kept " + std::to_string(m.kept()) + " of 30"), std::string::npos) << log;
  EXPECT_NE(log.find("noisy"), std::string::npos) << log;
  // write -> read of a hand-made mask.
  io::KeepMask h;
  h.sample_id = {5, 2, 9};
  h.keep = {1, 0, 1};
  h.label_observed = {0, 1, 0};
  h.by = "random";
  h.keep_fraction = 0.7;
  h.seed = 3;
  io::write_keep_mask(dir.file("hand.h5"), h);
  const io::KeepMask r = io::read_keep_mask(dir.file("hand.h5"));
  EXPECT_EQ(r.sample_id, h.sample_id);
  EXPECT_EQ(r.keep, h.keep);
  EXPECT_EQ(r.label_observed, h.label_observed);
  EXPECT_EQ(r.seed, 3);
  // No temporary files are left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(KeepMask, KeptIdsValidatesTheSplitAndNoise) {
  io::KeepMask m;
  m.sample_id = {1, 3, 4, 6};
  m.keep = {1, 0, 1, 1};
  m.label_observed = {2, 0, 1, 2};
  m.source = "/some/dir/mask.h5";
  // observed label by global id 0..7
  std::vector<std::int32_t> label_by_id = {9, 2, 9, 0, 1, 9, 2, 9};
  const std::vector<std::int64_t> train = {1, 3, 4, 6};
  std::vector<std::int64_t> expect;
  for (std::size_t i = 0; i < m.sample_id.size(); ++i)
    if (m.keep[i]) expect.push_back(m.sample_id[i]);
  EXPECT_EQ(io::kept_ids(m, train, label_by_id), expect);

  expect_error([&] { io::kept_ids(m, {1, 3, 4}, label_by_id); },
               {"/some/dir/mask.h5", "4 training samples", "this run has 3", "another split"});
  expect_error([&] { io::kept_ids(m, {1, 3, 5, 6}, label_by_id); },
               {"/some/dir/mask.h5", "row 2 is sample 4", "is 5", "another split, seed or noise"});
  auto relabelled = label_by_id;
  relabelled[4] = 7;
  expect_error([&] { io::kept_ids(m, train, relabelled); },
               {"/some/dir/mask.h5", "sample 4 (row 2)", "observed label 1 in the mask but 7", "noise setting"});
  const std::vector<std::int32_t> too_short(label_by_id.begin(), label_by_id.begin() + 5);  // ids 0..4
  expect_error([&] { io::kept_ids(m, train, too_short); },
               {"/some/dir/mask.h5", "sample id 6", "outside"});
  io::KeepMask none = m;
  none.keep.assign(4, 0);
  expect_error([&] { io::kept_ids(none, train, label_by_id); }, {"/some/dir/mask.h5", "keeps none"});
}

TEST(KeepMask, DamagedMasksAreRejected) {
  test::TempDir dir("mask_bad");
  {
    io::H5Handle f = io::create_file(dir.file("two.h5"));
    io::write_vector(f, "sample_id", std::vector<std::int64_t>{1, 2});
    io::write_vector(f, "keep", std::vector<std::uint8_t>{1, 2});
    io::write_vector(f, "label_observed", std::vector<std::int32_t>{0, 0});
  }
  expect_error([&] { io::read_keep_mask(dir.file("two.h5")); }, {"two.h5", "/keep[1] = 2", "0 or 1"});
  {
    io::H5Handle f = io::create_file(dir.file("short.h5"));
    io::write_vector(f, "sample_id", std::vector<std::int64_t>{1, 2});
    io::write_vector(f, "keep", std::vector<std::uint8_t>{1});
    io::write_vector(f, "label_observed", std::vector<std::int32_t>{0, 0});
  }
  expect_error([&] { io::read_keep_mask(dir.file("short.h5")); }, {"short.h5", "differ in length", "/keep 1"});
  {
    io::H5Handle f = io::create_file(dir.file("kept.h5"));
    io::write_vector(f, "sample_id", std::vector<std::int64_t>{1, 2});
    io::write_vector(f, "keep", std::vector<std::uint8_t>{1, 1});
    io::write_vector(f, "label_observed", std::vector<std::int32_t>{0, 0});
    io::write_attribute<std::int64_t>(f, "kept", 1);
  }
  expect_error([&] { io::read_keep_mask(dir.file("kept.h5")); }, {"kept.h5", "'kept' = 1", "2 ones"});
  {
    io::H5Handle f = io::create_file(dir.file("nolabel.h5"));
    io::write_vector(f, "sample_id", std::vector<std::int64_t>{1});
    io::write_vector(f, "keep", std::vector<std::uint8_t>{1});
  }
  expect_error([&] { io::read_keep_mask(dir.file("nolabel.h5")); }, {"nolabel.h5", "label_observed"});
  expect_error([&] { io::read_keep_mask(dir.file("absent.h5")); }, {"absent.h5"});
}

TEST(Prune, ErrorsNameTheOptionFileAndDataset) {
  test::TempDir dir("prune_err");
  ScoresFile s = make_scores(20, 2, 8);
  s.scores.erase("meta_weight");  // as after a run with meta.method = "none"
  s.write(dir.file("scores.h5"));
  const std::string sc = dir.file("scores.h5"), out = dir.file("m.h5");
  std::ostringstream log;
  expect_error([&] { app::run_prune({sc, "meta_weight", 0.5, false, 1, out}, log); },
               {sc, "/scores/meta_weight", "available: el2n, forgetting, grand, loss", "meta.method = \"none\""});
  expect_error([&] { app::run_prune({sc, "entropy", 0.5, false, 1, out}, log); },
               {"--by 'entropy'", "meta_weight, meta_log_weight, meta_weight_envelope, el2n, grand, forgetting, loss, random"});
  for (double bad : {0.0, -0.1, 1.5, kNaN})
    expect_error([&] { app::run_prune({sc, "el2n", bad, false, 1, out}, log); }, {"--keep", "(0, 1]"});
  expect_error([&] { app::run_prune({dir.file("none.h5"), "el2n", 0.5, false, 1, out}, log); },
               {dir.file("none.h5"), "does not exist"});
  expect_error([&] { app::run_prune({sc, "el2n", 0.01, false, 1, out}, log); }, {"keeps none"});
  // The scores file is never overwritten, also when named differently.
  const auto size_before = std::filesystem::file_size(sc);
  expect_error([&] { app::run_prune({sc, "el2n", 0.5, false, 1, sc}, log); }, {"refusing to overwrite", sc});
  expect_error([&] { app::run_prune({sc, "el2n", 0.5, false, 1, dir.file("./scores.h5")}, log); },
               {"refusing to overwrite"});
  EXPECT_EQ(std::filesystem::file_size(sc), size_before);
  EXPECT_NO_THROW(io::open_dataset(io::open_file(sc), "scores/el2n"));
  EXPECT_FALSE(std::filesystem::exists(out));
  // Length mismatches name the dataset.
  {
    io::H5Handle f = io::open_file(sc, true);
    io::write_vector(f, "scores/grand", std::vector<double>(19, 1.0));
    io::write_vector(f, "is_noisy", std::vector<std::uint8_t>(21, 0));
  }
  expect_error([&] { app::run_prune({sc, "grand", 0.5, false, 1, out}, log); },
               {sc, "'/is_noisy' has 21 values", "/sample_id has 20"});
  {
    io::H5Handle f = io::open_file(sc, true);
    io::write_vector(f, "is_noisy", std::vector<std::uint8_t>(20, 0));
  }
  expect_error([&] { app::run_prune({sc, "grand", 0.5, false, 1, out}, log); },
               {sc, "'/scores/grand' has 19 values", "/sample_id has 20"});
  // A file with no scores at all still prunes at random.
  {
    io::H5Handle f = io::create_file(dir.file("bare.h5"));
    io::write_vector(f, "sample_id", std::vector<std::int64_t>{0, 1, 2, 3});
    io::write_vector(f, "label_observed", std::vector<std::int32_t>{0, 1, 0, 1});
  }
  expect_error([&] { app::run_prune({dir.file("bare.h5"), "loss", 0.5, false, 1, out}, log); },
               {"bare.h5", "no /scores group"});
  EXPECT_EQ(app::run_prune({dir.file("bare.h5"), "random", 0.5, false, 1, out}, log), 0);
  EXPECT_EQ(io::read_keep_mask(out).kept(), 2u);
  // Not HDF5.
  { std::ofstream(dir.file("text.h5")) << "not hdf5"; }
  expect_error([&] { app::run_prune({dir.file("text.h5"), "el2n", 0.5, false, 1, out}, log); },
               {dir.file("text.h5"), "not an HDF5 file"});
}

}  // namespace
}  // namespace sama
