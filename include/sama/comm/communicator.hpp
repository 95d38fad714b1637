#pragma once
// MPI behind RAII: the environment (init/finalize) and a duplicated communicator with typed
// collectives. Nothing below main() uses MPI_COMM_WORLD directly.
#include <mpi.h>

#include <string>

namespace sama::comm {

/// Initialises MPI (funneled threading) for the lifetime of the object; finalizes unless aborted.
class Environment {
 public:
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  static std::string library_version();
};

class Communicator {
 public:
  /// Duplicates `parent` (default: the world) so that sama's traffic never mixes with the caller's.
  explicit Communicator(MPI_Comm parent = MPI_COMM_WORLD);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm get() const { return comm_; }
  /// The ranks of this communicator that share this rank's node (MPI_COMM_TYPE_SHARED); collective.
  int ranks_on_node() const;

  /// In-place sum over ranks.
  void allreduce_sum(double* data, int count) const;
  double allreduce_max(double x) const;
  void barrier() const;
  /// Ends every rank of the job with `code` (after the caller has printed its message).
  [[noreturn]] void abort(int code) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

/// Throws sama::Error naming the MPI operation and the rank when rc is not MPI_SUCCESS.
void check_mpi(int rc, const char* op, MPI_Comm comm);

}  // namespace sama::comm
