#!/usr/bin/env bash
# A file on which libhdf5 1.10 itself crashes (tests/fuzz/known) must give exit 1 and a message
# naming the file, not a crash: sama reads user HDF5 files in a child process first.
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bad="$src/tests/fuzz/known/hdf5_segv_stab_lookup.h5"
"$sama" train "$src/inputs/smoke.toml" --out "$work/run" --set data.source=hdf5 \
  --set "data.train_file=\"$bad\"" --set "data.test_file=\"$bad\"" >"$work/out" 2>&1
rc=$?
cat "$work/out"
[ $rc -eq 1 ] || { echo "FAIL: exit $rc, expected 1"; exit 1; }
grep -q "hdf5_segv_stab_lookup.h5: the HDF5 library crashed reading this file" "$work/out" ||
  { echo "FAIL: message does not name the file"; exit 1; }
[ ! -e "$work/run" ] || { echo "FAIL: a run directory was created"; exit 1; }
echo "libhdf5 crash contained"
