#pragma once
// Reading inputs safely: only regular files (a FIFO, a device or /dev/zero is refused without
// blocking), bounded sizes, and a whole-file read that is checked against the file as opened (a file
// truncated or rewritten while it is read is an error, never zeros), with a checksum for provenance.
#include <cstdint>
#include <string>

namespace sama::io {

/// FNV-1a 64-bit hash of n bytes, continuing from `h` (start with kFnvOffset).
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
std::uint64_t fnv1a64(const void* data, std::size_t n, std::uint64_t h = kFnvOffset);

struct FileBytes {
  std::string bytes;
  std::uint64_t fnv1a64 = 0;  // of `bytes`
};

/// Opens `path` (what: "input deck", "training data", ...) with O_NONBLOCK, refuses anything but a
/// regular file, and returns its size; throws with the path and the problem.
std::uint64_t require_regular_file(const std::string& path, const char* what, std::uint64_t max_bytes);

/// Reads all of the regular file `path` (at most max_bytes), verifying that the bytes read equal the
/// size fstat gave at open and that size and modification time are unchanged afterwards.
/// Test hook: with SAMA_TEST_SHRINK_AFTER_OPEN=<bytes>:<path> in the environment, the file <path> is
/// truncated to that size right after it is opened (the fault "a file shrinks while it is read", deterministic).
FileBytes read_regular_file(const std::string& path, const char* what, std::uint64_t max_bytes);

}  // namespace sama::io
