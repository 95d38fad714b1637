#!/usr/bin/env bash
# Everything CI runs (stages a, b, c; d and e on request), each in its own build directory and followed by its ctest;
# stops at the first failure and prints the time of every stage:
#   (a) build       Release, -DSAMA_WERROR=ON: the whole test suite
#   (b) build-asan  RelWithDebInfo, gcc, ASan+UBSan on every target (-DSAMA_SANITIZE): the whole
#                   test suite, where any sanitizer report fails its test
#   (c) build-fuzz  clang with libFuzzer (-DSAMA_FUZZ=ON): the deck, IDX and HDF5 fuzz targets replay
#                   their seeds and the malformed corpus, then fuzz for SAMA_FUZZ_SECONDS each
#   (d) build-omp   Kokkos 4.6.01 with the OpenMP back end (built from ../shared/third_party by
#                   ../shared/tools/build-kokkos.sh into $SAMA_KOKKOS_OMP, default /opt/kokkos-omp;
#                   skipped when already there), Release -DSAMA_WERROR=ON: the whole test suite, one
#                   test at a time, at 2 OpenMP threads per rank for single-rank tests and 1 thread per
#                   rank for the multi-rank tests (label mpi), so ranks x threads stay within 2 cores
#   (e) build-cuda  Kokkos 4.6.01 with CUDA ($SAMA_KOKKOS_CUDA, default /opt/kokkos-cuda; CUDA toolkit
#                   at $CUDA_HOME, default /usr/local/cuda): compiles and links every target with CUDA,
#                   cuBLAS and NCCL. Nothing runs: there is no GPU here (jobscripts/gpu_check.sh does
#                   that on a GPU node)
# Usage: bash tests/suite.sh [a|b|c|d|e ...] (default: a b c). SUITE_JOBS sets the parallelism (2).
# The shared folder (tools/build-kokkos.sh, third_party/) is $SAMA_SHARED_DIR, else ../shared next to
# the checkout, else shared/ inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SUITE_JOBS:-2}
fuzz_seconds=${SAMA_FUZZ_SECONDS:-20}
stages=("$@")
# d and e (Kokkos 4 OpenMP and CUDA) run when named. Stage d on an idle 2-core machine: 656 s (Kokkos
# 35 s, build 248 s, ctest at 2 threads 230 s, MPI tests at 1 thread 134 s), all passing; with a b c
# (about 24 min in CI) it would take CI past the 30 minutes it is kept under. Stage e was timed only on
# a loaded machine (71 min).
[ ${#stages[@]} -gt 0 ] || stages=(a b c)
repo=$(pwd)

# shared_dir: where tools/build-kokkos.sh lives (see the header).
shared_dir() {
  local d
  for d in "${SAMA_SHARED_DIR:-}" "$repo/../shared" "$repo/shared"; do
    if [ -n "$d" ] && [ -f "$d/tools/build-kokkos.sh" ]; then (cd "$d" && pwd); return 0; fi
  done
  echo "suite.sh: no shared folder with tools/build-kokkos.sh (set SAMA_SHARED_DIR; looked in" \
       "'${SAMA_SHARED_DIR:-}', $repo/../shared, $repo/shared)" >&2
  return 1
}

timings=()
current=""
suite_start=$SECONDS
report() {
  local rc=$?
  echo
  echo "=== suite.sh timings"
  for t in "${timings[@]}"; do echo "  $t"; done
  if [ $rc -ne 0 ] && [ -n "$current" ]; then echo "  FAILED in stage: $current"; fi
  echo "  total $((SECONDS - suite_start)) s"
  exit $rc
}
trap report EXIT

# step NAME COMMAND...: runs one step and records its time.
step() {
  local name=$1 t0=$SECONDS
  shift
  current=$name
  echo "=== $name: $*"
  "$@"
  timings+=("$(printf '%-28s %4d s' "$name" $((SECONDS - t0)))")
}

for s in "${stages[@]}"; do
  case $s in
    a)
      step "a. Release configure" cmake -B build -DCMAKE_BUILD_TYPE=Release -DSAMA_WERROR=ON -DSAMA_SANITIZE= -DSAMA_FUZZ=OFF
      step "a. Release build" cmake --build build -j"$jobs"
      step "a. Release ctest" ctest --test-dir build --output-on-failure -j"$jobs"
      ;;
    b)
      # No -Werror here: GCC's -Wmaybe-uninitialized has false positives under the sanitizers.
      step "b. ASan+UBSan configure" cmake -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
        -DCMAKE_CXX_COMPILER=g++ -DSAMA_SANITIZE=address,undefined -DSAMA_FUZZ=OFF
      step "b. ASan+UBSan build" cmake --build build-asan -j"$jobs"
      step "b. ASan+UBSan ctest" ctest --test-dir build-asan --output-on-failure -j"$jobs"
      ;;
    c)
      step "c. fuzz configure" cmake -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DSAMA_FUZZ=ON -DSAMA_ENABLE_TESTS=OFF -DSAMA_FUZZ_SECONDS="$fuzz_seconds"
      step "c. fuzz build" cmake --build build-fuzz -j"$jobs" --target fuzz_deck fuzz_idx fuzz_hdf5
      step "c. fuzz ctest" ctest --test-dir build-fuzz --output-on-failure -j"$jobs"
      ;;
    d)
      kokkos_omp=${SAMA_KOKKOS_OMP:-/opt/kokkos-omp}
      shared=$(shared_dir)
      step "d. Kokkos 4.6.01 OpenMP" env JOBS="$jobs" bash "$shared/tools/build-kokkos.sh" openmp "$kokkos_omp"
      step "d. OpenMP configure" cmake -B build-omp -DCMAKE_BUILD_TYPE=Release -DSAMA_WERROR=ON -DSAMA_SANITIZE= \
        -DSAMA_FUZZ=OFF -DKokkos_ROOT="$kokkos_omp"
      step "d. OpenMP build" cmake --build build-omp -j"$jobs"
      # Passive waiting: spinning OpenMP threads on an oversubscribed machine cost 10-40x.
      step "d. OpenMP ctest 2 threads" env OMP_NUM_THREADS=2 OMP_PROC_BIND=false OMP_WAIT_POLICY=passive \
        ctest --test-dir build-omp --output-on-failure -j1 -LE mpi
      step "d. OpenMP ctest mpi 1 thread" env OMP_NUM_THREADS=1 OMP_PROC_BIND=false OMP_WAIT_POLICY=passive \
        ctest --test-dir build-omp --output-on-failure -j1 -L mpi
      ;;
    e)
      kokkos_cuda=${SAMA_KOKKOS_CUDA:-/opt/kokkos-cuda}
      cuda_home=${CUDA_HOME:-/usr/local/cuda}
      shared=$(shared_dir)
      export PATH="$cuda_home/bin:$PATH"  # nvcc_wrapper calls nvcc
      step "e. Kokkos 4.6.01 CUDA" env JOBS="$jobs" CUDA_HOME="$cuda_home" bash "$shared/tools/build-kokkos.sh" cuda \
        "$kokkos_cuda"
      # No -Werror: nvcc's diagnostics of Kokkos and library headers are not ours to fix.
      step "e. CUDA configure" cmake -B build-cuda -DCMAKE_BUILD_TYPE=Release -DSAMA_SANITIZE= -DSAMA_FUZZ=OFF \
        -DKokkos_ROOT="$kokkos_cuda" -DCUDAToolkit_ROOT="$cuda_home" -DSAMA_ENABLE_NCCL=ON
      step "e. CUDA build (no run)" cmake --build build-cuda -j"$jobs"
      step "e. CUDA links cuBLAS+NCCL" bash tests/check_cuda_links.sh build-cuda
      ;;
    *)
      echo "unknown stage '$s' (a, b, c, d or e)"
      exit 2
      ;;
  esac
done
current=""
