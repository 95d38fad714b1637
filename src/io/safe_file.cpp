#include "sama/io/safe_file.hpp"

#include "sama/core/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sama::io {

std::uint64_t fnv1a64(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {
const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int open_regular(const std::string& path, const char* what, std::uint64_t max_bytes, struct stat& st) {
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("cannot open {} '{}': {}", what, path, std::strerror(errno));
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot stat {} '{}': {}", what, path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{} '{}' is {}: only regular files are read", what, path, kind_of(st.st_mode));
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    fail("{} '{}' has {} bytes, more than the {} accepted", what, path, static_cast<long long>(st.st_size),
         max_bytes);
  }
  return fd;
}
}  // namespace

std::uint64_t require_regular_file(const std::string& path, const char* what, std::uint64_t max_bytes) {
  struct stat st {};
  Fd f{open_regular(path, what, max_bytes, st)};
  return static_cast<std::uint64_t>(st.st_size);
}

FileBytes read_regular_file(const std::string& path, const char* what, std::uint64_t max_bytes) {
  struct stat st {};
  Fd f{open_regular(path, what, max_bytes, st)};
  if (const char* hook = std::getenv("SAMA_TEST_SHRINK_AFTER_OPEN")) {  // "<bytes>:<path>"
    const std::string h = hook;
    const auto colon = h.find(':');
    if (colon != std::string::npos && h.substr(colon + 1) == path &&
        ::truncate(path.c_str(), std::strtoll(h.substr(0, colon).c_str(), nullptr, 10)) != 0)
      fail("SAMA_TEST_SHRINK_AFTER_OPEN: cannot truncate '{}': {}", path, std::strerror(errno));
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  FileBytes out;
  out.bytes.resize(size);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t r = ::pread(f.fd, out.bytes.data() + got, size - got, static_cast<off_t>(got));
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) fail("cannot read {} '{}': {}", what, path, std::strerror(errno));
    if (r == 0)
      fail("{} '{}' changed while it was read: {} bytes when opened, only {} could be read (truncated or "
           "replaced during the read?); nothing was trained on it",
           what, path, size, got);
    got += static_cast<std::size_t>(r);
  }
  char extra = 0;
  struct stat after {};
  if (::fstat(f.fd, &after) != 0) fail("cannot stat {} '{}': {}", what, path, std::strerror(errno));
  if (after.st_size != st.st_size || after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != st.st_mtim.tv_nsec || ::pread(f.fd, &extra, 1, static_cast<off_t>(size)) > 0)
    fail("{} '{}' changed while it was read ({} bytes when opened, {} after); nothing was trained on it", what,
         path, size, static_cast<long long>(after.st_size));
  out.fnv1a64 = fnv1a64(out.bytes.data(), out.bytes.size());
  return out;
}

}  // namespace sama::io
