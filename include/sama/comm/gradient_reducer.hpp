#pragma once
// Sums a flat gradient over ranks in buckets, overlapped with backward (DESIGN.md §4).
//
// Buckets are contiguous ranges of the flat gradient formed from whole layers in reverse layer order
// (the order backward completes them), each about `bucket_bytes`. backward() reports every finished
// layer through ready(); when all layers of a bucket are in, its non-blocking all-reduce starts, and
// every later ready() drives the outstanding ones (MPI_Testall), so communication proceeds while the
// earlier layers are still being differentiated. finish() waits for the rest.
#include "sama/comm/communicator.hpp"

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace sama::comm {

struct ReducerStats {
  long steps = 0;
  long buckets_launched = 0;
  double exposed_seconds = 0;  // time spent waiting in finish(): communication not hidden
  double reference_seconds = 0;  // one blocking all-reduce of the whole buffer, measured at set-up
};

class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  /// Before a backward pass.
  virtual void begin() = 0;
  /// A layer's gradient, [offset, offset+count) of the flat buffer, is complete.
  virtual void ready(std::size_t offset, std::size_t count) = 0;
  /// Waits until the whole buffer holds the sum over ranks.
  virtual void finish() = 0;
  virtual const ReducerStats& stats() const = 0;
  virtual std::size_t num_buckets() const = 0;
  virtual std::string backend() const = 0;
  /// Share of communication hidden behind computation, 1 − exposed / (steps × reference), in [0, 1].
  double hidden_fraction() const;
};

/// The bucket bookkeeping shared by the back ends: which bucket a finished layer belongs to, when a
/// bucket is complete (launch it), and the exposed waiting time. A back end supplies launch(), an
/// optional progress() and wait_all().
class BucketedReducer : public GradientReducer {
 public:
  void begin() final;
  void ready(std::size_t offset, std::size_t count) final;
  void finish() final;
  const ReducerStats& stats() const final { return stats_; }
  std::size_t num_buckets() const final { return buckets_.size(); }

 protected:
  BucketedReducer(std::size_t size, const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                  double bucket_bytes, std::size_t elem_size);
  /// Start summing [lo, hi) over ranks.
  virtual void launch(std::size_t bucket, std::size_t lo, std::size_t hi) = 0;
  /// Drive outstanding operations (called after every ready()).
  virtual void progress() {}
  /// Block until every launched bucket is summed.
  virtual void wait_all() = 0;
  const std::vector<std::pair<std::size_t, std::size_t>>& buckets() const { return buckets_; }
  ReducerStats stats_;

 private:
  void launch_next();
  std::vector<std::pair<std::size_t, std::size_t>> buckets_;
  std::vector<std::size_t> pending_;
  std::size_t next_ = 0;
};

/// Groups layers (given as (offset, count), in the order backward completes them) into buckets of
/// about bucket_bytes; returns contiguous [begin, end) ranges in that order. bucket_bytes <= 0 puts
/// every layer in its own bucket.
std::vector<std::pair<std::size_t, std::size_t>> make_buckets(
    const std::vector<std::pair<std::size_t, std::size_t>>& layers, double bucket_bytes, std::size_t elem_size);

/// Where the buffer handed to the MPI back end lives, and how MPI reaches it.
enum class MpiBuffer {
  host,       ///< host-accessible memory (Serial, OpenMP): MPI reads and writes it in place
  staged,     ///< device memory: each bucket is copied to a host buffer, summed there, copied back
  gpu_aware,  ///< device memory handed to a CUDA-aware MPI as it is (parallel.gpu_aware_mpi)
};
/// The mode for the default memory space: host when the host can read it, else staged, or gpu_aware
/// when the deck asks for it.
MpiBuffer default_mpi_buffer(bool gpu_aware_mpi);

/// MPI back end: MPI_Iallreduce(MPI_SUM) per bucket. In every mode the reducer fences Kokkos before
/// communication reads a bucket, so kernels that wrote the gradient have finished.
std::unique_ptr<GradientReducer> make_mpi_reducer(const Communicator& comm, float* data, std::size_t size,
                                                  const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                                                  double bucket_bytes, MpiBuffer mode = MpiBuffer::host);

/// NCCL back end: ncclAllReduce on GPU memory, on its own stream ordered after the compute stream by
/// an event per bucket. Throws sama::Error in a build without NCCL or for a host buffer.
std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator& comm, float* data, std::size_t size,
                                                   const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                                                   double bucket_bytes);
/// Whether this build has the NCCL back end, and how many GPUs this process sees (0 without CUDA).
bool nccl_available();
int visible_gpus();

}  // namespace sama::comm
