#include "sama/core/gemm.hpp"

#include "sama/core/error.hpp"
#include "sama/core/timer.hpp"

#include <cblas.h>

#include <algorithm>

#ifdef SAMA_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace sama {
namespace {

GemmRecorder* g_recorder = nullptr;

#ifdef SAMA_HAVE_CUBLAS
// One handle, created at the first device GEMM and destroyed by a Kokkos finalize hook, i.e. inside
// Kokkos::finalize before the CUDA back end goes down (a static's destructor would run after it).
// Every call binds it to the stream of Kokkos' default execution space, so GEMMs are ordered with
// the kernels around them.
cublasHandle_t g_cublas = nullptr;
cublasHandle_t cublas_handle() {
  if (g_cublas == nullptr) {
    if (cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) fail("cublasCreate failed");
    Kokkos::push_finalize_hook([] {
      if (g_cublas != nullptr) cublasDestroy(g_cublas);
      g_cublas = nullptr;
    });
  }
  if (cublasSetStream(g_cublas, ExecSpace().cuda_stream()) != CUBLAS_STATUS_SUCCESS) fail("cublasSetStream failed");
  return g_cublas;
}
void check_cublas(cublasStatus_t s, const char* op) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("{} failed with cuBLAS status {}", op, static_cast<int>(s));
}
cublasOperation_t cu(Op op) { return op == Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }
#endif

#ifndef SAMA_HAVE_CUBLAS
static_assert(Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible,
              "GEMM on views the host cannot read needs cuBLAS (configure with SAMA_ENABLE_CUDA_LIBS=ON)");
#endif

CBLAS_TRANSPOSE cb(Op op) { return op == Op::N ? CblasNoTrans : CblasTrans; }

// BLAS threads: those blas_set_threads configured (-1: never called, OpenBLAS's own setting stands)
// and those OpenBLAS is set to now. A GEMM too small to gain from a second thread runs on one: with
// N = 10 (the output layer) two OpenBLAS threads are 1.2-2.3x slower than one (pthreads OpenBLAS
// 0.3.21, Haswell kernels), from about 128x256x256 on they are 1.3-1.6x faster. The choice depends on
// the shape alone, so a run repeats to the bit at a given thread count.
int g_blas_threads = -1;
int g_blas_now = -1;
constexpr long kThreadedMinDim = 32;          // min(m, n) below this: one thread
constexpr double kThreadedMinWork = 2097152;  // m*n*k below this (2^21): one thread

void threads_for(long m, long n, long k) {
#ifdef SAMA_HAVE_OPENBLAS
  if (g_blas_threads <= 1) return;
  const bool big = std::min(m, n) >= kThreadedMinDim && double(m) * double(n) * double(k) >= kThreadedMinWork;
  const int want = big ? g_blas_threads : 1;
  if (want != g_blas_now) {
    openblas_set_num_threads(want);
    g_blas_now = want;
  }
#else
  (void)m, (void)n, (void)k;
#endif
}

void blas_call(Op ta, Op tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc) {
#ifdef SAMA_HAVE_CUBLAS
  if constexpr (!Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible) {
    check_cublas(cublasSgemm(cublas_handle(), cu(tb), cu(ta), n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc),
                 "cublasSgemm");
    return;
  }
#endif
  threads_for(m, n, k);
  cblas_sgemm(CblasRowMajor, cb(ta), cb(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void blas_call(Op ta, Op tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
               int ldb, double beta, double* c, int ldc) {
#ifdef SAMA_HAVE_CUBLAS
  if constexpr (!Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible) {
    check_cublas(cublasDgemm(cublas_handle(), cu(tb), cu(ta), n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc),
                 "cublasDgemm");
    return;
  }
#endif
  threads_for(m, n, k);
  cblas_dgemm(CblasRowMajor, cb(ta), cb(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <class T>
void gemm(Op op_a, Op op_b, T alpha, MatU<const T> a, MatU<const T> b, T beta, MatU<T> c) {
  const std::size_t m = op_a == Op::N ? a.extent(0) : a.extent(1);
  const std::size_t k = op_a == Op::N ? a.extent(1) : a.extent(0);
  const std::size_t kb = op_b == Op::N ? b.extent(0) : b.extent(1);
  const std::size_t n = op_b == Op::N ? b.extent(1) : b.extent(0);
  if (k != kb || c.extent(0) != m || c.extent(1) != n)
    fail("sama::gemm: shape mismatch: op(A) is {}x{}, op(B) is {}x{}, C is {}x{}", m, k, kb, n, c.extent(0),
         c.extent(1));
  if (m == 0 || n == 0) return;
  if (g_recorder) g_recorder->record({op_a, op_b, m, n, k, std::is_same_v<T, double>});
  if (k == 0) {  // C = beta*C
    Kokkos::parallel_for(
        "sama::gemm::scale", Range(0, m), KOKKOS_LAMBDA(const std::size_t i) {
          for (std::size_t j = 0; j < n; ++j) c(i, j) = beta == T(0) ? T(0) : beta * c(i, j);
        });
    return;
  }
  // Leading dimensions: row strides (at least 1 for empty-width matrices, as BLAS requires).
  auto ld = [](auto& v) { return static_cast<int>(v.extent(1) > 0 ? v.stride(0) : 1); };
  const Timer timer;
  blas_call(op_a, op_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a.data(), ld(a),
            b.data(), ld(b), beta, c.data(), ld(c));
  if (g_recorder) g_recorder->add_seconds(timer.seconds());
}

template void gemm<float>(Op, Op, float, MatU<const float>, MatU<const float>, float, MatU<float>);
template void gemm<double>(Op, Op, double, MatU<const double>, MatU<const double>, double, MatU<double>);

GemmRecorder::GemmRecorder() : previous_(g_recorder) { g_recorder = this; }
GemmRecorder::~GemmRecorder() { g_recorder = previous_; }
void GemmRecorder::record(const Call& c) {
  flops_ += 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k);
  if (keep_calls_) calls_.push_back(c);
}

void blas_set_threads(int n) {
#ifdef SAMA_HAVE_OPENBLAS
  openblas_set_num_threads(n);
  g_blas_threads = g_blas_now = openblas_get_num_threads();  // what OpenBLAS accepted
#else
  (void)n;
#endif
}

int blas_threads() {
#ifdef SAMA_HAVE_OPENBLAS
  return g_blas_threads > 0 ? g_blas_threads : openblas_get_num_threads();
#else
  return 0;
#endif
}

std::string blas_threading() {
#ifdef SAMA_HAVE_OPENBLAS
  switch (openblas_get_parallel()) {
    case 0: return "sequential";
    case 1: return "pthreads";
    case 2: return "OpenMP";
    default: return "unknown";
  }
#else
  return "unknown";
#endif
}

std::string blas_description() {
#ifdef SAMA_HAVE_OPENBLAS
  return std::string("OpenBLAS (") + openblas_get_config() + ")";
#else
  return "CBLAS";
#endif
}

}  // namespace sama
