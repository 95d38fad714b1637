#pragma once
// A thin RAII layer over the HDF5 C API, shared by the data reader and the output writers.
//
// Every failing call throws sama::Error "<file>: <what was being done> failed: <HDF5's innermost
// message>". Functions that take a location id (file, group or dataset) find the file name for the
// message themselves (H5Fget_name); `check` takes it explicitly.
//
// The typed dataset and attribute functions are defined for float, double, std::int32_t,
// std::int64_t and std::uint8_t (explicit instantiations in src/io/h5.cpp); HDF5 converts between the
// file's type and the requested memory type (e.g. a float64 dataset read as float).
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sama::io {

/// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, attribute or property list)
/// and closes it with the matching H5?close when destroyed. Move-only. Never wrap the predefined
/// ids (H5T_NATIVE_*, H5P_DEFAULT, H5S_ALL): they must not be closed.
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.release()) {}
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: pass straight to the C API
  bool valid() const { return id_ >= 0; }
  /// Gives up ownership without closing.
  hid_t release() noexcept {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  /// Closes a file id and throws "<file>: closing failed: ..." when that fails (e.g. disk full while
  /// the last metadata is written): a file is committed only after a clean close.
  void close_checked(const std::string& file);
  /// Closes the current id (errors while closing are ignored) and takes `id`.
  void reset(hid_t id = H5I_INVALID_HID) noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Throws sama::Error "<file>: <op> failed: <HDF5 message>" when status < 0; returns status.
herr_t check(herr_t status, const std::string& op, const std::string& file);
/// The same for a call returning an identifier: wraps a valid id, throws on a negative one.
H5Handle check_id(hid_t id, const std::string& op, const std::string& file);

/// The innermost (most specific) description on HDF5's current error stack, "" if it is empty.
std::string last_error();
/// Turns off HDF5's automatic printing of its error stack for the whole process (sama reports the
/// errors itself, in exceptions).
void silence_errors();
/// Turns the printing off for one scope and restores the previous handler afterwards.
class ScopedErrorSilence {
 public:
  ScopedErrorSilence();
  ~ScopedErrorSilence();
  ScopedErrorSilence(const ScopedErrorSilence&) = delete;
  ScopedErrorSilence& operator=(const ScopedErrorSilence&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// The name of the file that `loc` (any object in it) belongs to, or "<HDF5 file>" if unknown.
/// Files opened from a memory image carry an internal name; messages show `shown` for it instead.
void set_display_name(const std::string& internal, const std::string& shown);
std::string file_name(hid_t loc);

/// Opens an existing HDF5 file. A missing/unreadable file or one that is not HDF5 throws a clear
/// sama::Error. `fapl` is a file access property list (e.g. MPI-IO), H5P_DEFAULT for serial access.
H5Handle open_file(const std::string& path, bool writable = false, hid_t fapl = H5P_DEFAULT);
/// Creates (truncating) an HDF5 file.
H5Handle create_file(const std::string& path, hid_t fapl = H5P_DEFAULT);

/// Whether every link of a '/'-separated path below `loc` exists (e.g. "results/loss").
bool exists(hid_t loc, const std::string& path);
/// Opens an existing group / dataset; a missing one throws naming it and the file.
H5Handle open_group(hid_t loc, const std::string& name);
H5Handle open_dataset(hid_t loc, const std::string& name);
/// Creates a group, or opens it if it exists already.
H5Handle create_group(hid_t loc, const std::string& name);

/// The dimensions of a dataset's (simple) dataspace; a scalar dataset has none.
std::vector<hsize_t> dataset_dims(hid_t dset);

/// The HDF5 native memory type of T (a predefined id: do not close it).
template <class T>
hid_t native_type();

/// Writes a dataset `name` of shape `dims` from data[prod(dims)] (row-major). An existing link of that
/// name is replaced. `checksummed`: chunked with the Fletcher32 filter, so that a damaged chunk fails
/// to read instead of reading back silently wrong (checkpoints).
template <class T>
void write_dataset(hid_t loc, const std::string& name, const T* data,
                   const std::vector<hsize_t>& dims, bool checksummed = false);
/// A 1-D dataset holding v.
template <class T>
void write_vector(hid_t loc, const std::string& name, const std::vector<T>& v) {
  write_dataset<T>(loc, name, v.data(), {static_cast<hsize_t>(v.size())});
}
/// Reads a whole dataset converted to T; its dims go to *dims if given. A dataset with more than
/// max_elements values throws before anything is allocated.
template <class T>
std::vector<T> read_dataset(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr,
                            std::size_t max_elements = std::size_t(1) << 32);

/// Scalar attributes on an object (file, group or dataset); an existing one is replaced.
template <class T>
void write_attribute(hid_t obj, const std::string& name, T value);
template <class T>
T read_attribute(hid_t obj, const std::string& name);
/// String attributes (written fixed-length, null-terminated; fixed and variable length are read).
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value);
std::string read_string_attribute(hid_t obj, const std::string& name);

}  // namespace sama::io
