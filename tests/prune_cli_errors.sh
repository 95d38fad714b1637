#!/usr/bin/env bash
# `sama prune` with bad arguments or input: a non-zero exit, a message naming the option, file or
# dataset, no mask written, and the scores file never touched.
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# Scores of a short run with meta.method = none: every score but meta_weight.
if ! "$sama" train "$src/inputs/smoke.toml" --out "$work/none" --set meta.method=none --set train.steps=40 \
  >"$work/train.log" 2>&1; then
  cat "$work/train.log"; echo "FAIL: the training run for the scores failed"; exit 1
fi
scores="$work/none/scores.h5"
[ -f "$scores" ] || { echo "FAIL: the training run wrote no scores.h5"; exit 1; }
checksum=$(cksum <"$scores")

# expect_failure NAME EXPECTED_FRAGMENT... -- PRUNE_ARGS...   (the mask goes to $work/NAME.h5 unless given)
expect_failure() {
  local name=$1; shift
  local fragments=()
  while [ "$1" != "--" ]; do fragments+=("$1"); shift; done
  shift
  local mask="$work/$name.h5"
  "$sama" prune "$@" >"$work/$name.stdout" 2>"$work/$name.stderr"
  local rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: exit code 0"; failures=$((failures + 1)); return
  fi
  for f in "${fragments[@]}"; do
    if ! grep -qF -- "$f" "$work/$name.stderr"; then
      echo "FAIL $name: message lacks '$f':"; cat "$work/$name.stderr"; failures=$((failures + 1)); return
    fi
  done
  if [ -e "$mask" ]; then
    echo "FAIL $name: wrote $mask"; failures=$((failures + 1)); return
  fi
  echo "ok   $name (exit $rc): $(head -c 240 "$work/$name.stderr")"
}

expect_failure missing_scores "$work/nope.h5" "does not exist" -- \
  --scores "$work/nope.h5" --by el2n --keep 0.5 --out "$work/missing_scores.h5"
expect_failure missing_score "$scores" "/scores/meta_weight" "available: el2n, forgetting, grand, loss" \
  "meta.method = \"none\"" -- --scores "$scores" --by meta_weight --keep 0.5 --out "$work/missing_score.h5"
expect_failure unknown_by "--by 'entropy'" "meta_weight, meta_log_weight, meta_weight_envelope, el2n, grand, forgetting, loss, random" -- \
  --scores "$scores" --by entropy --keep 0.5 --out "$work/unknown_by.h5"
expect_failure keep_zero "--keep 0" "(0, 1]" -- --scores "$scores" --by el2n --keep 0 --out "$work/keep_zero.h5"
expect_failure keep_above_one "--keep 1.5" "(0, 1]" -- --scores "$scores" --by el2n --keep 1.5 --out "$work/keep_above_one.h5"
expect_failure keep_negative "--keep -0.2" "(0, 1]" -- --scores "$scores" --by loss --keep=-0.2 --out "$work/keep_negative.h5"
expect_failure keeps_none "keeps none" -- --scores "$scores" --by loss --keep 0.0001 --out "$work/keeps_none.h5"
expect_failure no_keep "--keep" -- --scores "$scores" --by el2n --out "$work/no_keep.h5"
expect_failure overwrite_scores "refusing to overwrite" "$scores" -- --scores "$scores" --by el2n --keep 0.5 --out "$scores"
expect_failure overwrite_scores_alias "refusing to overwrite" -- \
  --scores "$scores" --by el2n --keep 0.5 --out "$work/none/../none/scores.h5"
[ "$(cksum <"$scores")" = "$checksum" ] || { echo "FAIL: the scores file changed"; failures=$((failures + 1)); }
head -c 2000 /dev/urandom >"$work/garbage.h5"
expect_failure not_hdf5 "garbage.h5" "not an HDF5 file" -- --scores "$work/garbage.h5" --by el2n --keep 0.5 --out "$work/not_hdf5.h5"
expect_failure out_is_dir "is a directory" -- --scores "$scores" --by el2n --keep 0.5 --out "$work/none"
expect_failure out_dir_missing "--out '$work/no_dir/m.h5'" "directory '$work/no_dir' does not exist" -- --scores "$scores" --by el2n --keep 0.5 \
  --out "$work/no_dir/m.h5"
# A good call writes the mask and leaves no temporary file.
if "$sama" prune --scores "$scores" --by el2n --keep 0.5 --out "$work/good.h5" >"$work/good.log" 2>&1 &&
  [ -f "$work/good.h5" ] && ! ls "$work"/good.h5.tmp.* >/dev/null 2>&1; then
  echo "ok   good: $(cat "$work/good.log")"
else
  echo "FAIL good:"; cat "$work/good.log"; failures=$((failures + 1))
fi

if [ $failures -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all prune error cases rejected"
