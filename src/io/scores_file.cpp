#include "sama/io/scores_file.hpp"

#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/run_files.hpp"

namespace sama::io {
namespace {

/// Creates dataset `name` [total] and writes this rank's block [first, first + n) collectively.
template <class T>
void write_block(hid_t loc, const std::string& name, std::size_t total, std::size_t first, const std::vector<T>& v,
                 hid_t dxpl, const Attributes* attrs = nullptr) {
  const std::string file = file_name(loc), what = "dataset '" + name + "'";
  const hsize_t dims[1] = {static_cast<hsize_t>(total)};
  H5Handle fspace = check_id(H5Screate_simple(1, dims, nullptr), "creating a dataspace for " + what, file);
  H5Handle lcpl = check_id(H5Pcreate(H5P_LINK_CREATE), "creating a property list", file);
  check(H5Pset_create_intermediate_group(lcpl, 1), "setting a property list", file);
  H5Handle dcpl = check_id(H5Pcreate(H5P_DATASET_CREATE), "creating a property list", file);
  check(H5Pset_obj_track_times(dcpl, 0), "setting a property list", file);  // bitwise-comparable files
  H5Handle dset = check_id(H5Dcreate2(loc, name.c_str(), native_type<T>(), fspace, lcpl, dcpl, H5P_DEFAULT),
                           "creating " + what, file);
  const hsize_t start[1] = {static_cast<hsize_t>(first)}, count[1] = {static_cast<hsize_t>(v.size())};
  H5Handle mspace = check_id(H5Screate_simple(1, count, nullptr), "creating a dataspace for " + what, file);
  if (v.empty()) {
    check(H5Sselect_none(fspace), "selecting nothing in " + what, file);
    check(H5Sselect_none(mspace), "selecting nothing in " + what, file);
  } else {
    check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr), "selecting rows of " + what,
          file);
  }
  // Every rank takes part in the (collective) write, also with an empty block.
  check(H5Dwrite(dset, native_type<T>(), mspace, fspace, dxpl, v.empty() ? nullptr : v.data()), "writing " + what,
        file);
  if (attrs) {
    for (const auto& [k, s] : attrs->text) write_string_attribute(dset, k, s);
    for (const auto& [k, x] : attrs->number) write_attribute<double>(dset, k, x);
  }
}

}  // namespace

void write_scores_file(const std::string& path, const ScoresBlock& mine, const Attributes& root, MPI_Comm comm) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const std::size_t n = mine.sample_id.size();
  SAMA_REQUIRE(mine.label_observed.size() == n && mine.label_true.size() == n && mine.is_noisy.size() == n,
               "{}: sample columns of this rank's block differ in length", path);
  for (const auto& c : mine.scores)
    SAMA_REQUIRE(c.values.size() == n, "{}: score '{}' has {} rows in this rank's block of {}", path, c.name,
                 c.values.size(), n);
  const std::string tmp = path + ".partial";  // the same name on every rank
  ScopedErrorSilence quiet;
  {
    H5Handle fapl = check_id(H5Pcreate(H5P_FILE_ACCESS), "creating a property list", tmp);
    H5Handle dxpl = check_id(H5Pcreate(H5P_DATASET_XFER), "creating a property list", tmp);
#ifdef H5_HAVE_PARALLEL
    check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "selecting MPI-IO", tmp);
    check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "selecting collective writes", tmp);
#else
    if (ranks > 1)
      fail("{}: writing scores from {} ranks needs an HDF5 library built with MPI (parallel HDF5); this build's "
           "is serial. Set scores.enabled = false or rebuild against parallel HDF5.",
           path, ranks);
#endif
    H5Handle file = create_file(tmp, fapl);
    write_block(file, "sample_id", mine.total, mine.first, mine.sample_id, dxpl);
    write_block(file, "label_observed", mine.total, mine.first, mine.label_observed, dxpl);
    write_block(file, "label_true", mine.total, mine.first, mine.label_true, dxpl);
    write_block(file, "is_noisy", mine.total, mine.first, mine.is_noisy, dxpl);
    for (const auto& c : mine.scores)
      write_block(file, "scores/" + c.name, mine.total, mine.first, c.values, dxpl, &c.attributes);
    for (const auto& [k, s] : root.text) write_string_attribute(file, k, s);
    for (const auto& [k, x] : root.number) write_attribute<double>(file, k, x);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush", tmp);
  }  // closed (collectively) on every rank
  MPI_Barrier(comm);
  if (rank == 0) commit_file(tmp, path);
  MPI_Barrier(comm);
}

}  // namespace sama::io
