#include "sama/io/run_files.hpp"

#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>

namespace sama::io {
namespace fs = std::filesystem;

namespace {
const char* const kOutputs[] = {"summary.json", "metrics.csv", "weights.h5", "scores.h5", "deck.resolved.toml"};

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) fail("{}: cannot open for fsync: {}", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !directory) fail("{}: fsync failed: {}", path, std::strerror(err));
}
}  // namespace

RunDirInfo inspect_run_dir(const std::string& dir) {
  std::error_code ec;
  RunDirInfo info;
  if (fs::exists(fs::path(dir) / "summary.json", ec)) {
    info.state = RunDirState::completed;
    info.detail = "a completed run (summary.json)";
    return info;
  }
  long newest = -1;
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 20 && name.rfind("step_", 0) == 0 && name.substr(17) == ".h5")
      newest = std::max(newest, std::atol(name.substr(5, 12).c_str()));
  }
  std::vector<std::string> found;
  if (newest >= 0) found.push_back(fmt::format("checkpoints up to step {}", newest));
  for (const char* name : kOutputs)
    if (fs::exists(fs::path(dir) / name, ec)) found.push_back(name);
  if (!found.empty()) {
    info.state = RunDirState::interrupted;
    std::string list;
    for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
    info.detail = "an interrupted run (" + list + "; no summary.json)";
  }
  return info;
}

void check_run_dir(const std::string& dir, const std::vector<std::string>& inputs, bool resuming, bool overwrite) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    fail("output directory '{}' exists and is not a directory", dir);
  for (const auto& in : inputs) {
    if (in.empty() || !fs::exists(in, ec)) continue;
    for (const char* name : kOutputs) {
      const fs::path out = fs::path(dir) / name;
      if (fs::exists(out, ec) && fs::equivalent(out, in, ec))
        fail("output file '{}' would overwrite the input '{}'; choose another --out", out.string(), in);
    }
  }
  if (resuming || overwrite) return;
  const RunDirInfo info = inspect_run_dir(dir);
  if (info.state == RunDirState::completed)
    fail("output directory '{}' already holds {}; choose another --out, extend it with --resume {} and a larger "
         "train.epochs/train.steps, or pass --overwrite to replace it",
         dir, info.detail, dir);
  if (info.state == RunDirState::interrupted)
    fail("output directory '{}' holds {}; continue it with --resume auto (or --resume {}), or pass --overwrite to "
         "discard it",
         dir, info.detail, dir);
}

namespace {
std::string lock_holder(int fd) {
  char buf[512] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("an unknown process");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

RunDirLock::RunDirLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create output directory '{}': {}", dir, ec.message());
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) fail("cannot open the run directory lock '{}': {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = lock_holder(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail("output directory '{}' is in use by another sama run ({}; lock {}): wait for it to end, or stop it, "
           "or choose another --out",
           dir, holder, path);
    fail("cannot lock the run directory '{}' ({}): {}", dir, path, std::strerror(err));
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  char since[64] = {};
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &utc);
  const std::string who = fmt::format("pid {} on host {}, since {}\n", ::getpid(), host, since);
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size()))
    fail("cannot write the run directory lock '{}': {}", path, std::strerror(errno));
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock (the file stays: removing it would race a new locker)
}

RunDirLock& RunDirLock::operator=(RunDirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const fs::path& d : {fs::path(dir), fs::path(dir) / "checkpoints"}) {
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string name = e.path().filename().string();
      const bool partial = name.size() > 8 && name.compare(name.size() - 8, 8, ".partial") == 0;
      if ((partial || name.find(".tmp.") != std::string::npos) && e.is_regular_file(ec)) {
        fs::remove(e.path(), ec);
        removed.push_back(e.path().string());
      }
    }
  }
  return removed;
}

void prepare_run_dir(const std::string& dir, bool resuming) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create output directory '{}': {}", dir, ec.message());
  if (resuming) return;  // keep metrics.csv (truncated to the checkpoint later) and the checkpoints
  for (const char* name : kOutputs) fs::remove(fs::path(dir) / name, ec);
  fs::remove_all(fs::path(dir) / "checkpoints", ec);
  for (const auto& e : fs::directory_iterator(dir, ec)) {  // the summaries of an extended run
    const std::string name = e.path().filename().string();
    if (name.rfind("summary.step_", 0) == 0) fs::remove(e.path(), ec);
  }
}

void commit_file(const std::string& tmp_path, const std::string& path) {
  fsync_path(tmp_path, false);
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0)
    fail("cannot rename '{}' to '{}': {}", tmp_path, path, std::strerror(errno));
  const fs::path parent = fs::path(path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) fail("cannot create '{}': {}", tmp, std::strerror(errno));
      out << content;
      out.flush();
      if (!out) fail("cannot write '{}': {}", tmp, std::strerror(errno));
      out.close();
      if (!out) fail("cannot write '{}': {}", tmp, std::strerror(errno));
    }
    commit_file(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // a failed write leaves nothing behind
    throw;
  }
}

MetricsWriter::MetricsWriter(const std::string& path, std::vector<std::string> columns, bool append)
    : path_(path), columns_(std::move(columns)) {
  std::string header;
  for (std::size_t i = 0; i < columns_.size(); ++i) header += (i ? "," : "") + columns_[i];
  if (append) {
    std::ifstream in(path);
    std::string first;
    if (!in || !std::getline(in, first)) fail("cannot continue metrics file '{}': it is missing or empty", path);
    if (first != header) fail("cannot continue metrics file '{}': its columns differ from this version's", path);
    out_.open(path, std::ios::app);
  } else {
    out_.open(path, std::ios::trunc);
  }
  if (!out_) fail("cannot open metrics file '{}': {}", path, std::strerror(errno));
  if (!append) out_ << header << "\n";
  out_.flush();
}

void truncate_metrics(const std::string& path, long max_step) {
  std::ifstream in(path);
  if (!in) fail("cannot read metrics file '{}' to continue it: {}", path, std::strerror(errno));
  std::string line, out;
  if (!std::getline(in, line)) fail("metrics file '{}' is empty", path);
  out = line + "\n";
  const auto columns = std::count(out.begin(), out.end(), ',');
  while (std::getline(in, line)) {
    if (std::count(line.begin(), line.end(), ',') != columns) break;  // a torn last line from a killed writer
    try {
      if (std::stol(line.substr(0, line.find(','))) <= max_step) out += line + "\n";
    } catch (const std::exception&) {
      break;
    }
  }
  write_file_atomic(path, out);
}

void MetricsWriter::row(const std::map<std::string, double>& values) {
  for (const auto& [k, v] : values) {
    (void)v;
    if (std::find(columns_.begin(), columns_.end(), k) == columns_.end())
      fail("metrics file '{}': no column named '{}'", path_, k);
  }
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    if (i) out_ << ',';
    auto it = values.find(columns_[i]);
    if (it != values.end() && std::isfinite(it->second)) out_ << fmt::format("{:.9g}", it->second);
    else if (it != values.end()) out_ << "nan";
  }
  out_ << '\n';
  out_.flush();
  if (!out_) fail("cannot write metrics file '{}': {}", path_, std::strerror(errno));
}

void write_sample_table(const std::string& path, const SampleTable& t, const std::map<std::string, std::string>& attrs) {
  const std::size_t n = t.sample_id.size();
  SAMA_REQUIRE(t.meta_weight.size() == n && t.log_weight.size() == n && t.log_weight_envelope.size() == n &&
                   t.loss.size() == n && t.label_observed.size() == n &&
                   t.label_true.size() == n && t.is_noisy.size() == n,
               "{}: sample table columns have different lengths", path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    ScopedErrorSilence quiet;
    H5Handle file = create_file(tmp);
    write_vector(file, "sample_id", t.sample_id);
    write_vector(file, "meta_weight", t.meta_weight);
    write_vector(file, "log_weight", t.log_weight);
    write_vector(file, "log_weight_envelope", t.log_weight_envelope);
    write_vector(file, "loss", t.loss);
    write_vector(file, "label_observed", t.label_observed);
    write_vector(file, "label_true", t.label_true);
    write_vector(file, "is_noisy", t.is_noisy);
    for (const auto& [k, v] : attrs) write_string_attribute(file, k, v);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush", tmp);
    file.close_checked(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // a failed write leaves nothing behind
    throw;
  }
  commit_file(tmp, path);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<int>(c));
        else out += c;
    }
  }
  return out + "\"";
}

void JsonObject::set(const std::string& key, double value) {
  fields_.emplace_back(key, std::isfinite(value) ? fmt::format("{:.9g}", value) : "null");
}
void JsonObject::set(const std::string& key, long value) { fields_.emplace_back(key, std::to_string(value)); }
void JsonObject::set(const std::string& key, const std::string& value) { fields_.emplace_back(key, json_string(value)); }
void JsonObject::set_null(const std::string& key) { fields_.emplace_back(key, "null"); }

std::string JsonObject::str() const {
  std::string out = "{\n";
  for (std::size_t i = 0; i < fields_.size(); ++i)
    out += "  " + json_string(fields_[i].first) + ": " + fields_[i].second + (i + 1 < fields_.size() ? ",\n" : "\n");
  return out + "}\n";
}

}  // namespace sama::io
