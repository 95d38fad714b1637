// Reads a classification data set from HDF5: /images [N, ...] (uint8 or any float, read as float32)
// and /labels [N] (any integer type).
#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include "sama/io/h5.hpp"
#include "sama/io/safe_file.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace sama::data {

namespace {

constexpr std::uint64_t kMaxBytes = std::uint64_t(1) << 32;  // 4 GiB of pixel data
constexpr std::int64_t kMaxLabel = 65535;
constexpr float kMaxPixel = 1e15f;  // float pixels beyond this overflow the variance (squares, sums)                     // at most 65536 classes

std::string dims_string(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string type_description(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      return fmt::format("{}-bit {} integer", 8 * H5Tget_size(type), is_signed ? "signed" : "unsigned");
    }
    case H5T_FLOAT: return fmt::format("{}-bit float", 8 * H5Tget_size(type));
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    case H5T_TIME: return "time";
    default: return "unknown";
  }
}

io::H5Handle require_dataset(hid_t file, const std::string& path, const std::string& name) {
  if (!io::exists(file, name)) fail("{}: missing dataset {}", path, name);
  return io::open_dataset(file, name);
}

}  // namespace

Dataset read_hdf5(const std::string& path) {
  io::ScopedErrorSilence quiet;
  // The whole file is read once, checked against the file as opened (a file truncated or replaced
  // during the read is an error: HDF5 itself reads past the end of a shrunk file as zeros), and HDF5
  // parses that snapshot in memory (core driver).
  const io::FileBytes bytes = io::read_regular_file(path, "HDF5 data file", kMaxBytes * 2);
  bool signature = false;  // at 0, 512, 1024, 2048, ... (after a user block)
  for (std::size_t at = 0; !signature && at + 8 <= bytes.bytes.size(); at = at ? 2 * at : 512)
    signature = bytes.bytes.compare(at, 8, "\x89HDF\r\n\x1a\n") == 0;
  if (!signature) fail("{}: not an HDF5 file (no HDF5 signature found)", path);
  io::H5Handle fapl = io::check_id(H5Pcreate(H5P_FILE_ACCESS), "creating a property list", path);
  io::check(H5Pset_fapl_core(fapl, 1 << 20, false), "selecting the in-memory driver", path);
  io::check(H5Pset_file_image(fapl, const_cast<char*>(bytes.bytes.data()), bytes.bytes.size()),
            "handing over the file image", path);
  // A name of its own (as H5LTopen_file_image does): the real path may be open in this process already.
  // It lies in the file's directory, so that relative external links resolve as for the file itself;
  // nothing is created there (in-memory driver without a backing store).
  static int image_count = 0;
  const std::string image_name =
      (std::filesystem::path(path).parent_path() / fmt::format(".sama_file_image_{}_{}", ::getpid(), ++image_count))
          .string();
  io::set_display_name(image_name, path);
  io::H5Handle file =
      io::check_id(H5Fopen(image_name.c_str(), H5F_ACC_RDONLY, fapl), "opening the HDF5 file", path);

  io::H5Handle images = require_dataset(file, path, "/images");
  io::H5Handle labels = require_dataset(file, path, "/labels");

  // ---- shapes
  const std::vector<hsize_t> idims = io::dataset_dims(images);
  const std::vector<hsize_t> ldims = io::dataset_dims(labels);
  if (idims.size() < 2)
    fail("{}: /images has rank {} (shape {}), expected [N, ...] with rank >= 2", path, idims.size(),
         dims_string(idims));
  if (ldims.size() != 1)
    fail("{}: /labels has rank {} (shape {}), expected rank 1 ([N])", path, ldims.size(), dims_string(ldims));
  const hsize_t n = idims[0];
  if (n == 0) fail("{}: /images holds no samples (N = 0)", path);
  if (ldims[0] != n)
    fail("{}: N mismatch: /images has {} samples but /labels has {}", path, n, ldims[0]);
  for (std::size_t k = 1; k < idims.size(); ++k)
    if (idims[k] == 0) fail("{}: /images has a zero dimension (shape {})", path, dims_string(idims));

  // ---- types
  io::H5Handle itype = io::check_id(H5Dget_type(images), "reading the type of /images", path);
  io::H5Handle ltype = io::check_id(H5Dget_type(labels), "reading the type of /labels", path);
  const H5T_class_t iclass = H5Tget_class(itype);
  bool as_u8 = false;
  if (iclass == H5T_INTEGER) {
    if (H5Tget_size(itype) != 1 || H5Tget_sign(itype) != H5T_SGN_NONE)
      fail("{}: unsupported type for /images: {} (need 8-bit unsigned integer or float)", path,
           type_description(itype));
    as_u8 = true;
  } else if (iclass != H5T_FLOAT) {
    fail("{}: unsupported type class for /images: {} (need 8-bit unsigned integer or float)", path,
         type_description(itype));
  }
  if (H5Tget_class(ltype) != H5T_INTEGER)
    fail("{}: unsupported type class for /labels: {} (need an integer type)", path, type_description(ltype));

  // ---- size guard before allocating
  const std::uint64_t elem = as_u8 ? 1 : sizeof(float);
  std::uint64_t features = 1;
  for (std::size_t k = 1; k < idims.size(); ++k) {
    if (idims[k] > kMaxBytes || features > kMaxBytes / idims[k])
      fail("{}: /images per-sample shape {} is too large", path, dims_string(idims));
    features *= idims[k];
  }
  // The labels count too: read as int64, kept as int32. Without them in the guard, a tiny chunked
  // file with [2^32, 1] images made the reader allocate 4 + 32 + 16 GiB.
  constexpr std::uint64_t kLabelBytes = sizeof(std::int64_t) + sizeof(std::int32_t);
  if (n > kMaxBytes / kLabelBytes || features > (kMaxBytes / n - kLabelBytes) / elem)
    fail("{}: /images of shape {} is too large (more than {} bytes with the labels)", path, dims_string(idims),
         kMaxBytes);

  Dataset d;
  d.source = path;
  d.checksum = fmt::format("fnv1a64:{:016x}", bytes.fnv1a64);
  d.n = static_cast<std::size_t>(n);
  d.shape.assign(idims.begin() + 1, idims.end());
  const std::size_t total = static_cast<std::size_t>(n * features);
  const std::size_t nf = static_cast<std::size_t>(features);

  // ---- pixels
  if (as_u8) {
    d.u8.resize(total);
    io::check(H5Dread(images, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.u8.data()),
              "reading /images", path);
  } else {
    d.f32.resize(total);
    io::check(H5Dread(images, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.f32.data()),
              "reading /images", path);
    for (std::size_t i = 0; i < d.n; ++i) {
      const float* row = d.f32.data() + i * nf;
      bool ok = true;
      for (std::size_t j = 0; j < nf; ++j) ok &= std::isfinite(row[j]) && std::fabs(row[j]) <= kMaxPixel;
      if (!ok) {
        for (std::size_t j = 0; j < nf; ++j)
          if (!std::isfinite(row[j]))
            fail("{}: /images sample {} has a non-finite pixel ({}) at feature {}", path, i, row[j], j);
          else if (std::fabs(row[j]) > kMaxPixel)
            fail("{}: /images sample {} has a pixel of {:g} at feature {}, outside the accepted range [-{:g}, {:g}] "
                 "(its square overflows the normalisation); rescale the data",
                 path, i, row[j], j, kMaxPixel, kMaxPixel);
      }
    }
  }

  // ---- labels
  std::vector<std::int64_t> raw(d.n);
  io::check(H5Dread(labels, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "reading /labels",
            path);
  d.labels.resize(d.n);
  std::int64_t max_label = 0;
  for (std::size_t i = 0; i < d.n; ++i) {
    const std::int64_t v = raw[i];
    if (v < 0) fail("{}: /labels has a negative label {} at sample {}", path, v, i);
    if (v > kMaxLabel)
      fail("{}: /labels has label {} at sample {}: too large (at most {}, i.e. {} classes)", path, v, i,
           kMaxLabel, kMaxLabel + 1);
    if (v > max_label) max_label = v;
    d.labels[i] = static_cast<std::int32_t>(v);
  }
  d.num_classes = static_cast<int>(max_label + 1);
  return d;
}

void probe_hdf5_in_child(const std::string& path) {
  probe_hdf5_in_child(path, [](const std::string& p) { read_hdf5(p); });
}

void probe_hdf5_in_child(const std::string& path, const std::function<void(const std::string&)>& reader) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return;  // no child: read in-process as usual
  if (pid == 0) {
    // Default actions, so that a crash here is a plain signal (no inherited MPI back-trace handler).
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, SIG_DFL);
    ::unsetenv("SAMA_TEST_SHRINK_AFTER_OPEN");  // the test hook acts on the real read only
    int code = 0;
    try {
      reader(path);
    } catch (...) {
      code = 1;  // a clean error: the parent reads the file and reports it
    }
    ::_exit(code);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return;
  }
  if (WIFSIGNALED(status))
    fail("{}: the HDF5 library crashed reading this file (signal {}): its metadata is corrupt", path,
         WTERMSIG(status));
}

}  // namespace sama::data
