#!/usr/bin/env bash
# Runs the default job and its baseline for several seeds (locally, one after another, or inside one
# Slurm allocation) and prints the comparison table.
#
#   jobscripts/compare_seeds.sh [OUT_DIR] [SEEDS...]      e.g. jobscripts/compare_seeds.sh runs/compare 1 2
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sama=${SAMA:-$here/build/sama}
out=${1:-runs/compare}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2)
launch=()
if [ -n "${SLURM_JOB_ID:-}" ]; then launch=(srun --ntasks=1); fi
runs=()
for seed in "${seeds[@]}"; do
  for deck in fmnist_baseline fmnist_reweight; do
    dir="$out/${deck}_seed$seed"
    if [ ! -f "$dir/summary.json" ]; then
      "${launch[@]}" "$sama" train "$here/inputs/$deck.toml" --out "$dir" --set "train.seed=$seed"
    fi
    runs+=("$dir")
  done
done
/usr/bin/python3 "$here/postprocess/compare_runs.py" "${runs[@]}"
