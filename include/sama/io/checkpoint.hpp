#pragma once
// Checkpoints: the complete state of a run in one HDF5 file, committed atomically.
//
// Layout: named arrays under /float, /double and /int64 (chunked, Fletcher32), root attributes
// format_version, step, ranks, sama_version, git_commit, deck (the resolved input deck) and
// payload_crc32 (CRC-32 over every name, array and the deck). Files live in <run>/checkpoints/ as
// step_<step>.h5; `latest` names the newest. A write goes to a temporary name, is fsync'ed and renamed,
// then `latest` is replaced the same way; the newest `keep` checkpoints are kept.
//
// Reading checks the format version, every Fletcher32 checksum and the CRC; a damaged checkpoint is
// reported and the previous one tried, never loaded silently.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sama::io {

// Format 2: the train state one array per quantity, by name ("counters.meta_steps", ...); format 1
// held some of it in positional arrays ("counters", "results", ...), still read (the trainer translates
// them: sama/train/state.hpp).
inline constexpr long kCheckpointFormat = 2;

struct CheckpointData {
  long format = kCheckpointFormat;  // format_version: that of the file read, or the one to write
  long step = 0;     // training steps completed
  int ranks = 1;     // ranks of the run that wrote it
  std::string deck;  // the resolved input deck (TOML)
  std::map<std::string, std::vector<float>> floats;
  std::map<std::string, std::vector<double>> doubles;
  std::map<std::string, std::vector<std::int64_t>> ints;

  /// Typed access with a clear error naming the checkpoint and the missing or mis-sized array.
  const std::vector<float>& f(const std::string& name, std::size_t expect_size = SIZE_MAX) const;
  const std::vector<double>& d(const std::string& name, std::size_t expect_size = SIZE_MAX) const;
  const std::vector<std::int64_t>& i(const std::string& name, std::size_t expect_size = SIZE_MAX) const;
  std::string source;  // the file it was read from (for messages)
};

/// The checkpoint directory of a run directory.
std::string checkpoint_dir(const std::string& run_dir);

/// Writes `data` as <dir>/step_<step>.h5 atomically, points `latest` at it and removes all but the
/// newest `keep` checkpoints. Returns the path written.
std::string write_checkpoint(const std::string& dir, const CheckpointData& data, int keep);

/// Reads and verifies one checkpoint file; throws sama::Error saying what is wrong.
CheckpointData read_checkpoint(const std::string& path);

struct FoundCheckpoint {
  CheckpointData data;
  std::vector<std::string> rejected;  // "<file>: <problem>" for every newer checkpoint that failed
  std::vector<std::string> notes;     // e.g. `latest` names an older checkpoint than the one taken
};
/// The newest good checkpoint in `dir`, by the step in the file names, newest first; a checkpoint whose
/// stored step differs from its file name is rejected. `latest` is checked against the choice: a
/// garbage or dangling `latest` is reported in `rejected`, one naming an older checkpoint in `notes`.
/// nullopt when `dir` holds no checkpoint at all; throws sama::Error listing every problem when
/// checkpoints exist but none is good.
std::optional<FoundCheckpoint> find_checkpoint(const std::string& dir);

}  // namespace sama::io
