#!/usr/bin/env bash
# A run directory path of 228 characters or more (Open MPI's sharedfp/lockedfile overflowed its buffer
# in MPI_File_open for scores.h5.partial there): runs at 1 and 2 ranks complete, resume, and write
# scores.h5; here with paths of 240 and 300 characters.
set -u
mpiexec=$1
sama=$2
src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
long_dir() {  # a directory path of exactly $1 characters under $work
  local d=$work
  while [ $((${#d} + 51)) -lt "$1" ]; do d="$d/$(printf 'd%.0s' $(seq 50))"; done
  local rest=$(($1 - ${#d} - 1))
  d="$d/$(printf 'r%.0s' $(seq "$rest"))"
  echo "$d"
}
for len in 240 300; do
  for np in 1 2; do
    dir=$(long_dir "$len")
    [ ${#dir} -eq "$len" ] || fail "path of ${#dir} characters, wanted $len"
    "$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$dir" --set train.steps=60 --set train.batch_size=64 \
      --set meta.batch_size=64 --set debug.preempt_step=29 >"$work/a.log" 2>&1
    rc=$?
    [ $rc -eq 75 ] || fail "np $np, $len chars: preempted run: exit $rc: $(tail -n 5 "$work/a.log")"
    [ -e "$dir/checkpoints/latest" ] || fail "np $np, $len chars: no checkpoint"
    "$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$dir" --resume auto --set train.steps=60 \
      --set train.batch_size=64 --set meta.batch_size=64 >"$work/b.log" 2>&1 ||
      fail "np $np, $len chars: resume failed: $(tail -n 5 "$work/b.log")"
    [ -e "$dir/scores.h5" ] || fail "np $np, $len chars: no scores.h5"
    [ -e "$dir/summary.json" ] || fail "np $np, $len chars: no summary.json"
    echo "np $np: run directory of $len characters: preempted, resumed, completed with scores.h5"
    rm -rf "$work/d"* "$work/r"*
  done
done
echo "PASS"
