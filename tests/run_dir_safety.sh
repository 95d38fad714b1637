#!/usr/bin/env bash
# Run-directory ownership and safety:
#  1. a fresh run on an interrupted run's directory is refused (pointing to --resume auto / --overwrite)
#     and leaves it untouched; --overwrite replaces it; a completed run is refused the same way;
#  2. a second run, and a resume, on a directory in use are refused naming the holder (pid, host); the
#     first run is not disturbed and ends normally;
#  3. `latest` naming an older checkpoint than the newest good one: the newest is taken, and said;
#     a checkpoint renamed to another step is rejected; leftovers of failed writes are removed;
#  4. a repeated --set key and an empty deck are said on the header.
set -u
sama=$1
src=$2
work=$(mktemp -d)
first=""
cleanup() {
  [ -n "$first" ] && kill -9 "$first" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
short=(--set train.steps=60 --set checkpoint.every_steps=20 --set checkpoint.keep=5)

# 1. Interrupted, then refused, then overwritten; completed, then refused.
"$sama" train "$deck" --out "$work/r" "${short[@]}" --set debug.preempt_step=45 >"$work/r1.log" 2>&1
[ $? -eq 75 ] || fail "preempted run: exit not 75: $(tail -n 3 "$work/r1.log")"
state() { find "$1" -printf '%p %s %T@\n' | sort | md5sum; }
before=$(state "$work/r")
"$sama" train "$deck" --out "$work/r" "${short[@]}" >"$work/r2.log" 2>&1 && fail "a fresh run replaced an interrupted run"
cat "$work/r2.log"
grep -q "holds an interrupted run (checkpoints up to step 46" "$work/r2.log" || fail "message does not name the interrupted run"
grep -q -- "--resume auto" "$work/r2.log" || fail "message lacks --resume auto"
grep -q -- "--overwrite" "$work/r2.log" || fail "message lacks --overwrite"
[ "$(state "$work/r")" = "$before" ] || fail "the refused run changed the directory"
"$sama" train "$deck" --out "$work/r" "${short[@]}" --overwrite >"$work/r3.log" 2>&1 || fail "--overwrite failed: $(tail -n 3 "$work/r3.log")"
[ -e "$work/r/summary.json" ] || fail "no summary after --overwrite"
"$sama" train "$deck" --out "$work/r" "${short[@]}" >"$work/r4.log" 2>&1 && fail "a fresh run replaced a completed run"
grep -q "already holds a completed run" "$work/r4.log" || fail "completed run: $(cat "$work/r4.log")"
"$sama" train "$deck" --out "$work/r" --resume "$work/r" --overwrite "${short[@]}" >"$work/r5.log" 2>&1 &&
  fail "--overwrite with --resume accepted"
echo "interrupted/completed runs refused; --overwrite works"

# 2. Two runs on one directory.
"$sama" train "$deck" --out "$work/c" --set train.steps=200000 --set train.log_interval=100000 \
  --set train.eval_interval=100000 >"$work/c1.log" 2>&1 &
first=$!
for _ in $(seq 400); do [ -s "$work/c/.lock" ] && [ -e "$work/c/deck.resolved.toml" ] && break; sleep 0.05; done
"$sama" train "$deck" --out "$work/c" --overwrite --set train.steps=50 >"$work/c2.log" 2>&1 && fail "a second run on a directory in use started"
cat "$work/c2.log"
grep -q "in use by another sama run (pid $first on host $(hostname)" "$work/c2.log" || fail "the holder is not named"
"$sama" train "$deck" --out "$work/c" --resume auto --set train.steps=200000 >"$work/c3.log" 2>&1 && fail "a resume on a directory in use started"
grep -q "in use by another sama run (pid $first" "$work/c3.log" || fail "resume: the holder is not named"
kill -0 "$first" 2>/dev/null || fail "the first run died: $(tail -n 3 "$work/c1.log")"
kill -USR1 "$first"
wait "$first"
rc=$?
[ $rc -eq 75 ] || fail "the first run ended with $rc after SIGUSR1: $(tail -n 3 "$work/c1.log")"
grep -q "stopped at step .* (SIGUSR1 received)" "$work/c1.log" || fail "the stop message does not name SIGUSR1"
"$sama" train "$deck" --out "$work/c" --overwrite "${short[@]}" >"$work/c4.log" 2>&1 ||
  fail "a run after the holder ended failed: $(tail -n 3 "$work/c4.log")"
echo "concurrent runs refused, holder named; the lock is free once the holder ends"

# 3. `latest` older than the newest good checkpoint; a renamed checkpoint; leftovers.
"$sama" train "$deck" --out "$work/l" "${short[@]}" --set debug.preempt_step=45 >/dev/null 2>&1
ck="$work/l/checkpoints"
echo "step_000000000020.h5" >"$ck/latest"
cp "$ck/step_000000000020.h5" "$ck/step_000000000050.h5"
touch "$ck/step_000000000060.h5.tmp.12345" "$work/l/scores.h5.partial" "$work/l/summary.json.tmp.999"
"$sama" train "$deck" --out "$work/l" --resume auto "${short[@]}" >"$work/l.log" 2>&1 || fail "resume failed: $(tail -n 5 "$work/l.log")"
grep -E "skipping|note|resuming|removed" "$work/l.log"
grep -q "step_000000000050.h5' holds step 20, but its file name says step 50" "$work/l.log" || fail "renamed checkpoint not rejected"
grep -q "note: .*latest names step_000000000020.h5, but the newer step_000000000046.h5 is good" "$work/l.log" ||
  fail "an older latest is not reported"
grep -q "resuming from .*step_000000000046.h5" "$work/l.log" || fail "did not resume from the newest good checkpoint"
[ "$(grep -c "removed the leftover" "$work/l.log")" -eq 3 ] || fail "leftovers not removed"
[ -z "$(find "$work/l" -name "*.tmp.*" -o -name "*.partial")" ] || fail "leftovers remain"

# 4. Header notes.
"$sama" train "$deck" --out "$work/n" --set train.steps=5 --set train.steps=10 >"$work/n.log" 2>&1 || fail "run failed"
grep -q "warning: --set train.steps is given more than once: '10' replaces '5'" "$work/n.log" || fail "no repeated --set warning"
grep -q "^steps,\|10/10" "$work/n.log" || grep -q "10 steps" "$work/n.log" || fail "the last --set did not win"
: >"$work/empty.toml"
"$sama" train "$work/empty.toml" --out "$work/e" --set data.source=synthetic --set train.steps=2 --set train.batch_size=8 \
  --set meta.batch_size=8 --set data.synthetic_train=400 --set data.meta_size=100 >"$work/e.log" 2>&1 || fail "empty deck run failed: $(tail -n 3 "$work/e.log")"
grep -q "sets no key: every key takes its default" "$work/e.log" || fail "an empty deck is not reported"
echo "PASS"
