#!/usr/bin/env bash
# Bad input must give a clear message naming the file/key, a non-zero exit, and no run directory that
# looks complete (no summary.json).
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
smoke="$src/inputs/smoke.toml"

# expect_failure NAME EXPECTED_FRAGMENT... -- ARGS...
expect_failure() {
  local name=$1; shift
  local fragments=()
  while [ "$1" != "--" ]; do fragments+=("$1"); shift; done
  shift
  local out="$work/out_$name"
  "$sama" "$@" --out "$out" >"$work/$name.stdout" 2>"$work/$name.stderr"
  local rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: exit code 0"; failures=$((failures + 1)); return
  fi
  for f in "${fragments[@]}"; do
    if ! grep -qF -- "$f" "$work/$name.stderr"; then
      echo "FAIL $name: message lacks '$f':"; cat "$work/$name.stderr"; failures=$((failures + 1)); return
    fi
  done
  if [ -e "$out/summary.json" ]; then
    echo "FAIL $name: left $out/summary.json"; failures=$((failures + 1)); return
  fi
  echo "ok   $name (exit $rc): $(head -c 200 "$work/$name.stderr")"
}

printf '[train]\nseed = 1\nbatchsize = 3\n' >"$work/unknown.toml"
expect_failure unknown_key "unknown.toml:3" "train.batchsize" -- train "$work/unknown.toml"
printf '[train]\nbatch_size = "x"\n' >"$work/type.toml"
expect_failure wrong_type "type.toml:2" "train.batch_size" "integer" -- train "$work/type.toml"
printf '[data]\nnoise_rate = 2.0\n' >"$work/range.toml"
expect_failure out_of_range "range.toml:2" "data.noise_rate" "out of range" -- train "$work/range.toml"
expect_failure missing_deck "nope.toml" -- train "$work/nope.toml"
expect_failure bad_set "train.sed" -- train "$smoke" --set train.sed=3
expect_failure missing_data "$work/no_such_dir" -- train "$src/inputs/fmnist_reweight.toml" --set "data.path=\"$work/no_such_dir\""
head -c 1000 /dev/urandom >"$work/garbage.h5"
expect_failure corrupt_hdf5 "garbage.h5" -- train "$smoke" --set data.source=hdf5 \
  --set "data.train_file=\"$work/garbage.h5\"" --set "data.test_file=\"$work/garbage.h5\""
mkdir -p "$work/fm"
printf 'not gzip, not idx' >"$work/fm/train-images-idx3-ubyte.gz"
cp /dev/null "$work/fm/train-labels-idx1-ubyte.gz"
cp /dev/null "$work/fm/t10k-images-idx3-ubyte.gz"
cp /dev/null "$work/fm/t10k-labels-idx1-ubyte.gz"
expect_failure corrupt_idx "train-images-idx3-ubyte.gz" -- train "$src/inputs/fmnist_reweight.toml" --set "data.path=\"$work/fm\""
expect_failure batch_too_big "batch_size" -- train "$smoke" --set train.batch_size=100000
# Outputs never overwrite inputs: a deck or data file that is one of the run's output files.
mkdir -p "$work/out_overwrite_deck"
cp "$smoke" "$work/out_overwrite_deck/deck.resolved.toml"
expect_failure overwrite_deck "would overwrite the input" -- train "$work/out_overwrite_deck/deck.resolved.toml"
[ "$(cat "$work/out_overwrite_deck/deck.resolved.toml")" = "$(cat "$smoke")" ] || {
  echo "FAIL overwrite_deck: the input deck was modified"; failures=$((failures + 1)); }
mkdir -p "$work/out_resume_without_checkpoint"
expect_failure resume_without_checkpoint "no checkpoint" -- train "$smoke" --resume "$work/out_resume_without_checkpoint"
expect_failure resume_elsewhere "must be the run directory" -- train "$smoke" --resume "$work"
"$sama" train >/dev/null 2>&1 && { echo "FAIL: train without a deck exited 0"; failures=$((failures + 1)); }

if [ $failures -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all CLI error cases rejected"
