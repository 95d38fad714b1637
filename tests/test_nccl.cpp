// The NCCL back end: compiled and linked wherever the CUDA toolkit has NCCL; exercised on a GPU.
#include "sama/comm/gradient_reducer.hpp"
#include "sama/core/error.hpp"

#include <gtest/gtest.h>

#ifdef SAMA_HAVE_NCCL
#include <cuda_runtime.h>
#endif

#include <vector>

namespace {
using namespace sama;

TEST(Nccl, RejectsHostBuffersOrMissingBuild) {
  comm::Communicator comm;
  std::vector<float> host(16, 1.0f);
  if (!comm::nccl_available()) {
    EXPECT_THROW(comm::make_nccl_reducer(comm, host.data(), host.size(), {{0, 16}}, 0), Error);
    GTEST_SKIP() << "this build has no NCCL back end";
  }
  if (comm::visible_gpus() == 0) GTEST_SKIP() << "no GPU visible: the NCCL back end cannot run here";
  EXPECT_THROW(comm::make_nccl_reducer(comm, host.data(), host.size(), {{0, 16}}, 0), Error);
}

TEST(Nccl, SumsBucketsOnTheGpu) {
  if (!comm::nccl_available()) GTEST_SKIP() << "this build has no NCCL back end";
  if (comm::visible_gpus() == 0) GTEST_SKIP() << "no GPU visible: the NCCL back end cannot run here";
#ifdef SAMA_HAVE_NCCL
  comm::Communicator comm;
  const std::size_t n = 1000;
  std::vector<float> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(i % 7) + comm.rank();
  float* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  {
    auto r = comm::make_nccl_reducer(comm, d, n, {{600, 400}, {1, 599}, {0, 1}}, 1000.0);
    r->begin();
    r->ready(600, 400);
    r->ready(1, 599);
    r->ready(0, 1);
    r->finish();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  std::vector<float> out(n);
  ASSERT_EQ(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  const int p = comm.size();
  for (std::size_t i = 0; i < n; ++i)
    EXPECT_FLOAT_EQ(out[i], static_cast<float>(p * (i % 7)) + static_cast<float>(p * (p - 1) / 2)) << i;
  cudaFree(d);
#endif
}

}  // namespace
