#pragma once
// The one GEMM entry point: C = alpha * op(A) * op(B) + beta * C on row-major views.
// Host views go to CBLAS (OpenBLAS); with Kokkos CUDA and SAMA_HAVE_CUBLAS, device views go to cuBLAS
// bound to the execution space's stream (row-major handled by swapping operands).
#include "sama/core/types.hpp"

#include <vector>

namespace sama {

enum class Op { N, T };

template <class T>
void gemm(Op op_a, Op op_b, T alpha, MatU<const T> a, MatU<const T> b, T beta, MatU<T> c);

/// Records every GEMM issued while it is alive (the innermost one wins): FLOPs and shapes.
/// Used by the benchmark to count GEMM work and to replay the same shapes alone.
class GemmRecorder {
 public:
  struct Call {
    Op op_a, op_b;
    std::size_t m, n, k;
    bool is_double;
  };
  GemmRecorder();
  ~GemmRecorder();
  GemmRecorder(const GemmRecorder&) = delete;
  GemmRecorder& operator=(const GemmRecorder&) = delete;
  double flops() const { return flops_; }
  /// Wall-clock seconds inside the BLAS calls (host BLAS: the GEMM's time; cuBLAS: only the launch).
  double seconds() const { return seconds_; }
  void add_seconds(double s) { seconds_ += s; }
  const std::vector<Call>& calls() const { return calls_; }
  void keep_calls(bool keep) { keep_calls_ = keep; }
  void reset() { flops_ = 0; seconds_ = 0; calls_.clear(); }
  void record(const Call& c);

 private:
  double flops_ = 0;
  double seconds_ = 0;
  bool keep_calls_ = false;
  std::vector<Call> calls_;
  GemmRecorder* previous_ = nullptr;
};

/// The threads the BLAS library may use for one call (main() sets them from threads::plan; see
/// threads.hpp). OpenBLAS only: with another CBLAS, set does nothing and get returns 0 (unknown).
void blas_set_threads(int n);
int blas_threads();
/// How the BLAS library runs threads: "pthreads", "OpenMP", "sequential" (OpenBLAS), or "unknown".
std::string blas_threading();
/// A description of the BLAS library in use (e.g. OpenBLAS's config string).
std::string blas_description();

}  // namespace sama
