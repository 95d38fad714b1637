#!/usr/bin/env bash
# Everything CI runs, in three stages, each in its own build directory and followed by its ctest;
# stops at the first failure and prints the time of every stage:
#   (a) build       Release, -DSAMA_WERROR=ON: the whole test suite
#   (b) build-asan  RelWithDebInfo, gcc, ASan+UBSan on every target (-DSAMA_SANITIZE): the whole
#                   test suite, where any sanitizer report fails its test
#   (c) build-fuzz  clang with libFuzzer (-DSAMA_FUZZ=ON): the deck, IDX and HDF5 fuzz targets replay
#                   their seeds and the malformed corpus, then fuzz for SAMA_FUZZ_SECONDS each
# Usage: bash tests/suite.sh [a|b|c ...] (default: all three). SUITE_JOBS sets the parallelism (2).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SUITE_JOBS:-2}
fuzz_seconds=${SAMA_FUZZ_SECONDS:-20}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(a b c)

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
    *)
      echo "unknown stage '$s' (a, b or c)"
      exit 2
      ;;
  esac
done
current=""
