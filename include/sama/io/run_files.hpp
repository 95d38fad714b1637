#pragma once
// The files of a run directory: atomic writes, the metrics time series, the per-sample meta weights
// and the summary. A run is complete exactly when summary.json exists (it is written last).
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace sama::io {

/// Creates `dir` (and parents) for a new run. Refuses a directory that holds a completed run
/// (summary.json) and removes the outputs of an earlier incomplete run. `inputs` are files the run
/// reads: none of them may be one of the run's output files.
void prepare_run_dir(const std::string& dir, const std::vector<std::string>& inputs, bool resuming = false);

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
