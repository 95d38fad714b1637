// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain, read through zlib.
//
// Header: magic = 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 dimensions, then the
// payload (row-major). Only type 0x08 (unsigned byte) is supported.
#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"
#include "sama/io/safe_file.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace sama::data {

namespace {

constexpr std::uint64_t kMaxPayload = std::uint64_t(1) << 32;  // 4 GiB
constexpr int kMaxDims = 8;
constexpr std::uint64_t kFirstChunk = std::uint64_t(1) << 26;  // 64 MiB: Fashion-MNIST in one read

/// A gzFile that closes itself; every read checks zlib's error state.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail("{}: cannot open IDX file: it is a directory", path);
    io::require_regular_file(path, "IDX file", kMaxPayload);  // a FIFO or device is refused, never waited on
    errno = 0;
    f_ = gzopen(path.c_str(), "rb");
    if (f_ == nullptr) {
      const int e = errno;
      fail("{}: cannot open IDX file: {}", path, e != 0 ? std::strerror(e) : "out of memory in zlib");
    }
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() {
    if (f_ != nullptr) gzclose(f_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Reads up to `len` bytes; returns how many were read (fewer only at the end of the data).
  std::uint64_t read(void* buf, std::uint64_t len) {
    auto* p = static_cast<unsigned char*>(buf);
    std::uint64_t got = 0;
    while (got < len) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::uint64_t>(len - got, 1u << 30));
      errno = 0;
      const int r = gzread(f_, p + got, chunk);
      check_error();
      if (r < 0) fail("{}: read error", path_);
      if (r == 0) break;
      got += static_cast<std::uint64_t>(r);
    }
    return got;
  }

 private:
  void check_error() {
    int err = Z_OK;
    const char* m = gzerror(f_, &err);
    if (err == Z_OK || err == Z_STREAM_END) return;
    if (err == Z_ERRNO) fail("{}: read error: {}", path_, std::strerror(errno != 0 ? errno : EIO));
    // zlib prefixes its message with "<path>: "; the path is in our message already.
    std::string msg = m != nullptr ? m : "";
    if (msg.rfind(path_ + ": ", 0) == 0) msg.erase(0, path_.size() + 2);
    if (err == Z_BUF_ERROR)
      fail("{}: truncated gzip stream ({})", path_, msg.empty() ? "unexpected end of file" : msg);
    fail("{}: corrupt gzip stream ({})", path_, msg.empty() ? "zlib error" : msg);
  }

  std::string path_;
  gzFile f_ = nullptr;
};

std::uint32_t be32(const unsigned char* b) {
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
         std::uint32_t(b[3]);
}

struct IdxContent {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

std::string dims_string(const std::vector<std::uint32_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

/// Reads one IDX file of uint8 data whose number of dimensions lies in [min_dims, max_dims].
IdxContent read_idx_file(const std::string& path, const char* what, int min_dims, int max_dims) {
  GzReader in(path);
  unsigned char magic[4];
  const std::uint64_t m = in.read(magic, 4);
  if (m == 0) fail("{}: empty file (expected an IDX {} file)", path, what);
  if (m < 4) fail("{}: truncated header: {} bytes, an IDX header needs at least 4", path, m);
  if (magic[0] != 0 || magic[1] != 0)
    fail("{}: bad magic number 0x{:02x}{:02x}{:02x}{:02x}: not an IDX file", path, magic[0], magic[1],
         magic[2], magic[3]);
  if (magic[2] != 0x08)
    fail("{}: unsupported IDX data type 0x{:02x} (bad type byte in magic 0x{:08x}); only 0x08 (unsigned "
         "byte) is supported",
         path, magic[2], be32(magic));
  const int ndims = magic[3];
  if (ndims < min_dims || ndims > max_dims) {
    if (min_dims == max_dims)
      fail("{}: bad magic number 0x{:08x}: {} dimensions, an IDX {} file has {}", path, be32(magic), ndims,
           what, min_dims);
    fail("{}: bad magic number 0x{:08x}: {} dimensions, an IDX {} file has {} to {}", path, be32(magic),
         ndims, what, min_dims, max_dims);
  }

  IdxContent c;
  std::vector<unsigned char> hdr(4 * static_cast<std::size_t>(ndims));
  const std::uint64_t h = in.read(hdr.data(), hdr.size());
  if (h < hdr.size())
    fail("{}: truncated header: {} dimensions need {} bytes after the magic number, file holds {}", path,
         ndims, hdr.size(), h);
  std::uint64_t total = 1;
  for (int k = 0; k < ndims; ++k) c.dims.push_back(be32(&hdr[4 * k]));
  for (int k = 0; k < ndims; ++k) {
    const std::uint32_t dk = c.dims[k];
    if (dk == 0) fail("{}: zero dimension in header (dimensions {})", path, dims_string(c.dims));
    if (total > kMaxPayload / dk)
      fail("{}: dimensions {} are too large (more than {} bytes)", path, dims_string(c.dims), kMaxPayload);
    total *= dk;
  }

  // The buffer grows with the data actually read (doubling, from kFirstChunk): a short file whose
  // header promises gigabytes must not allocate them before it is found truncated.
  std::uint64_t got = 0;
  while (got < total) {
    const std::uint64_t want = std::min(total - got, std::max(got, kFirstChunk));
    c.data.resize(static_cast<std::size_t>(got + want));
    const std::uint64_t r = in.read(c.data.data() + got, want);
    got += r;
    if (r < want) break;
  }
  if (got < total)
    fail("{}: truncated: header promises {} bytes ({}), file holds {}", path, total, dims_string(c.dims), got);
  // Anything after the payload means the dimensions lie.
  unsigned char extra[4096];
  std::uint64_t more = 0;
  for (std::uint64_t r; (r = in.read(extra, sizeof extra)) > 0;) {
    more += r;
    if (more >= (std::uint64_t(1) << 26)) break;  // enough to say it is wrong
  }
  if (more > 0)
    fail("{}: {}{} trailing bytes after the {} bytes the header promises ({}): wrong dimensions", path,
         more >= (std::uint64_t(1) << 26) ? "at least " : "", more, total, dims_string(c.dims));
  return c;
}

bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  IdxContent img = read_idx_file(images_path, "image", 2, kMaxDims);
  IdxContent lab = read_idx_file(labels_path, "label", 1, 1);
  const std::uint32_t n = img.dims[0];
  if (lab.dims[0] != n)
    fail("{}: label count mismatch: {} labels, but {} holds {} images", labels_path, lab.dims[0], images_path,
         n);

  Dataset d;
  d.source = images_path + " + " + labels_path;
  // Provenance (the gzip CRC and the size checks above guard the integrity of what was decoded).
  d.checksum = fmt::format("fnv1a64:{:016x}+{:016x}", io::read_regular_file(images_path, "IDX file", kMaxPayload).fnv1a64,
                           io::read_regular_file(labels_path, "IDX file", kMaxPayload).fnv1a64);
  d.n = n;
  d.shape.assign(img.dims.begin() + 1, img.dims.end());
  d.u8 = std::move(img.data);
  d.labels.resize(n);
  int max_label = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const int v = lab.data[i];  // uint8: always < 256 classes
    d.labels[i] = v;
    max_label = std::max(max_label, v);
  }
  d.num_classes = max_label + 1;
  return d;
}

Dataset read_fashion_mnist(const std::string& dir, bool train) {
  namespace fs = std::filesystem;
  const std::string prefix = train ? "train" : "t10k";
  const std::string img_name = prefix + "-images-idx3-ubyte";
  const std::string lab_name = prefix + "-labels-idx1-ubyte";
  std::vector<std::string> missing;
  auto locate = [&](const std::string& name) {
    const fs::path gz = fs::path(dir) / (name + ".gz");
    if (is_file(gz)) return gz.string();
    const fs::path plain = fs::path(dir) / name;
    if (is_file(plain)) return plain.string();
    missing.push_back(name + ".gz");
    return std::string();
  };
  const std::string img = locate(img_name);
  const std::string lab = locate(lab_name);
  if (!missing.empty()) {
    std::error_code ec;
    const bool dir_ok = fs::is_directory(dir, ec);
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    fail("{}: Fashion-MNIST {} set not found: {} {} (expected {}.gz and {}.gz, or the same without .gz). "
         "On Debian install the package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)",
         dir, train ? "training" : "test", dir_ok ? "missing" : "directory does not exist; missing",
         list, img_name, lab_name);
  }
  return read_idx(img, lab);
}

}  // namespace sama::data
