// RAII helpers over the HDF5 C API; see include/sama/io/h5.hpp.
#include "sama/io/h5.hpp"
#include "sama/io/safe_file.hpp"

#include "sama/core/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <type_traits>

namespace sama::io {

namespace {

template <class>
inline constexpr bool dependent_false = false;

struct WalkState {
  std::string outer;  // the API-level description
  std::string inner;  // the most specific one
};

herr_t walk_cb(unsigned n, const H5E_error2_t* err, void* data) {
  auto* st = static_cast<WalkState*>(data);
  // Walking upward, entry 0 is where the error was detected; the last one is the API function.
  if (err != nullptr && err->desc != nullptr) {
    if (n == 0) st->inner = err->desc;
    st->outer = err->desc;
  }
  return 0;
}

std::string with_message(const std::string& msg) {
  return msg.empty() ? std::string() : ": " + msg;
}

/// Splits "a/b/c" (leading/trailing/double slashes ignored) into its components.
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  return parts;
}

std::size_t checked_product(const std::vector<hsize_t>& dims, std::size_t max_elements,
                            const std::string& what, const std::string& file) {
  for (hsize_t d : dims)
    if (d == 0) return 0;
  std::size_t n = 1;
  bool too_many = false;
  for (hsize_t d : dims) {
    if (d != 0 && n > max_elements / d) too_many = true;
    else n *= static_cast<std::size_t>(d);
  }
  if (too_many || n > max_elements) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
    fail("{}: {} of shape {} holds more than the limit of {} values", file, what, s, max_elements);
  }
  return n;
}

H5Handle open_attribute(hid_t obj, const std::string& name, const std::string& file) {
  const htri_t ex = H5Aexists(obj, name.c_str());
  check(ex, "checking for attribute '" + name + "'", file);
  if (ex == 0) fail("{}: missing attribute '{}'", file, name);
  return check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute '" + name + "'", file);
}

hssize_t attribute_points(hid_t attr, const std::string& name, const std::string& file) {
  H5Handle space = check_id(H5Aget_space(attr), "reading the dataspace of attribute '" + name + "'", file);
  const hssize_t np = H5Sget_simple_extent_npoints(space);
  check(static_cast<herr_t>(np < 0 ? -1 : 0), "reading the size of attribute '" + name + "'", file);
  return np;
}

void delete_attribute_if_present(hid_t obj, const std::string& name, const std::string& file) {
  const htri_t ex = H5Aexists(obj, name.c_str());
  check(ex, "checking for attribute '" + name + "'", file);
  if (ex > 0) check(H5Adelete(obj, name.c_str()), "replacing attribute '" + name + "'", file);
}

}  // namespace

// ------------------------------------------------------------------------------------ handle

void H5Handle::close_checked(const std::string& file) {
  if (id_ < 0) return;
  ScopedErrorSilence quiet;
  const hid_t id = release();
  if (H5Fclose(id) < 0) fail("{}: closing the HDF5 file failed: {}", file, last_error());
}

void H5Handle::reset(hid_t id) noexcept {
  if (id_ >= 0) {
    ScopedErrorSilence quiet;
    switch (H5Iget_type(id_)) {
      case H5I_FILE: H5Fclose(id_); break;
      case H5I_GROUP: H5Gclose(id_); break;
      case H5I_DATATYPE: H5Tclose(id_); break;
      case H5I_DATASPACE: H5Sclose(id_); break;
      case H5I_DATASET: H5Dclose(id_); break;
      case H5I_ATTR: H5Aclose(id_); break;
      case H5I_GENPROP_LST: H5Pclose(id_); break;
      default: H5Idec_ref(id_); break;
    }
  }
  id_ = id;
}

// ------------------------------------------------------------------------------------ errors

std::string last_error() {
  WalkState st;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &st);
  if (st.outer.empty() || st.outer == st.inner) return st.inner;
  if (st.inner.empty()) return st.outer;
  return st.outer + " (" + st.inner + ")";
}

herr_t check(herr_t status, const std::string& op, const std::string& file) {
  if (status < 0) fail("{}: {} failed{}", file, op, with_message(last_error()));
  return status;
}

H5Handle check_id(hid_t id, const std::string& op, const std::string& file) {
  if (id < 0) fail("{}: {} failed{}", file, op, with_message(last_error()));
  return H5Handle(id);
}

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

ScopedErrorSilence::ScopedErrorSilence() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}
ScopedErrorSilence::~ScopedErrorSilence() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

namespace {
std::map<std::string, std::string>& display_names() {
  static std::map<std::string, std::string> names;
  return names;
}
}  // namespace

void set_display_name(const std::string& internal, const std::string& shown) { display_names()[internal] = shown; }

std::string file_name(hid_t loc) {
  ScopedErrorSilence quiet;
  const ssize_t len = H5Fget_name(loc, nullptr, 0);
  if (len <= 0) return "<HDF5 file>";
  std::string s(static_cast<std::size_t>(len) + 1, '\0');
  if (H5Fget_name(loc, s.data(), s.size()) < 0) return "<HDF5 file>";
  s.resize(static_cast<std::size_t>(len));
  const auto it = display_names().find(s);
  return it != display_names().end() ? it->second : s;
}

// ------------------------------------------------------------------------------------ files

H5Handle open_file(const std::string& path, bool writable, hid_t fapl) {
  ScopedErrorSilence quiet;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("{}: cannot open HDF5 file: it is a directory", path);
  // Only a regular file (a FIFO or a device would block or never end), opened without blocking.
  require_regular_file(path, "HDF5 file", std::uint64_t(1) << 40);
  if (writable) {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    if (f == nullptr) fail("{}: cannot open HDF5 file: {}", path, std::strerror(errno));
    std::fclose(f);
  }
  const htri_t is = H5Fis_hdf5(path.c_str());
  if (is == 0) fail("{}: not an HDF5 file (no HDF5 signature found)", path);
  check(is, "checking the HDF5 signature", path);
  return check_id(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl),
                  "opening the HDF5 file", path);
}

H5Handle create_file(const std::string& path, hid_t fapl) {
  ScopedErrorSilence quiet;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("{}: cannot create HDF5 file: it is a directory", path);
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    fail("{}: cannot create HDF5 file: directory {} does not exist", path, parent.string());
  return check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "creating the HDF5 file",
                  path);
}

// ------------------------------------------------------------------------------------ objects

bool exists(hid_t loc, const std::string& path) {
  ScopedErrorSilence quiet;
  std::string prefix = (!path.empty() && path[0] == '/') ? "/" : "";
  for (const auto& part : split_path(path)) {
    prefix += part;
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    prefix += "/";
  }
  return true;
}

H5Handle open_group(hid_t loc, const std::string& name) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(loc);
  if (!exists(loc, name)) fail("{}: missing group '{}'", file, name);
  return check_id(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "opening group '" + name + "'", file);
}

H5Handle open_dataset(hid_t loc, const std::string& name) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(loc);
  if (!exists(loc, name)) fail("{}: missing dataset '{}'", file, name);
  return check_id(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), "opening dataset '" + name + "'", file);
}

H5Handle create_group(hid_t loc, const std::string& name) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(loc);
  if (exists(loc, name))
    return check_id(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "opening group '" + name + "'", file);
  H5Handle lcpl = check_id(H5Pcreate(H5P_LINK_CREATE), "creating a property list", file);
  check(H5Pset_create_intermediate_group(lcpl, 1), "setting a property list", file);
  H5Handle gcpl = check_id(H5Pcreate(H5P_GROUP_CREATE), "creating a property list", file);
  check(H5Pset_obj_track_times(gcpl, 0), "setting a property list", file);
  return check_id(H5Gcreate2(loc, name.c_str(), lcpl, gcpl, H5P_DEFAULT), "creating group '" + name + "'", file);
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(dset);
  H5Handle space = check_id(H5Dget_space(dset), "reading a dataspace", file);
  const int rank = H5Sget_simple_extent_ndims(space);
  check(rank < 0 ? -1 : 0, "reading the rank of a dataspace", file);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "reading dimensions", file);
  return dims;
}

// ------------------------------------------------------------------------------------ typed I/O

template <class T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  else static_assert(dependent_false<T>, "sama::io: unsupported HDF5 element type");
}

template <class T>
void write_dataset(hid_t loc, const std::string& name, const T* data, const std::vector<hsize_t>& dims,
                   bool checksummed) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(loc);
  const std::string what = "dataset '" + name + "'";
  const std::size_t count = checked_product(dims, std::numeric_limits<std::size_t>::max() / sizeof(T), what, file);
  if (exists(loc, name)) check(H5Ldelete(loc, name.c_str(), H5P_DEFAULT), "replacing " + what, file);
  H5Handle space = dims.empty()
                       ? check_id(H5Screate(H5S_SCALAR), "creating a dataspace", file)
                       : check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                  "creating a dataspace for " + what, file);
  H5Handle lcpl = check_id(H5Pcreate(H5P_LINK_CREATE), "creating a property list", file);
  check(H5Pset_create_intermediate_group(lcpl, 1), "setting a property list", file);
  H5Handle dcpl = check_id(H5Pcreate(H5P_DATASET_CREATE), "creating a property list", file);
  // No modification times in the file: the same data give the same bytes (bitwise-comparable outputs).
  check(H5Pset_obj_track_times(dcpl, 0), "setting a property list", file);
  if (checksummed && !dims.empty() && count > 0) {
    std::vector<hsize_t> chunk(dims);
    // Chunks of at most 2^16 elements along the first dimension (whole rows).
    const hsize_t row = count / dims[0];
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(dims[0], (hsize_t(1) << 16) / std::max<hsize_t>(row, 1)));
    check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "setting chunks for " + what, file);
    check(H5Pset_fletcher32(dcpl), "setting the Fletcher32 filter for " + what, file);
  }
  H5Handle dset = check_id(H5Dcreate2(loc, name.c_str(), native_type<T>(), space, lcpl, dcpl, H5P_DEFAULT),
                           "creating " + what, file);
  if (count > 0) {
    if (data == nullptr) fail("{}: writing {}: no data given for {} values", file, what, count);
    check(H5Dwrite(dset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "writing " + what, file);
  }
}

template <class T>
std::vector<T> read_dataset(hid_t loc, const std::string& name, std::vector<hsize_t>* dims,
                            std::size_t max_elements) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(loc);
  const std::string what = "dataset '" + name + "'";
  H5Handle dset = open_dataset(loc, name);
  const std::vector<hsize_t> d = dataset_dims(dset);
  const std::size_t count = checked_product(d, max_elements, what, file);
  std::vector<T> out(count);
  if (count > 0)
    check(H5Dread(dset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "reading " + what, file);
  if (dims != nullptr) *dims = d;
  return out;
}

template <class T>
void write_attribute(hid_t obj, const std::string& name, T value) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(obj);
  delete_attribute_if_present(obj, name, file);
  H5Handle space = check_id(H5Screate(H5S_SCALAR), "creating a dataspace", file);
  H5Handle attr = check_id(H5Acreate2(obj, name.c_str(), native_type<T>(), space, H5P_DEFAULT, H5P_DEFAULT),
                           "creating attribute '" + name + "'", file);
  check(H5Awrite(attr, native_type<T>(), &value), "writing attribute '" + name + "'", file);
}

template <class T>
T read_attribute(hid_t obj, const std::string& name) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(obj);
  H5Handle attr = open_attribute(obj, name, file);
  const hssize_t np = attribute_points(attr, name, file);
  if (np != 1) fail("{}: attribute '{}' holds {} values, expected one", file, name, np);
  T value{};
  check(H5Aread(attr, native_type<T>(), &value), "reading attribute '" + name + "'", file);
  return value;
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(obj);
  delete_attribute_if_present(obj, name, file);
  H5Handle type = check_id(H5Tcopy(H5T_C_S1), "creating a string type", file);
  check(H5Tset_size(type, value.size() + 1), "creating a string type", file);
  check(H5Tset_strpad(type, H5T_STR_NULLTERM), "creating a string type", file);
  H5Handle space = check_id(H5Screate(H5S_SCALAR), "creating a dataspace", file);
  H5Handle attr = check_id(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                           "creating attribute '" + name + "'", file);
  check(H5Awrite(attr, type, value.c_str()), "writing attribute '" + name + "'", file);
}

std::string read_string_attribute(hid_t obj, const std::string& name) {
  ScopedErrorSilence quiet;
  const std::string file = file_name(obj);
  H5Handle attr = open_attribute(obj, name, file);
  const hssize_t np = attribute_points(attr, name, file);
  if (np != 1) fail("{}: attribute '{}' holds {} values, expected one string", file, name, np);
  H5Handle ftype = check_id(H5Aget_type(attr), "reading the type of attribute '" + name + "'", file);
  if (H5Tget_class(ftype) != H5T_STRING) fail("{}: attribute '{}' is not a string", file, name);
  const htri_t vlen = H5Tis_variable_str(ftype);
  check(vlen, "reading the type of attribute '" + name + "'", file);
  if (vlen > 0) {
    H5Handle mtype = check_id(H5Tcopy(H5T_C_S1), "creating a string type", file);
    check(H5Tset_size(mtype, H5T_VARIABLE), "creating a string type", file);
    // The file's character set (h5py writes UTF-8): HDF5 does not convert between ASCII and UTF-8.
    check(H5Tset_cset(mtype, H5Tget_cset(ftype)), "creating a string type", file);
    char* p = nullptr;
    check(H5Aread(attr, mtype, &p), "reading attribute '" + name + "'", file);
    std::string s = p != nullptr ? std::string(p) : std::string();
    if (p != nullptr) H5free_memory(p);
    return s;
  }
  const std::size_t size = H5Tget_size(ftype);
  if (size == 0) fail("{}: attribute '{}' has a string type of size 0", file, name);
  H5Handle mtype = check_id(H5Tcopy(ftype), "creating a string type", file);
  std::vector<char> buf(size + 1, '\0');
  check(H5Aread(attr, mtype, buf.data()), "reading attribute '" + name + "'", file);
  return std::string(buf.data(), ::strnlen(buf.data(), size));
}

#define SAMA_H5_INSTANTIATE(T)                                                                       \
  template hid_t native_type<T>();                                                                   \
  template void write_dataset<T>(hid_t, const std::string&, const T*, const std::vector<hsize_t>&, bool); \
  template std::vector<T> read_dataset<T>(hid_t, const std::string&, std::vector<hsize_t>*,          \
                                          std::size_t);                                              \
  template void write_attribute<T>(hid_t, const std::string&, T);                                    \
  template T read_attribute<T>(hid_t, const std::string&);

SAMA_H5_INSTANTIATE(float)
SAMA_H5_INSTANTIATE(double)
SAMA_H5_INSTANTIATE(std::int32_t)
SAMA_H5_INSTANTIATE(std::int64_t)
SAMA_H5_INSTANTIATE(std::uint8_t)
#undef SAMA_H5_INSTANTIATE

}  // namespace sama::io
