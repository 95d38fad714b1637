#!/usr/bin/env bash
# One rank fails mid-run (in the base step, while the other waits in a collective): the job must end
# within seconds, non-zero, naming the failing rank and the step; no summary.json.
set -u
mpiexec=$1
sama=$2
src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for np in 2 3; do
  start=$(date +%s.%N)
  timeout 60 "$mpiexec" -n $np --oversubscribe "$sama" train "$src/inputs/smoke.toml" --out "$work/run$np" \
    --set train.batch_size=66 --set meta.batch_size=66 --set debug.fail_step=40 --set debug.fail_rank=1 \
    >"$work/out" 2>"$work/err"
  rc=$?
  end=$(date +%s.%N)
  elapsed=$(echo "$end - $start" | bc)
  echo "np=$np: exit $rc after ${elapsed}s"
  head -n 3 "$work/err"
  [ $rc -ne 0 ] || { echo "FAIL: exit code 0"; exit 1; }
  [ $rc -ne 124 ] || { echo "FAIL: the job hung (killed by timeout)"; exit 1; }
  grep -q "error on rank 1: step 40 (base step)" "$work/err" || { echo "FAIL: message does not name rank and step"; exit 1; }
  [ ! -e "$work/run$np/summary.json" ] || { echo "FAIL: summary.json written"; exit 1; }
done
echo "rank failures end the job"
