#!/usr/bin/env bash
# After a CUDA build (tests/suite.sh stage e): every executable of the build links the CUDA runtime,
# cuBLAS and NCCL, and the library was compiled for the CUDA back end. Usage: check_cuda_links.sh BUILD
set -euo pipefail
build=${1:?usage: check_cuda_links.sh BUILD_DIR}
mapfile -t exes < <(find "$build" -type f -perm -u+x \( -name sama -o -name 'test_*' -o -name mpi_training \) ! -name '*.sh' | sort)
[ ${#exes[@]} -gt 0 ] || { echo "check_cuda_links: no executables in $build"; exit 1; }
bad=0
for e in "${exes[@]}"; do
  deps=$(readelf -d "$e" | grep NEEDED)
  for lib in libcudart libcublas libnccl; do
    grep -q "$lib" <<<"$deps" || { echo "check_cuda_links: $e does not link $lib"; bad=1; }
  done
done
echo "check_cuda_links: ${#exes[@]} executables link libcudart, libcublas and libnccl"
exit $bad
