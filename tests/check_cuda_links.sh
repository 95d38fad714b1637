#!/usr/bin/env bash
# After a CUDA build (tests/suite.sh stage e): every executable of the build links the CUDA runtime,
# and sama links cuBLAS and NCCL too (the linker's --as-needed drops them from test binaries that use
# neither). Usage: check_cuda_links.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: check_cuda_links.sh BUILD_DIR}
mapfile -t exes < <(find "$build" -path "$build/CMakeFiles" -prune -o -type f -perm -u+x \
  \( -name sama -o -name 'test_*' -o -name mpi_training \) ! -name '*.sh' -print | sort)
[ ${#exes[@]} -gt 0 ] || { echo "check_cuda_links: no executables in $build"; exit 1; }
bad=0
for e in "${exes[@]}"; do
  readelf -d "$e" | grep NEEDED | grep -q libcudart || { echo "check_cuda_links: $e does not link libcudart"; bad=1; }
done
for lib in libcudart libcublas libnccl; do
  readelf -d "$build/sama" | grep NEEDED | grep -q "$lib" || { echo "check_cuda_links: sama does not link $lib"; bad=1; }
done
echo "check_cuda_links: ${#exes[@]} executables link libcudart; sama links libcudart, libcublas and libnccl"
exit $bad
