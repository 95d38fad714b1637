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
"$sama" bench --steps 3 --warmup 1 --json "$work/bench.json"
/usr/bin/python3 - "$work/bench.json" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
assert len(recs) == 4, recs
for r in recs:
    for k in ("method", "hidden", "batch", "samples_per_s", "achieved_gflops", "sgemm_gflops", "peak_rss_mb"):
        assert k in r, (k, r)
    assert r["samples_per_s"] > 0 and r["achieved_gflops"] > 0 and r["sgemm_gflops"] > 0 and r["peak_rss_mb"] > 0, r
assert {r["method"] for r in recs} == {"none", "sama"}
assert {r["hidden"] for r in recs} == {"256,256", "100"}
print("bench JSON ok:", len(recs), "records")
PY
