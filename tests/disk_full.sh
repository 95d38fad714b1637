#!/usr/bin/env bash
# Disk full (a small tmpfs), at 1 and 2 ranks: a checkpoint, or scores.h5 after training, that does not
# fit ends the run with exit 1 and the ENOSPC message (no crash in HDF5's clean-up at MPI_Finalize: was
# exit 139), no temporary or .partial file left, no summary.json; with space again, --resume auto
# completes. Needs root (mount); skipped (77) otherwise.
set -u
mpiexec=$1
sama=$2
src=$3
work=$(mktemp -d)
mnt="$work/small"
mkdir "$mnt"
trap 'umount "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=700k tmpfs "$mnt" 2>/dev/null; then
  echo "SKIP: mounting a small tmpfs needs root (and mount rights)"
  exit 77
fi
deck="$src/inputs/smoke.toml"
check_failed() {  # name, log
  local name=$1 log=$2 rc=$3
  [ "$rc" -eq 1 ] || fail "$name: exit $rc, expected 1: $(tail -n 5 "$log")"
  grep -q "No space left on device" "$log" || fail "$name: no ENOSPC message: $(tail -n 5 "$log")"
  [ -z "$(find "$mnt" -name "*.tmp.*" -o -name "*.partial")" ] || fail "$name: leftovers: $(find "$mnt" -name "*.tmp.*" -o -name "*.partial")"
  [ ! -e "$mnt/r/summary.json" ] || fail "$name: summary.json written"
  echo "$name: exit $rc, $(grep -m1 -o "error on rank [0-9]*: [^:]*" "$log"): No space left on device"
}
for np in 1 2; do
  # A checkpoint does not fit (the third one, on 700 kB).
  rm -rf "$mnt/r"
  mount -o remount,size=700k "$mnt" || fail "cannot resize the tmpfs"
  "$mpiexec" -n $np --oversubscribe "$sama" train "$deck" --out "$mnt/r" --set checkpoint.every_steps=50 >"$work/a.log" 2>&1
  check_failed "np $np, checkpoint" "$work/a.log" $?
  # scores.h5 does not fit after training (450 kB, one checkpoint kept).
  rm -rf "$mnt/r"
  mount -o remount,size=450k "$mnt" || fail "cannot resize the tmpfs"
  "$mpiexec" -n $np --oversubscribe "$sama" train "$deck" --out "$mnt/r" --set checkpoint.keep=1 >"$work/b.log" 2>&1
  check_failed "np $np, scores.h5" "$work/b.log" $?
  # Space again: the run resumes from its final checkpoint and completes.
  mount -o remount,size=4m "$mnt" || fail "cannot resize the tmpfs"
  "$mpiexec" -n $np --oversubscribe "$sama" train "$deck" --out "$mnt/r" --resume auto --set checkpoint.keep=1 >"$work/c.log" 2>&1 ||
    fail "np $np: resume with space failed: $(tail -n 3 "$work/c.log")"
  [ -e "$mnt/r/summary.json" ] || fail "np $np: resume did not complete (no summary.json)"
  [ -e "$mnt/r/scores.h5" ] || fail "np $np: resume did not complete (no scores.h5)"
  [ -z "$(find "$mnt" -name "*.tmp.*" -o -name "*.partial")" ] || fail "np $np: leftovers after the resume"
  echo "np $np: resumed and completed once space was back"
done
echo "PASS"
