// Keep masks for data pruning; see include/sama/io/keep_mask.hpp.
#include "sama/io/keep_mask.hpp"

#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/run_files.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <unordered_set>

namespace sama::io {
namespace {

constexpr const char* kDescription =
    "keep mask from `sama prune`: /keep[i] = 1 keeps training sample /sample_id[i] (0 = pruned); "
    "/label_observed lets a training run check that the mask was made for its split, seed and noise setting";

bool has_attribute(hid_t obj, const std::string& name) {
  ScopedErrorSilence quiet;
  const htri_t ex = H5Aexists(obj, name.c_str());
  check(ex, "checking for attribute '" + name + "'", file_name(obj));
  return ex > 0;
}

/// Removes a temporary file unless released (the mask was committed).
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove(path_, ec);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

std::size_t KeepMask::kept() const {
  return static_cast<std::size_t>(std::count(keep.begin(), keep.end(), std::uint8_t{1}));
}

void write_keep_mask(const std::string& path, const KeepMask& m, const KeepMaskExtras& extras) {
  const std::size_t n = m.sample_id.size();
  if (m.keep.size() != n || m.label_observed.size() != n)
    fail("{}: keep mask columns differ in length: sample_id {}, keep {}, label_observed {}", path, n, m.keep.size(),
         m.label_observed.size());
  for (std::size_t i = 0; i < n; ++i)
    if (m.keep[i] > 1) fail("{}: keep[{}] = {} (sample {}): keep values must be 0 or 1", path, i, int(m.keep[i]), m.sample_id[i]);
  TempFile tmp(path + ".tmp." + std::to_string(::getpid()));
  {
    ScopedErrorSilence quiet;
    H5Handle file = create_file(tmp.path());
    write_vector(file, "sample_id", m.sample_id);
    write_vector(file, "keep", m.keep);
    write_vector(file, "label_observed", m.label_observed);
    write_string_attribute(file, "description", kDescription);
    write_string_attribute(file, "by", m.by);
    write_attribute<double>(file, "keep_fraction", m.keep_fraction);
    write_attribute<std::int64_t>(file, "kept", static_cast<std::int64_t>(m.kept()));
    write_attribute<std::uint8_t>(file, "class_balanced", m.class_balanced ? 1 : 0);
    write_attribute<std::int64_t>(file, "seed", m.seed);
    write_string_attribute(file, "scores_file", m.scores_file);
    for (const auto& [k, v] : extras.number) write_attribute<double>(file, k, v);
    for (const auto& [k, v] : extras.text) write_string_attribute(file, k, v);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flushing the keep mask", tmp.path());
  }
  commit_file(tmp.path(), path);
  tmp.release();
}

KeepMask read_keep_mask(const std::string& path) {
  ScopedErrorSilence quiet;
  KeepMask m;
  m.source = path;
  H5Handle file = open_file(path);
  std::vector<hsize_t> d_id, d_keep, d_label;
  m.sample_id = read_dataset<std::int64_t>(file, "sample_id", &d_id);
  m.keep = read_dataset<std::uint8_t>(file, "keep", &d_keep);
  m.label_observed = read_dataset<std::int32_t>(file, "label_observed", &d_label);
  const std::pair<const char*, const std::vector<hsize_t>*> dims[] = {
      {"sample_id", &d_id}, {"keep", &d_keep}, {"label_observed", &d_label}};
  for (const auto& [name, d] : dims)
    if (d->size() != 1) fail("{}: keep mask dataset '/{}' has {} dimensions, expected 1", path, name, d->size());
  const std::size_t n = m.sample_id.size();
  if (m.keep.size() != n || m.label_observed.size() != n)
    fail("{}: keep mask datasets differ in length: /sample_id {}, /keep {}, /label_observed {}", path, n,
         m.keep.size(), m.label_observed.size());
  std::unordered_set<std::int64_t> seen;
  seen.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (m.keep[i] > 1)
      fail("{}: /keep[{}] = {} (sample {}): keep values must be 0 or 1", path, i, int(m.keep[i]), m.sample_id[i]);
    if (!seen.insert(m.sample_id[i]).second) fail("{}: /sample_id lists sample {} twice (row {})", path, m.sample_id[i], i);
  }
  if (has_attribute(file, "by")) m.by = read_string_attribute(file, "by");
  if (has_attribute(file, "scores_file")) m.scores_file = read_string_attribute(file, "scores_file");
  if (has_attribute(file, "keep_fraction")) m.keep_fraction = read_attribute<double>(file, "keep_fraction");
  if (has_attribute(file, "class_balanced")) m.class_balanced = read_attribute<std::uint8_t>(file, "class_balanced") != 0;
  if (has_attribute(file, "seed")) m.seed = read_attribute<std::int64_t>(file, "seed");
  if (has_attribute(file, "kept")) {
    const auto kept = read_attribute<std::int64_t>(file, "kept");
    if (kept != static_cast<std::int64_t>(m.kept()))
      fail("{}: attribute 'kept' = {} but /keep holds {} ones: the mask is damaged", path, kept, m.kept());
  }
  return m;
}

std::vector<std::int64_t> kept_ids(const KeepMask& m, const std::vector<std::int64_t>& train_ids,
                                   const std::vector<std::int32_t>& observed_label_by_id) {
  const std::string file = m.source.empty() ? std::string("keep mask") : m.source;
  constexpr const char* kOther = "the mask was made for another split, seed or noise setting (or another data set); "
                                 "make it from this configuration's scores.h5";
  if (m.keep.size() != m.sample_id.size() || m.label_observed.size() != m.sample_id.size())
    fail("{}: keep mask columns differ in length: sample_id {}, keep {}, label_observed {}", file, m.sample_id.size(),
         m.keep.size(), m.label_observed.size());
  if (m.sample_id.size() != train_ids.size())
    fail("{}: the mask lists {} training samples, this run has {}: {}", file, m.sample_id.size(), train_ids.size(),
         kOther);
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < train_ids.size(); ++i) {
    const std::int64_t id = m.sample_id[i];
    if (id != train_ids[i])
      fail("{}: row {} is sample {}, this run's training sample {} is {}: {}", file, i, id, i, train_ids[i], kOther);
    if (id < 0 || static_cast<std::size_t>(id) >= observed_label_by_id.size())
      fail("{}: row {}: sample id {} is outside this run's data set of {} samples: {}", file, i, id,
           observed_label_by_id.size(), kOther);
    const std::int32_t label = observed_label_by_id[static_cast<std::size_t>(id)];
    if (m.label_observed[i] != label)
      fail("{}: sample {} (row {}) has observed label {} in the mask but {} in this run: {}", file, id, i,
           m.label_observed[i], label, kOther);
    if (m.keep[i] > 1) fail("{}: keep[{}] = {} (sample {}): keep values must be 0 or 1", file, i, int(m.keep[i]), id);
    if (m.keep[i] == 1) out.push_back(id);
  }
  if (out.empty()) fail("{}: the mask keeps none of the {} training samples", file, train_ids.size());
  return out;
}

}  // namespace sama::io
