#pragma once
// Shared by the libFuzzer targets: a private temporary directory (removed at exit) and file writing.
// The readers under test take file names, so every input is written to a file first.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace sama::fuzz {

/// A directory of this process under $TMPDIR (or /tmp), created on first use, removed at exit.
inline const std::string& temp_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sama_fuzz_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("sama fuzz: mkdtemp");
      std::abort();
    }
    static std::string keep;
    keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline std::string temp_file(const std::string& name) { return temp_dir() + "/" + name; }

inline void write_file(const std::string& path, const void* data, std::size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) {
    std::fprintf(stderr, "sama fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// A broken invariant of a successful read: a finding, reported like a crash.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "sama fuzz: FINDING: %s\n", what.c_str());
  std::abort();
}

}  // namespace sama::fuzz
