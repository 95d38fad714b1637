// NCCL back end of the gradient reducer: device buffers, its own CUDA stream ordered by events.
// Compiled when the CUDA toolkit with NCCL is found (SAMA_HAVE_NCCL); see gradient_reducer.hpp.
#include "sama/comm/gradient_reducer.hpp"
#include "sama/core/error.hpp"

#ifdef SAMA_HAVE_NCCL
#include "sama/core/timer.hpp"
#include "sama/core/types.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <vector>

namespace sama::comm {
namespace {

void check_cuda(cudaError_t e, const char* op, int rank) {
  if (e != cudaSuccess) fail("{} failed on rank {}: {}", op, rank, cudaGetErrorString(e));
}
void check_nccl(ncclResult_t r, const char* op, int rank) {
  if (r != ncclSuccess) fail("{} failed on rank {}: {}", op, rank, ncclGetErrorString(r));
}

/// The stream the compute kernels run on: Kokkos' CUDA stream when Kokkos targets CUDA, else the
/// legacy default stream.
cudaStream_t compute_stream() {
#ifdef KOKKOS_ENABLE_CUDA
  return ExecSpace().cuda_stream();
#else
  return nullptr;
#endif
}

class NcclReducer final : public BucketedReducer {
 public:
  NcclReducer(const Communicator& comm, float* data, std::size_t size,
              const std::vector<std::pair<std::size_t, std::size_t>>& layers, double bucket_bytes)
      : BucketedReducer(size, layers, bucket_bytes, sizeof(float)), rank_(comm.rank()), data_(data) {
    cudaPointerAttributes attr{};
    check_cuda(cudaPointerGetAttributes(&attr, data), "cudaPointerGetAttributes(gradient)", rank_);
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
      fail("the NCCL back end needs the gradient in GPU memory (this build's Kokkos keeps it on the host); "
           "use parallel.backend = \"mpi\"");
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", rank_);
    check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm.get()), "MPI_Bcast(NCCL id)", comm.get());
    check_nccl(ncclCommInitRank(&nccl_, comm.size(), id, rank_), "ncclCommInitRank", rank_);
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate", rank_);
    check_cuda(cudaEventCreateWithFlags(&layer_done_, cudaEventDisableTiming), "cudaEventCreate", rank_);
    check_cuda(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming), "cudaEventCreate", rank_);
    // Reference: one all-reduce of the whole buffer, timed on the host, median of 5. It runs in place on
    // the gradient buffer, which holds nothing yet (backward overwrites it before every use).
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
      comm.barrier();
      Timer timer;
      check_nccl(ncclAllReduce(data_, data_, size, ncclFloat, ncclSum, nccl_, stream_), "ncclAllReduce", rank_);
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize", rank_);
      t.push_back(timer.seconds());
    }
    std::sort(t.begin(), t.end());
    stats_.reference_seconds = comm.allreduce_max(t[t.size() / 2]);
  }
  ~NcclReducer() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (nccl_) ncclCommDestroy(nccl_);
    if (layer_done_) cudaEventDestroy(layer_done_);
    if (comm_done_) cudaEventDestroy(comm_done_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string backend() const override { return "nccl"; }

 private:
  void launch(std::size_t, std::size_t lo, std::size_t hi) override {
    // Order the bucket after the kernels that produced it, then reduce it on the communication stream.
    check_cuda(cudaEventRecord(layer_done_, compute_stream()), "cudaEventRecord", rank_);
    check_cuda(cudaStreamWaitEvent(stream_, layer_done_, 0), "cudaStreamWaitEvent", rank_);
    check_nccl(ncclAllReduce(data_ + lo, data_ + lo, hi - lo, ncclFloat, ncclSum, nccl_, stream_), "ncclAllReduce",
               rank_);
  }
  void wait_all() override {
    // The host waits for the communication stream (what is not hidden), and the compute stream is
    // ordered after it.
    check_cuda(cudaEventRecord(comm_done_, stream_), "cudaEventRecord", rank_);
    check_cuda(cudaEventSynchronize(comm_done_), "cudaEventSynchronize", rank_);
    check_cuda(cudaStreamWaitEvent(compute_stream(), comm_done_, 0), "cudaStreamWaitEvent", rank_);
  }

  int rank_;
  float* data_;
  ncclComm_t nccl_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t layer_done_ = nullptr, comm_done_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }

std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator& comm, float* data, std::size_t size,
                                                   const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                                                   double bucket_bytes) {
  return std::make_unique<NcclReducer>(comm, data, size, layers, bucket_bytes);
}

int visible_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

}  // namespace sama::comm

#else  // no NCCL in this build

namespace sama::comm {

bool nccl_available() { return false; }

std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator&, float*, std::size_t,
                                                   const std::vector<std::pair<std::size_t, std::size_t>>&, double) {
  fail("this build has no NCCL back end: configure with the CUDA toolkit present (-DSAMA_ENABLE_NCCL=ON, "
       "CUDAToolkit_ROOT=/usr/local/cuda)");
}

int visible_gpus() { return 0; }

}  // namespace sama::comm

#endif
