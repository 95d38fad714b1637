#include "sama/io/scores_file.hpp"

#include "sama/core/error.hpp"
#include "sama/io/h5.hpp"
#include "sama/io/run_files.hpp"

#include <filesystem>

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

namespace {
/// This rank's block of a column, gathered in rank order onto rank 0 (the whole column there).
template <class T>
std::vector<T> gather_column(const std::vector<T>& mine, std::size_t total, MPI_Comm comm, int rank, int ranks) {
  std::vector<T> all(rank == 0 ? total : 0);
  const int bytes = static_cast<int>(mine.size() * sizeof(T));
  std::vector<int> counts(static_cast<std::size_t>(ranks)), displs(static_cast<std::size_t>(ranks));
  MPI_Gather(&bytes, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm);
  if (rank == 0)
    for (int r = 1; r < ranks; ++r) displs[static_cast<std::size_t>(r)] = displs[static_cast<std::size_t>(r - 1)] +
                                                                            counts[static_cast<std::size_t>(r - 1)];
  MPI_Gatherv(mine.data(), bytes, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE, 0, comm);
  return all;
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
  // The blocks are gathered onto rank 0, which writes the file alone with the plain POSIX driver: no
  // MPI-IO (Open MPI's shared-file-pointer component overflowed on run paths of 228+ characters), and a
  // write error (disk full) is one rank's clean error that every rank then reports.
  const std::size_t total = mine.total;
  const auto sample_id = gather_column(mine.sample_id, total, comm, rank, ranks);
  const auto label_observed = gather_column(mine.label_observed, total, comm, rank, ranks);
  const auto label_true = gather_column(mine.label_true, total, comm, rank, ranks);
  const auto is_noisy = gather_column(mine.is_noisy, total, comm, rank, ranks);
  std::vector<std::vector<double>> scores;
  for (const auto& c : mine.scores) scores.push_back(gather_column(c.values, total, comm, rank, ranks));
  const std::string tmp = path + ".partial";
  std::string error;
  if (rank == 0) {
    try {
      {
        ScopedErrorSilence quiet;
        H5Handle file = create_file(tmp);
        write_block(file, "sample_id", total, 0, sample_id, H5P_DEFAULT);
        write_block(file, "label_observed", total, 0, label_observed, H5P_DEFAULT);
        write_block(file, "label_true", total, 0, label_true, H5P_DEFAULT);
        write_block(file, "is_noisy", total, 0, is_noisy, H5P_DEFAULT);
        for (std::size_t k = 0; k < mine.scores.size(); ++k)
          write_block(file, "scores/" + mine.scores[k].name, total, 0, scores[k], H5P_DEFAULT,
                      &mine.scores[k].attributes);
        for (const auto& [k, s] : root.text) write_string_attribute(file, k, s);
        for (const auto& [k, x] : root.number) write_attribute<double>(file, k, x);
        check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush", tmp);
        file.close_checked(tmp);
      }
      commit_file(tmp, path);
    } catch (const std::exception& e) {
      error = e.what();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);  // no partial file left behind
    }
  }
  // Every rank learns the outcome and fails with rank 0's message.
  int len = static_cast<int>(error.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  error.resize(static_cast<std::size_t>(len));
  if (len > 0) MPI_Bcast(error.data(), len, MPI_CHAR, 0, comm);
  if (len > 0) fail("{}{}", rank == 0 ? "" : "(rank 0 reports) ", error);
}

}  // namespace sama::io
