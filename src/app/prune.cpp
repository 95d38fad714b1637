// `sama prune`: a keep mask from per-sample scores; see include/sama/app/prune.hpp.
#include "sama/app/prune.hpp"

#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/keep_mask.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <numeric>
#include <ostream>
#include <unordered_set>

namespace sama::app {
namespace {
namespace fs = std::filesystem;

// The random stream of `--by random`, apart from the training streams (sama::Stream).
constexpr std::uint64_t kPruneStream = 0x7072756e65;  // "prune"

const PruneScore* find_score(const std::string& name) {
  for (const auto& s : prune_scores())
    if (name == s.name) return &s;
  return nullptr;
}

std::string score_names() {
  std::string s;
  for (const auto& p : prune_scores()) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

/// The names of the links in group `name` of `loc`, sorted; empty when the group does not exist.
std::vector<std::string> group_members(hid_t loc, const std::string& name) {
  std::vector<std::string> out;
  if (!io::exists(loc, name)) return out;
  const std::string file = io::file_name(loc);
  io::H5Handle g = io::open_group(loc, name);
  H5G_info_t info;
  io::check(H5Gget_info(g, &info), "listing group '" + name + "'", file);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    io::check(len < 0 ? -1 : 0, "listing group '" + name + "'", file);
    std::string s(static_cast<std::size_t>(len) + 1, '\0');
    io::check(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), s.size(), H5P_DEFAULT) < 0 ? -1 : 0,
              "listing group '" + name + "'", file);
    s.resize(static_cast<std::size_t>(len));
    out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool has_attribute(hid_t obj, const std::string& name) {
  io::ScopedErrorSilence quiet;
  const htri_t ex = H5Aexists(obj, name.c_str());
  io::check(ex, "checking for attribute '" + name + "'", io::file_name(obj));
  return ex > 0;
}

/// A 1-D dataset of exactly n values (n = SIZE_MAX: any length).
template <class T>
std::vector<T> read_column(hid_t file, const std::string& path, const std::string& name,
                           std::size_t n = std::numeric_limits<std::size_t>::max()) {
  std::vector<hsize_t> dims;
  std::vector<T> v = io::read_dataset<T>(file, name, &dims);
  if (dims.size() != 1) fail("{}: dataset '/{}' has {} dimensions, expected 1 (one value per sample)", path, name, dims.size());
  if (n != std::numeric_limits<std::size_t>::max() && v.size() != n)
    fail("{}: dataset '/{}' has {} values but /sample_id has {}: the columns must have one value per sample", path, name,
         v.size(), n);
  return v;
}

/// What `sama prune` needs of a scores.h5.
struct ScoresInput {
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> labels;   // observed
  std::vector<std::uint8_t> is_noisy; // empty when the file has no /is_noisy
  std::vector<double> score;          // empty for --by random
  std::string description;            // the score's description attribute, if any
  io::KeepMaskExtras provenance;      // copied root attributes of the scores file
};

ScoresInput read_scores(const std::string& path, const std::string& by) {
  io::ScopedErrorSilence quiet;
  ScoresInput in;
  io::H5Handle file = io::open_file(path);
  in.ids = read_column<std::int64_t>(file, path, "sample_id");
  const std::size_t n = in.ids.size();
  if (n == 0) fail("{}: /sample_id is empty: no training samples to prune", path);
  std::unordered_set<std::int64_t> seen;
  seen.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (in.ids[i] < 0) fail("{}: /sample_id[{}] = {} is negative", path, i, in.ids[i]);
    if (!seen.insert(in.ids[i]).second) fail("{}: /sample_id lists sample {} twice (row {})", path, in.ids[i], i);
  }
  in.labels = read_column<std::int32_t>(file, path, "label_observed", n);
  if (io::exists(file, "is_noisy")) in.is_noisy = read_column<std::uint8_t>(file, path, "is_noisy", n);
  if (by != "random") {
    const std::string ds = "scores/" + by;
    if (!io::exists(file, ds)) {
      const auto names = group_members(file, "scores");
      std::string list;
      for (const auto& s : names) list += (list.empty() ? "" : ", ") + s;
      fail("{}: no dataset '/{}' to prune by; {}{}", path, ds,
           names.empty() ? std::string("the file has no scores at all (no /scores group)")
                         : "available: " + list + " (or --by random)",
           by == "meta_weight" ? " (meta_weight is absent when the run had meta.method = \"none\")" : "");
    }
    in.score = read_column<double>(file, path, ds, n);
    io::H5Handle d = io::open_dataset(file, ds);
    if (has_attribute(d, "description")) in.description = io::read_string_attribute(d, "description");
  }
  for (const char* key : {"method", "noise_type", "data_source", "deck"})
    if (has_attribute(file, key)) in.provenance.text[std::string("scores_") + key] = io::read_string_attribute(file, key);
  for (const char* key : {"noise_rate", "seed", "ranks"})
    if (has_attribute(file, key)) in.provenance.number[std::string("scores_") + key] = io::read_attribute<double>(file, key);
  return in;
}

}  // namespace

const std::vector<PruneScore>& prune_scores() {
  static const std::vector<PruneScore> scores = {
      {"meta_weight", "highest",
       "the Meta-Weight-Net's mean weight: prune the samples the meta-learner did not up-weight while learning"},
      {"meta_log_weight", "highest",
       "the mean log-weight (geometric mean weight): prune the samples the meta-learner down-weighted at times"},
      {"meta_weight_envelope", "highest",
       "the weight's non-increasing envelope: prune the losses beyond where the meta-learner rejects (noise)"},
      {"el2n", "highest", "the hard samples (EL2N, Paul et al. 2021): prune the easy ones"},
      {"grand", "highest", "the hard samples (GraNd, Paul et al. 2021): prune those with small gradient norms"},
      {"forgetting", "highest", "the most often forgotten (Toneva et al. 2019): prune the unforgettable ones"},
      {"loss", "highest", "the highest training loss at the observed label: prune the lowest-loss ones"},
      {"random", "random", "a seeded uniform random subset, the baseline; needs no score (--seed)"},
  };
  return scores;
}

std::string prune_help() {
  std::string s = "Which end of each score is kept (--by):\n";
  for (const auto& p : prune_scores()) s += fmt::format("  {:<12} keep {:<8} {}\n", p.name, p.kept, p.why);
  s += "Ties rank by ascending sample id (the smaller id is kept). NaN scores (never visited in the score's\n"
       "window) rank below every number: they are pruned first. Kept: round(keep * N); with --class-balanced,\n"
       "round(keep * N_c) of each observed class c, ranked within the class.";
  return s;
}

std::size_t kept_count(double keep, std::size_t n) {
  const double k = std::floor(keep * static_cast<double>(n) + 0.5);
  return static_cast<std::size_t>(std::clamp(k, 0.0, static_cast<double>(n)));
}

std::vector<std::uint8_t> select_highest(const std::vector<std::int64_t>& ids,
                                         const std::vector<std::int32_t>& labels,
                                         const std::vector<double>& priority, double keep, bool class_balanced) {
  const std::size_t n = ids.size();
  SAMA_REQUIRE(labels.size() == n && priority.size() == n,
               "select_highest: {} ids, {} labels, {} priorities: one of each per sample", n, labels.size(),
               priority.size());
  // Groups of rows ranked together: one per observed class, or all rows.
  std::map<std::int32_t, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < n; ++i) groups[class_balanced ? labels[i] : 0].push_back(i);
  const auto before = [&](std::size_t a, std::size_t b) {
    const double pa = priority[a], pb = priority[b];
    const bool na = std::isnan(pa), nb = std::isnan(pb);
    if (na != nb) return nb;                 // a number ranks above NaN
    if (!na && pa != pb) return pa > pb;     // higher priority first
    return ids[a] < ids[b];                  // ties: smaller id first
  };
  std::vector<std::uint8_t> keep_flags(n, 0);
  for (auto& [label, rows] : groups) {
    (void)label;
    const std::size_t k = kept_count(keep, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(k), rows.end(), before);
    for (std::size_t j = 0; j < k; ++j) keep_flags[rows[j]] = 1;
  }
  return keep_flags;
}

std::vector<double> random_priority(const std::vector<std::int64_t>& ids, std::uint64_t seed) {
  std::vector<double> p(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i)
    p[i] = static_cast<double>(mix_seed(seed, kPruneStream, static_cast<std::uint64_t>(ids[i])) >> 11) * 0x1.0p-53;
  return p;
}

int run_prune(const PruneArgs& args, std::ostream& log) {
  const PruneScore* score = find_score(args.by);
  if (score == nullptr) fail("--by '{}' is not a known score; choose one of {}", args.by, score_names());
  if (!(args.keep > 0.0 && args.keep <= 1.0))
    fail("--keep {} is out of range: the fraction of samples kept must be in (0, 1]", args.keep);
  if (args.scores.empty()) fail("--scores: no scores file given");
  if (args.out.empty()) fail("--out: no mask file given");
  std::error_code ec;
  if (!fs::exists(args.scores, ec)) fail("{}: scores file does not exist (--scores)", args.scores);
  if (fs::absolute(args.out).lexically_normal() == fs::absolute(args.scores).lexically_normal() ||
      (fs::exists(args.out, ec) && fs::equivalent(args.out, args.scores, ec)))
    fail("--out '{}' is the scores file '{}': refusing to overwrite it; write the mask elsewhere", args.out, args.scores);
  if (fs::is_directory(args.out, ec)) fail("--out '{}' is a directory; give a file name such as MASK.h5", args.out);
  const fs::path out_dir = fs::path(args.out).parent_path();
  if (!out_dir.empty() && !fs::is_directory(out_dir, ec))
    fail("--out '{}': directory '{}' does not exist", args.out, out_dir.string());

  ScoresInput in = read_scores(args.scores, args.by);
  const std::size_t n = in.ids.size();
  const bool random = args.by == "random";
  const std::vector<double> priority = random ? random_priority(in.ids, static_cast<std::uint64_t>(args.seed)) : in.score;
  const std::size_t nan_scores =
      static_cast<std::size_t>(std::count_if(priority.begin(), priority.end(), [](double x) { return std::isnan(x); }));

  io::KeepMask m;
  m.sample_id = in.ids;
  m.label_observed = in.labels;
  m.keep = select_highest(in.ids, in.labels, priority, args.keep, args.class_balanced);
  m.by = args.by;
  m.keep_fraction = args.keep;
  m.class_balanced = args.class_balanced;
  m.seed = args.seed;
  m.scores_file = args.scores;
  const std::size_t kept = m.kept();
  if (kept == 0)
    fail("--keep {} of {} samples keeps none (round({} * {}) = 0): choose a larger fraction", args.keep, n, args.keep, n);

  io::KeepMaskExtras extras = in.provenance;
  extras.number["n"] = static_cast<double>(n);
  extras.number["nan_scores"] = static_cast<double>(nan_scores);
  extras.text["kept_end"] = score->kept;
  if (!in.description.empty()) extras.text["score_description"] = in.description;

  // Per-class kept counts and, with /is_noisy, the share of noisy samples kept vs overall.
  std::map<std::int32_t, std::size_t> per_class;
  for (std::size_t i = 0; i < n; ++i) per_class[in.labels[i]] += m.keep[i];
  std::size_t lo = std::numeric_limits<std::size_t>::max(), hi = 0;
  for (const auto& [c, k] : per_class) {
    (void)c;
    lo = std::min(lo, k);
    hi = std::max(hi, k);
  }
  std::string noisy;
  if (!in.is_noisy.empty()) {
    std::size_t noisy_all = 0, noisy_kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
      noisy_all += in.is_noisy[i] != 0;
      noisy_kept += in.is_noisy[i] != 0 && m.keep[i] != 0;
    }
    const double f_kept = static_cast<double>(noisy_kept) / static_cast<double>(kept);
    const double f_all = static_cast<double>(noisy_all) / static_cast<double>(n);
    extras.number["noisy_fraction_kept"] = f_kept;
    extras.number["noisy_fraction_all"] = f_all;
    noisy = fmt::format("; noisy labels: {:.3f} of kept vs {:.3f} overall", f_kept, f_all);
  }
  io::write_keep_mask(args.out, m, extras);

  log << fmt::format("sama prune: kept {} of {} ({:.4f}) by {} ({} kept{}){}; per class {}-{} kept ({} classes){}{}; "
                     "wrote {}\n",
                     kept, n, static_cast<double>(kept) / static_cast<double>(n), args.by, score->kept,
                     random ? fmt::format(", seed {}", args.seed) : std::string(),
                     args.class_balanced ? ", class-balanced" : "", lo, hi, per_class.size(),
                     nan_scores ? fmt::format("; {} NaN score(s) ranked lowest", nan_scores) : std::string(), noisy,
                     args.out);
  return 0;
}

}  // namespace sama::app
