#!/usr/bin/env bash
# `sama info` reports the build; `sama bench` runs and writes well-formed JSON records.
set -eu
sama=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$sama" info | tee "$work/info.txt"
for key in "git commit" "Kokkos" "execution space" "BLAS" "BLAS core" "BLAS threading" "threads" "MPI" "HDF5" "CUDA" "cuBLAS" "NCCL"; do
  grep -q "$key" "$work/info.txt" || { echo "sama info lacks '$key'"; exit 1; }
done
# A core the user sets is respected and reported as theirs (OpenBLAS only; Prescott runs anywhere).
if grep -q "OpenBLAS" "$work/info.txt"; then
  OPENBLAS_CORETYPE=Prescott "$sama" info | grep "BLAS core" | tee "$work/core.txt"
  grep -q "Prescott (OPENBLAS_CORETYPE=Prescott)" "$work/core.txt" ||
    { echo "sama info does not report the user's OPENBLAS_CORETYPE"; exit 1; }
fi
"$sama" bench --steps 3 --warmup 1 --json "$work/bench.json" | tee "$work/bench.txt"
grep -q "Kokkos per timed step" "$work/bench.txt" || { echo "sama bench prints no Kokkos counts"; exit 1; }
# A host back end (Serial, OpenMP) allocates no View in a training step: the counts say so.
host_space=0
grep -E "execution space" "$work/info.txt" | grep -qE "Serial|OpenMP|Threads" && host_space=1
/usr/bin/python3 - "$work/bench.json" "$host_space" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
host_space = sys.argv[2] == "1"
for r in recs:
    for k in ("counted_steps", "view_allocations_host_per_step", "view_allocations_device_per_step",
              "view_allocations_max_in_a_step", "deep_copies_host_to_device_per_step",
              "deep_copies_device_to_host_per_step", "deep_copies_same_space_per_step", "kernel_launches_per_step",
              "regions_per_step"):
        assert k in r, (k, r)
    assert r["counted_steps"] == 3 and r["kernel_launches_per_step"] > 0 and r["regions_per_step"] > 0, r
    if host_space:
        assert r["view_allocations_max_in_a_step"] == 0, r
        assert r["deep_copies_host_to_device_per_step"] == 0 and r["deep_copies_device_to_host_per_step"] == 0, r
assert len(recs) == 4, recs
for r in recs:
    for k in ("method", "hidden", "batch", "samples_per_s", "achieved_gflops", "sgemm_gflops", "peak_rss_mb"):
        assert k in r, (k, r)
    assert r["samples_per_s"] > 0 and r["achieved_gflops"] > 0 and r["sgemm_gflops"] > 0 and r["peak_rss_mb"] > 0, r
assert {r["method"] for r in recs} == {"none", "sama"}
assert {r["hidden"] for r in recs} == {"256,256", "100"}
print("bench JSON ok:", len(recs), "records")
PY
# --no-counters: the same records without the counts.
"$sama" bench --steps 2 --warmup 0 --no-counters --json "$work/bench_plain.json" > "$work/bench_plain.txt"
! grep -q "Kokkos per timed step" "$work/bench_plain.txt" || { echo "--no-counters still counts"; exit 1; }
/usr/bin/python3 - "$work/bench_plain.json" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
assert len(recs) == 4 and all("kernel_launches_per_step" not in r and r["samples_per_s"] > 0 for r in recs), recs
print("bench --no-counters JSON ok")
PY
