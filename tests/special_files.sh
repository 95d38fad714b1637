#!/usr/bin/env bash
# Special files: a FIFO or /dev/zero as the deck, as data, as a checkpoint or behind `latest` is refused
# (or skipped, for a checkpoint) within seconds, without blocking and without reading without bound.
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
mkfifo "$work/fifo"
expect() {  # name, message, command...
  local name=$1 msg=$2
  shift 2
  timeout 10 "$@" >"$work/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 124 ] || fail "$name: still running after 10 s"
  [ $rc -ne 0 ] || fail "$name: exit 0"
  grep -q -- "$msg" "$work/$name.log" || fail "$name: message lacks '$msg': $(cat "$work/$name.log")"
  echo "$name: exit $rc: $(grep -m1 -- "$msg" "$work/$name.log")"
}
expect deck_fifo "is a FIFO (named pipe): only regular files are read" "$sama" train "$work/fifo" --out "$work/a"
expect deck_zero "is a character device" "$sama" train /dev/zero --out "$work/b"
expect data_fifo "is a FIFO" "$sama" train "$deck" --out "$work/c" --set data.source=hdf5 \
  --set "data.train_file=\"$work/fifo\"" --set "data.test_file=\"$work/fifo\""
expect mask_zero "is a character device" "$sama" train "$deck" --out "$work/d" --set "data.keep_mask=\"/dev/zero\""
for d in a b c d; do [ ! -e "$work/$d" ] || fail "a refused run created its run directory $d"; done

# An interrupted run whose `latest` points at /dev/zero and with a FIFO posing as a newer checkpoint:
# both are skipped with a message and the run resumes from the good checkpoint.
"$sama" train "$deck" --out "$work/run" --set train.steps=60 --set checkpoint.every_steps=20 \
  --set debug.preempt_step=29 >"$work/run.log" 2>&1
[ $? -eq 75 ] || fail "the preempted run did not exit 75: $(tail -n 3 "$work/run.log")"
ln -sf /dev/zero "$work/run/checkpoints/latest"
mkfifo "$work/run/checkpoints/step_000000000050.h5"
timeout 20 "$sama" train "$deck" --out "$work/run" --resume auto --set train.steps=60 --set checkpoint.every_steps=20 \
  >"$work/resume.log" 2>&1 || fail "resume failed or hung: $(tail -n 5 "$work/resume.log")"
grep "skipping damaged checkpoint" "$work/resume.log"
grep -q "latest' is a character device" "$work/resume.log" || fail "latest -> /dev/zero not reported"
grep -q "step_000000000050.h5' is a FIFO" "$work/resume.log" || fail "the FIFO checkpoint not reported"
grep -q "resuming from .*step_000000000030.h5" "$work/resume.log" || fail "did not resume from step 30"
[ -e "$work/run/summary.json" ] || fail "no summary after the resume"
echo "PASS"
