#include "sama/io/checkpoint.hpp"

#include "sama/build_info.hpp"
#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/run_files.hpp"
#include "sama/io/safe_file.hpp"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace sama::io {
namespace fs = std::filesystem;

namespace {

template <class T>
const std::vector<T>& lookup(const std::map<std::string, std::vector<T>>& m, const std::string& name,
                             std::size_t expect, const std::string& source) {
  const auto it = m.find(name);
  if (it == m.end()) fail("checkpoint '{}': array '{}' is missing", source, name);
  if (expect != SIZE_MAX && it->second.size() != expect)
    fail("checkpoint '{}': array '{}' has {} values, this run needs {}", source, name, it->second.size(), expect);
  return it->second;
}

/// CRC-32 over the step, the deck and every (name, array) in a fixed order.
std::uint32_t payload_crc(const CheckpointData& c) {
  uLong crc = crc32(0L, Z_NULL, 0);
  auto add = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const Bytef*>(p);
    while (n > 0) {
      const uInt chunk = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
      crc = crc32(crc, b, chunk);
      b += chunk;
      n -= chunk;
    }
  };
  add(&c.step, sizeof(c.step));
  add(c.deck.data(), c.deck.size());
  auto add_map = [&](const auto& m) {
    for (const auto& [name, v] : m) {
      add(name.data(), name.size());
      add(v.data(), v.size() * sizeof(v[0]));
    }
  };
  add_map(c.floats);
  add_map(c.doubles);
  add_map(c.ints);
  return static_cast<std::uint32_t>(crc);
}

std::string file_name_for(long step) { return fmt::format("step_{:012d}.h5", step); }

/// Steps of the step_*.h5 files in dir, newest first.
std::vector<std::pair<long, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<long, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex pattern(R"(step_(\d{12})\.h5)");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, pattern)) out.emplace_back(std::stol(m[1].str()), e.path().string());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

template <class T>
void read_group(hid_t file, const std::string& group, std::map<std::string, std::vector<T>>& into,
                const std::string& path) {
  if (!exists(file, group)) fail("checkpoint '{}': group '/{}' is missing", path, group);
  H5Handle g = open_group(file, group);
  hsize_t n = 0;
  check(H5Gget_num_objs(g, &n), "listing /" + group, path);
  for (hsize_t k = 0; k < n; ++k) {
    char name[512];
    const ssize_t len = H5Gget_objname_by_idx(g, k, name, sizeof(name));
    if (len < 0 || static_cast<std::size_t>(len) >= sizeof(name)) fail("checkpoint '{}': bad name in /{}", path, group);
    into[name] = read_dataset<T>(g, name, nullptr, std::size_t(1) << 31);
  }
}

}  // namespace

const std::vector<float>& CheckpointData::f(const std::string& name, std::size_t expect) const {
  return lookup(floats, name, expect, source);
}
const std::vector<double>& CheckpointData::d(const std::string& name, std::size_t expect) const {
  return lookup(doubles, name, expect, source);
}
const std::vector<std::int64_t>& CheckpointData::i(const std::string& name, std::size_t expect) const {
  return lookup(ints, name, expect, source);
}

std::string checkpoint_dir(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

std::string write_checkpoint(const std::string& dir, const CheckpointData& data, int keep) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory '{}': {}", dir, ec.message());
  auto check_names = [](const auto& m) {
    for (const auto& kv : m)
      SAMA_REQUIRE(!kv.first.empty() && kv.first.find('/') == std::string::npos,
                   "checkpoint array name '{}' must be non-empty and without '/'", kv.first);
  };
  check_names(data.floats);
  check_names(data.doubles);
  check_names(data.ints);
  SAMA_REQUIRE(data.format >= 1 && data.format <= kCheckpointFormat, "checkpoint format {} is not one this sama writes",
               data.format);
  // Leftovers of a writer that was killed mid-write are never loaded (wrong name); clear them here.
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".h5.tmp.") != std::string::npos) fs::remove(e.path(), ec);
  const std::string path = (fs::path(dir) / file_name_for(data.step)).string();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    ScopedErrorSilence quiet;
    H5Handle file = create_file(tmp);
    write_attribute<std::int64_t>(file, "format_version", data.format);
    write_attribute<std::int64_t>(file, "step", data.step);
    write_attribute<std::int64_t>(file, "ranks", data.ranks);
    write_attribute<std::int64_t>(file, "payload_crc32", payload_crc(data));
    write_string_attribute(file, "sama_version", build::version);
    write_string_attribute(file, "git_commit", build::git_commit);
    write_string_attribute(file, "deck", data.deck);
    create_group(file, "float");
    create_group(file, "double");
    create_group(file, "int64");
    for (const auto& [n, v] : data.floats) write_dataset<float>(file, "float/" + n, v.data(), {v.size()}, true);
    for (const auto& [n, v] : data.doubles) write_dataset<double>(file, "double/" + n, v.data(), {v.size()}, true);
    for (const auto& [n, v] : data.ints) write_dataset<std::int64_t>(file, "int64/" + n, v.data(), {v.size()}, true);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flushing", tmp);
    file.close_checked(tmp);
    commit_file(tmp, path);
  } catch (...) {
    fs::remove(tmp, ec);  // a failed write (disk full, ...) leaves no temporary behind
    throw;
  }
  write_file_atomic((fs::path(dir) / "latest").string(), file_name_for(data.step) + "\n");
  // Keep the newest `keep` (at least the one just written and, with keep >= 2, the previous good one).
  const auto all = list_checkpoints(dir);
  for (std::size_t k = static_cast<std::size_t>(std::max(keep, 1)); k < all.size(); ++k)
    fs::remove(all[k].second, ec);
  return path;
}

CheckpointData read_checkpoint(const std::string& path) {
  ScopedErrorSilence quiet;
  CheckpointData c;
  c.source = path;
  H5Handle file = open_file(path);
  const long version = static_cast<long>(read_attribute<std::int64_t>(file, "format_version"));
  if (version > kCheckpointFormat)
    fail("checkpoint '{}' has format version {}, newer than this sama's {}: written by a newer sama", path, version,
         kCheckpointFormat);
  if (version < 1) fail("checkpoint '{}' has an invalid format version {}", path, version);
  c.format = version;
  c.step = static_cast<long>(read_attribute<std::int64_t>(file, "step"));
  c.ranks = static_cast<int>(read_attribute<std::int64_t>(file, "ranks"));
  c.deck = read_string_attribute(file, "deck");
  read_group(file, "float", c.floats, path);
  read_group(file, "double", c.doubles, path);
  read_group(file, "int64", c.ints, path);
  const auto stored = static_cast<std::uint32_t>(read_attribute<std::int64_t>(file, "payload_crc32"));
  const std::uint32_t actual = payload_crc(c);
  if (stored != actual)
    fail("checkpoint '{}' is damaged: payload CRC-32 {:08x} does not match the stored {:08x}", path, actual, stored);
  if (c.step < 0 || c.ranks < 1) fail("checkpoint '{}' has an invalid step {} or rank count {}", path, c.step, c.ranks);
  return c;
}

std::optional<FoundCheckpoint> find_checkpoint(const std::string& dir) {
  FoundCheckpoint found;
  const std::string pointer = (fs::path(dir) / "latest").string();
  std::string named;  // the file `latest` names, when it is well formed and exists
  std::error_code ec;
  if (fs::exists(pointer, ec) || fs::is_symlink(pointer, ec)) {
    std::string name;
    try {
      name = read_regular_file(pointer, "checkpoint pointer", 4096).bytes;  // never /dev/zero or a FIFO
    } catch (const Error& e) {
      found.rejected.push_back(e.what());
    }
    if (!name.empty() && name.back() == '\n') name.pop_back();
    static const std::regex pattern(R"(step_\d{12}\.h5)");
    if (!found.rejected.empty()) {
    } else if (!std::regex_match(name, pattern)) {
      found.rejected.push_back(fmt::format("{}: does not name a checkpoint file", pointer));
    } else if (!fs::exists(fs::path(dir) / name, ec)) {
      found.rejected.push_back(fmt::format("{}: names '{}', which does not exist", pointer, name));
    } else {
      named = name;
    }
  }
  const auto all = list_checkpoints(dir);
  if (all.empty() && found.rejected.empty()) return std::nullopt;
  for (const auto& [step, path] : all) {
    try {
      found.data = read_checkpoint(path);
      if (found.data.step != step)
        fail("checkpoint '{}' holds step {}, but its file name says step {} (renamed or copied?)", path,
             found.data.step, step);
      const std::string chosen = fs::path(path).filename().string();
      if (!named.empty() && named != chosen)
        found.notes.push_back(fmt::format("{} names {}, but the newer {} is good: resuming from the newer one",
                                          pointer, named, chosen));
      return found;
    } catch (const Error& e) {
      found.rejected.push_back(e.what());
    }
  }
  std::string all_problems;
  for (const auto& r : found.rejected) all_problems += "\n  " + r;
  fail("no usable checkpoint in '{}':{}", dir, all_problems);
}

}  // namespace sama::io
