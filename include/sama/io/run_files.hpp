#pragma once
// The files of a run directory: atomic writes, the metrics time series, the per-sample meta weights
// and the summary. A run is complete exactly when summary.json exists (it is written last).
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace sama::io {

/// What a run directory holds: nothing of a run, an interrupted run (outputs or checkpoints but no
/// summary.json), or a completed run (summary.json). `detail` says what was found.
enum class RunDirState { empty, interrupted, completed };
struct RunDirInfo {
  RunDirState state = RunDirState::empty;
  std::string detail;
};
RunDirInfo inspect_run_dir(const std::string& dir);

/// Checks, before anything is written, that a run may use `dir`: it is not a file; `inputs` (files
/// the run reads) are none of its output files; a fresh run (not resuming) refuses a completed or an
/// interrupted run unless `overwrite`.
void check_run_dir(const std::string& dir, const std::vector<std::string>& inputs, bool resuming, bool overwrite);

/// Ownership of a run directory: an exclusive flock on <dir>/.lock, held while this object lives (the
/// kernel drops it when the process dies, however it dies). Creates `dir`. A directory locked by
/// another process is refused with its holder (pid, host, start time) named.
class RunDirLock {
 public:
  RunDirLock() = default;
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(RunDirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& o) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

/// Under the lock: removes what writers that died or failed left behind (<name>.tmp.<pid> and
/// <name>.partial in dir and dir/checkpoints); returns the names removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

/// Creates `dir` (and parents) for a run and, unless resuming, removes the outputs and checkpoints of
/// an earlier run (check_run_dir decided that this is allowed).
void prepare_run_dir(const std::string& dir, bool resuming = false);

/// Writes `content` to `path` atomically: a temporary file in the same directory, flushed and
/// fsync'ed, then renamed over `path`.
void write_file_atomic(const std::string& path, const std::string& content);
/// Renames a finished temporary file into place after fsync (for files written by other libraries).
void commit_file(const std::string& tmp_path, const std::string& path);

/// A CSV time series with a fixed header; one row per call, flushed so a crash keeps what was written.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  /// append: continue an existing file whose header must equal `columns`.
  MetricsWriter(const std::string& path, std::vector<std::string> columns, bool append = false);
  /// Values by column name; columns left out are written empty (NaN to a reader).
  void row(const std::map<std::string, double>& values);
  bool is_open() const { return out_.is_open(); }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
};

/// Keeps the header and the rows whose first column (the step) is at most max_step; atomically.
void truncate_metrics(const std::string& path, long max_step);

/// One row per training sample at the end of a run.
struct SampleTable {
  std::vector<std::int64_t> sample_id;
  std::vector<float> meta_weight;  // the Meta-Weight-Net's weight (un-normalised), 1 for method none
  std::vector<float> log_weight;   // its log, not clamped (the weight net's z), 0 for method none
  std::vector<float> log_weight_envelope;  // the log of the largest weight at any loss ≥ this one's
  std::vector<float> loss;         // the final per-sample loss at the observed label
  std::vector<std::int32_t> label_observed;
  std::vector<std::int32_t> label_true;
  std::vector<std::uint8_t> is_noisy;
};
/// Writes weights.h5-style files atomically, with attributes (method, seed, ...) on the root group.
void write_sample_table(const std::string& path, const SampleTable& t, const std::map<std::string, std::string>& attrs);

/// s as a JSON string literal (quoted; quotes, backslashes and control characters escaped).
std::string json_string(const std::string& s);

/// A flat JSON object of numbers and strings, written atomically.
class JsonObject {
 public:
  void set(const std::string& key, double value);
  void set(const std::string& key, long value);
  void set(const std::string& key, const std::string& value);
  void set_null(const std::string& key);
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // key -> JSON-encoded value
};

}  // namespace sama::io
