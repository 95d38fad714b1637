#!/usr/bin/env bash
# Signals and a dead launcher, at 2 ranks (and one singleton):
#  1. SIGTERM and SIGINT to mpirun: Open MPI forwards SIGTERM to the ranks, which commit a stop
#     checkpoint and exit 75; mpirun itself exits 1 (Open MPI 4.1), within 10 s; --resume auto continues.
#  2. SIGTERM to rank 1 alone: every rank stops at the same step; rank 0 says "SIGTERM received by another
#     rank" (not "wall-time budget"); exit 75.
#  3. SIGINT to a single process: stop checkpoint, exit 130.
#  4. kill -9 of mpirun: no rank outlives it by more than 5 s, and nothing is written after; an
#     immediate --resume auto is not blocked (the lock died with rank 0) and continues.
#  5. A single process without a launcher is not an orphan when its parent shell exits.
set -u
mpiexec=$1
sama=$2
src=$3
work=$(mktemp -d)
trap 'pkill -9 -P $$ 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
long=(--set train.steps=2000000 --set train.log_interval=1000000 --set train.eval_interval=1000000
      --set checkpoint.every_steps=500)
now() { date +%s.%N; }
started() {  # wait until the run in $1 has committed a checkpoint
  for _ in $(seq 600); do [ -e "$1/checkpoints/latest" ] && return 0; sleep 0.05; done
  fail "$1: no checkpoint after 30 s"
}
alive() {  # is any of the pids alive (not a zombie)?
  local p st
  for p in "$@"; do
    st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && return 0
  done
  return 1
}

# 1. SIGTERM / SIGINT to mpirun (a checkpoint every 500 steps).
for sig in TERM INT; do
  "$mpiexec" -n 2 --oversubscribe "$sama" train "$deck" --out "$work/$sig" "${long[@]}" >"$work/$sig.log" 2>&1 &
  pid=$!
  started "$work/$sig"
  t0=$(now)
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  secs=$(echo "$(now) - $t0" | bc)
  echo "SIG$sig to mpirun: exit $rc after $secs s; $(grep -m1 "stopped at step" "$work/$sig.log")"
  [ "$(echo "$secs < 10" | bc)" -eq 1 ] || fail "SIG$sig: took $secs s"
  # mpirun SIGKILLs the ranks about 1-2 s after forwarding SIGTERM: the stop checkpoint is committed
  # when it fits in that time (usually: 0.2 s), else the previous checkpoint stays the newest good one.
  if ! grep -q "stopped at step [0-9]* on request (SIGTERM received)" "$work/$sig.log"; then
    echo "SIG$sig: no stop checkpoint before mpirun's SIGKILL (a slow disk?): $(grep "checkpoint at" "$work/$sig.log" | tail -n 1)"
  fi
  [ $rc -eq 1 ] || [ $rc -eq 75 ] || fail "SIG$sig: mpirun exit $rc"
  [ ! -e "$work/$sig/summary.json" ] || fail "SIG$sig: summary.json written"
done
last=$(sed 's/step_0*\([0-9]*\)\.h5/\1/' "$work/TERM/checkpoints/latest")
"$mpiexec" -n 2 --oversubscribe "$sama" train "$deck" --out "$work/TERM" --resume auto "${long[@]}" \
  --set debug.preempt_step=$((last + 50)) >"$work/TERMb.log" 2>&1
[ $? -eq 75 ] || fail "resume after SIGTERM failed: $(tail -n 3 "$work/TERMb.log")"
echo "resumed after SIGTERM: $(grep -m1 "resuming from" "$work/TERMb.log")"

# 2. SIGTERM to rank 1 only.
"$mpiexec" -n 2 --oversubscribe "$sama" train "$deck" --out "$work/r1" "${long[@]}" >"$work/r1.log" 2>&1 &
pid=$!
started "$work/r1"
rank1=$(pgrep -P "$pid" -f "sama train" | sort -n | tail -n 1)
kill -TERM "$rank1"
wait "$pid"
rc=$?
echo "SIGTERM to one rank: exit $rc; $(grep -m1 "stopped at step" "$work/r1.log")"
[ $rc -eq 75 ] || fail "exit $rc, expected 75: $(tail -n 5 "$work/r1.log")"
grep -q "on request (SIGTERM received by another rank)" "$work/r1.log" || fail "the stop reason is not named"
! grep -q "wall-time" "$work/r1.log" || fail "logged as a wall-time budget"

# 3. SIGINT to a single process.
"$sama" train "$deck" --out "$work/int1" "${long[@]}" >"$work/int1.log" 2>&1 &
pid=$!
started "$work/int1"
kill -INT "$pid"
wait "$pid"
rc=$?
echo "SIGINT to one process: exit $rc; $(grep -m1 "stopped at step" "$work/int1.log")"
[ $rc -eq 130 ] || fail "exit $rc, expected 130"
grep -q "(SIGINT received); checkpoint committed" "$work/int1.log" || fail "no stop checkpoint after SIGINT"

# 4. kill -9 of mpirun.
"$mpiexec" -n 2 --oversubscribe "$sama" train "$deck" --out "$work/k9" "${long[@]}" >"$work/k9.log" 2>&1 &
pid=$!
started "$work/k9"
mapfile -t ranks < <(pgrep -P "$pid" -f "sama train")
[ ${#ranks[@]} -eq 2 ] || fail "found ${#ranks[@]} rank processes"
kill -9 "$pid"
t0=$(now)
while alive "${ranks[@]}" && [ "$(echo "$(now) - $t0 < 5" | bc)" -eq 1 ]; do sleep 0.02; done
secs=$(echo "$(now) - $t0" | bc)
alive "${ranks[@]}" && fail "ranks ${ranks[*]} still alive 5 s after kill -9 of mpirun"
echo "kill -9 mpirun: ranks gone after $secs s"
state() { find "$1" -printf '%p %s %T@\n' | sort; }
snapshot=$(state "$work/k9")
sleep 1
[ "$(state "$work/k9")" = "$snapshot" ] || fail "files changed after the ranks died"
last=$(sed 's/step_0*\([0-9]*\)\.h5/\1/' "$work/k9/checkpoints/latest")
"$mpiexec" -n 2 --oversubscribe "$sama" train "$deck" --out "$work/k9" --resume auto "${long[@]}" \
  --set debug.preempt_step=$((last + 50)) >"$work/k9b.log" 2>&1
[ $? -eq 75 ] || fail "immediate resume after kill -9 failed: $(tail -n 3 "$work/k9b.log")"
grep -q "resuming from .*step_0*$last.h5" "$work/k9b.log" || fail "did not resume from the last checkpoint"

# 5. Not an orphan: a single process (no launcher) whose parent shell exits mid-run trains on.
bash -c "\"$sama\" train \"$deck\" --out \"$work/nohup\" --set train.steps=30000 --set train.log_interval=10000 \
  >\"$work/nohup.log\" 2>&1 & sleep 1.5"
for _ in $(seq 600); do [ -e "$work/nohup/summary.json" ] && break; grep -q "launcher" "$work/nohup.log" && break; sleep 0.05; done
[ -e "$work/nohup/summary.json" ] || fail "a single process stopped when its parent shell exited: $(tail -n 2 "$work/nohup.log")"
echo "a single process outlives its parent shell and completes"
echo "PASS"
