#!/usr/bin/env bash
# The GPU check, ready to run on one GPU of an H100-class node (about 10 minutes with 16 cores):
# builds Kokkos 4.6.01 with CUDA (../shared/tools/build-kokkos.sh, skipped when already installed)
# and sama against it, runs the whole test suite on the GPU, then `sama bench`, and prints each
# part's time. Nothing of this has run on a GPU yet (README.md, "GPUs"): read its output as the
# first run of the device path.
#
#   jobscripts/gpu_check.sh [OUT_DIR]          (default runs/gpu_check: logs, bench.json, timings)
#
# Environment: CUDA_HOME (/usr/local/cuda), KOKKOS_CUDA_ARCH (HOPPER90; AMPERE80 for A100),
# SAMA_KOKKOS_CUDA (install prefix, default $HOME/kokkos-4.6.01-cuda), SAMA_SHARED_DIR (the folder
# holding tools/build-kokkos.sh; default ../shared next to the checkout), JOBS (nproc),
# CTEST_TIMEOUT (seconds per test, 300). A non-CUDA-aware MPI is fine: the default reducer stages
# device buffers through host memory (parallel.gpu_aware_mpi = false).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/gpu_check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cuda=${CUDA_HOME:-/usr/local/cuda}
prefix=${SAMA_KOKKOS_CUDA:-$HOME/kokkos-4.6.01-cuda}
jobs=${JOBS:-$(nproc)}
shared=${SAMA_SHARED_DIR:-$here/../shared}
[ -f "$shared/tools/build-kokkos.sh" ] || { echo "gpu_check: no $shared/tools/build-kokkos.sh (set SAMA_SHARED_DIR)"; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee "$out/gpus.txt"
export PATH="$cuda/bin:$PATH"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
times=()
t_all=$SECONDS
part() {  # part NAME LOG COMMAND...: runs one part, its output in OUT_DIR/LOG, and records its time
  local name=$1 log=$2 t0=$SECONDS rc=0
  shift 2
  echo "=== gpu_check: $name"
  "$@" >"$out/$log" 2>&1 || rc=$?
  times+=("$(printf '%-24s %4d s  rc %d' "$name" $((SECONDS - t0)) "$rc")")
  tail -5 "$out/$log"
  return $rc
}
summary() {
  echo "=== gpu_check timings (logs in $out)"
  printf '  %s\n' "${times[@]}"
  echo "  total $((SECONDS - t_all)) s"
}
trap summary EXIT
part "Kokkos CUDA" kokkos.log env JOBS="$jobs" CUDA_HOME="$cuda" bash "$shared/tools/build-kokkos.sh" cuda "$prefix"
part "configure" configure.log cmake -S "$here" -B "$here/build-gpu" -DCMAKE_BUILD_TYPE=Release \
  -DKokkos_ROOT="$prefix" -DCUDAToolkit_ROOT="$cuda"
part "build" build.log cmake --build "$here/build-gpu" -j"$jobs"
"$here/build-gpu/sama" info | tee "$out/info.txt"
# Every test, on the one GPU: one at a time (they would share it), MPI tests included (host-staged).
part "ctest" ctest.log ctest --test-dir "$here/build-gpu" --output-on-failure -j1 --timeout "${CTEST_TIMEOUT:-300}" || true
part "bench" bench.log "$here/build-gpu/sama" bench --steps 20 --warmup 3 --json "$out/bench.json" || true
grep -E "tests passed|tests failed" "$out/ctest.log" || true
