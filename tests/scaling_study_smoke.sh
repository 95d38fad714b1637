#!/usr/bin/env bash
# jobscripts/scaling_study.sh on the smoke deck at 1 and 2 ranks; the report must list both modes.
set -eu
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SAMA=$sama DECK=$src/inputs/smoke.toml STEPS=40 GLOBAL_BATCH=64 LOCAL_BATCH=32 \
  bash "$src/jobscripts/scaling_study.sh" "$work/study" 1 2 | tee "$work/log"
for mode in strong weak; do
  for np in 1 2; do
    [ -f "$work/study/${mode}_np$np/summary.json" ] || { echo "missing ${mode}_np$np"; exit 1; }
    grep -qE "^$mode +$np " "$work/log" || { echo "report lacks $mode $np"; exit 1; }
  done
done
[ -s "$work/study/scaling.png" ] || { echo "no plot"; exit 1; }
# Rerunning skips completed runs.
SAMA=$sama DECK=$src/inputs/smoke.toml STEPS=40 bash "$src/jobscripts/scaling_study.sh" "$work/study" 1 2 | grep -q "skip"
echo "scaling study ok"
