#!/usr/bin/env bash
# Threads per rank (threads.hpp) in the real executable: where they come from (OMP_NUM_THREADS, else
# SLURM_CPUS_PER_TASK, else 1 on Serial Kokkos), what `sama info`, the run header, summary.json and
# the bench JSON say, and that a run with 2 BLAS threads repeats to the bit (OpenBLAS splits a GEMM
# between threads by rows and columns of C, the same way every time for a given thread count; the
# bits differ from a 1-thread run, see README.md "Hybrid MPI + threads").
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
clean=(env -u OMP_NUM_THREADS -u SLURM_CPUS_PER_TASK -u OPENBLAS_NUM_THREADS)

"${clean[@]}" "$sama" info >"$work/info.txt" 2>&1 || fail "sama info failed"
grep -q "^  threads " "$work/info.txt" || fail "sama info has no threads line: $(cat "$work/info.txt")"
openblas=0
grep -q "BLAS threading    pthreads" "$work/info.txt" && openblas=1
if grep -q "execution space Serial" "$work/info.txt"; then
  grep -q "threads           1 per rank (default: one per rank): Kokkos Serial concurrency 1, BLAS 1 thread" \
    "$work/info.txt" || fail "default is not one thread per rank: $(grep threads "$work/info.txt")"
fi
"${clean[@]}" OMP_NUM_THREADS=2 "$sama" info 2>/dev/null | grep "^  threads" | tee "$work/t2.txt"
grep -q "2 per rank (OMP_NUM_THREADS=2)" "$work/t2.txt" || fail "OMP_NUM_THREADS=2 not taken"
"${clean[@]}" SLURM_CPUS_PER_TASK=2 "$sama" info 2>/dev/null | grep "^  threads" | tee "$work/s2.txt"
grep -q "2 per rank (SLURM_CPUS_PER_TASK=2)" "$work/s2.txt" || fail "SLURM_CPUS_PER_TASK=2 not taken"
"${clean[@]}" OMP_NUM_THREADS=lots "$sama" info >"$work/bad.txt" 2>&1 || fail "an invalid OMP_NUM_THREADS is fatal"
grep -q "warning: threads: OMP_NUM_THREADS='lots' is not a positive thread count: ignored" "$work/bad.txt" ||
  fail "no warning for OMP_NUM_THREADS=lots: $(cat "$work/bad.txt")"
if [ "$openblas" = 1 ]; then
  grep -q "BLAS 2 thread(s)" "$work/t2.txt" || fail "OpenBLAS does not run 2 threads"
  "${clean[@]}" OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 "$sama" info 2>/dev/null | grep -q \
    "BLAS 1 thread(s) (OPENBLAS_NUM_THREADS=1)" || fail "OPENBLAS_NUM_THREADS does not override the BLAS threads"
fi

# bench: threads in the text and the JSON.
"${clean[@]}" OMP_NUM_THREADS=2 "$sama" bench --hidden 100 --method none --steps 2 --warmup 1 --json "$work/b.json" \
  >"$work/b.txt" 2>&1 || fail "bench failed: $(cat "$work/b.txt")"
grep -q "^threads: 2 per rank (OMP_NUM_THREADS=2)" "$work/b.txt" || fail "bench text: $(cat "$work/b.txt")"
/usr/bin/python3 - "$work/b.json" "$openblas" <<'PY' || fail "bench JSON"
import json, sys
recs = json.load(open(sys.argv[1]))
assert len(recs) == 1 and recs[0]["hidden"] == "100" and recs[0]["method"] == "none", recs
r = recs[0]
assert r["ranks"] == 1 and r["threads_per_rank"] == 2 and r["threads_source"] == "OMP_NUM_THREADS=2", r
assert r["kokkos_concurrency"] >= 1 and "kokkos_space" in r, r
if sys.argv[2] == "1":
    assert r["blas_threads"] == 2, r
PY

# Training with 2 threads per rank: header and summary say so; two runs are identical to the bit.
deck="$src/inputs/smoke.toml"
for run in a b; do
  "${clean[@]}" OMP_NUM_THREADS=2 "$sama" train "$deck" --out "$work/$run" --set train.steps=30 \
    >"$work/$run.log" 2>&1 || fail "training run $run failed: $(tail -n 3 "$work/$run.log")"
done
grep -q "^sama: threads 2 per rank (OMP_NUM_THREADS=2)" "$work/a.log" || fail "run header: $(head -n 12 "$work/a.log")"
cmp "$work/a/weights.h5" "$work/b/weights.h5" || fail "two runs with 2 threads per rank differ"
/usr/bin/python3 - "$work/a/summary.json" "$openblas" <<'PY' || fail "summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["threads_per_rank"] == 2 and s["threads_source"] == "OMP_NUM_THREADS=2", s
assert s["kokkos_concurrency"] >= 1, s
if sys.argv[2] == "1":
    assert s["blas_threads"] == 2, s
PY
# Extending run a (2 threads) with 1 thread: a note says the continuation is not bitwise.
if [ "$openblas" = 1 ]; then
  "${clean[@]}" OMP_NUM_THREADS=1 "$sama" train "$deck" --out "$work/a" --resume "$work/a" --set train.steps=40 \
    >"$work/a1.log" 2>&1 || fail "extending with 1 thread failed: $(tail -n 3 "$work/a1.log")"
  grep -q "^sama: note: the checkpoint was written with 2 BLAS thread(s) .* this run has 1 and" "$work/a1.log" ||
    fail "no note on the changed thread count: $(grep -i note "$work/a1.log")"
  "${clean[@]}" OMP_NUM_THREADS=2 "$sama" train "$deck" --out "$work/b" --resume "$work/b" --set train.steps=40 \
    >"$work/b2.log" 2>&1 || fail "extending with 2 threads failed: $(tail -n 3 "$work/b2.log")"
  grep -q "checkpoint was written with" "$work/b2.log" && fail "a note although the threads did not change"
fi
echo "threads per rank: sources, reports and repeatability ok"
