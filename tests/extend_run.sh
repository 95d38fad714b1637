#!/usr/bin/env bash
# Extending a finished run: 20 steps, then --resume with train.steps=40, equals a straight 40-step run
# to the bit (weights.h5, scores.h5, the test accuracy rows; constant learning rate); the finished run's
# files are kept (its metrics rows, its summary as summary.step_20.json). A completed run is not
# extended without more steps, nor from anything but its final checkpoint.
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
common=(--set train.log_interval=10 --set train.eval_interval=20 --set checkpoint.every_steps=15)
"$sama" train "$deck" --out "$work/straight" --set train.steps=40 "${common[@]}" >"$work/straight.log" 2>&1 ||
  fail "straight run failed"
"$sama" train "$deck" --out "$work/ext" --set train.steps=20 "${common[@]}" >"$work/a.log" 2>&1 || fail "20-step run failed"
[ -e "$work/ext/checkpoints/step_000000000020.h5" ] || fail "no final checkpoint at completion"
head -n 3 "$work/ext/metrics.csv" >"$work/first_rows.csv"
"$sama" train "$deck" --out "$work/ext" --resume "$work/ext" --set train.steps=20 "${common[@]}" >"$work/same.log" 2>&1 &&
  fail "a completed run was resumed without more steps"
grep -q "nothing to resume. To train it longer" "$work/same.log" || fail "message: $(cat "$work/same.log")"
"$sama" train "$deck" --out "$work/ext" --resume "$work/ext" --set train.steps=40 "${common[@]}" >"$work/b.log" 2>&1 ||
  fail "extension failed: $(tail -n 3 "$work/b.log")"
grep "extending the completed run" "$work/b.log" || fail "the extension is not said"
cmp "$work/straight/weights.h5" "$work/ext/weights.h5" || fail "weights.h5 differs from the straight run"
cmp "$work/straight/scores.h5" "$work/ext/scores.h5" || fail "scores.h5 differs from the straight run"
# Test accuracy/loss at each evaluation (columns step, test_accuracy, test_loss) are identical.
diff <(cut -d, -f1,12,13 "$work/straight/metrics.csv" | grep -v ",,") <(cut -d, -f1,12,13 "$work/ext/metrics.csv" | grep -v ",,") ||
  fail "evaluations differ"
diff "$work/first_rows.csv" <(head -n 3 "$work/ext/metrics.csv") >/dev/null || fail "the finished run's metrics rows changed"
[ -e "$work/ext/summary.step_20.json" ] || fail "the finished run's summary was not kept"
grep -q '"steps": 40' "$work/ext/summary.json" || fail "summary.json is not that of the extension"
grep -q '"extended_from": "summary.step_20.json"' "$work/ext/summary.json" || fail "summary.json lacks extended_from"
# A completed run without a final checkpoint (only an earlier one) cannot be extended.
rm "$work/ext/checkpoints/step_000000000040.h5"
"$sama" train "$deck" --out "$work/ext" --resume auto --set train.steps=60 "${common[@]}" >"$work/c.log" 2>&1 &&
  fail "extended from a non-final checkpoint"
grep -q "has no final checkpoint" "$work/c.log" || fail "message: $(cat "$work/c.log")"
echo "PASS: 20 + 20 steps extended equals 40 straight steps to the bit"
