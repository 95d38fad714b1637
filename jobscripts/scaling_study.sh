#!/usr/bin/env bash
# Strong- and weak-scaling study of `sama train`: one run (one result directory with summary.json)
# per mode and rank count, then the table and plot of postprocess/scaling_report.py.
#
#   strong: fixed global batch GLOBAL_BATCH (default 256), P ranks share it
#   weak:   fixed per-rank batch LOCAL_BATCH (default 128), global batch = P × LOCAL_BATCH
#
# Locally (mpirun, oversubscribing if needed):
#   jobscripts/scaling_study.sh runs/scaling 1 2
# In a Slurm allocation (srun is used when SLURM_JOB_ID is set), e.g. over node counts:
#   salloc -N 4 --ntasks-per-node=32 jobscripts/scaling_study.sh runs/scaling 1 2 4 8 16 32 64 128
# or submit it: sbatch -N 4 --ntasks-per-node=32 --time=01:00:00 jobscripts/scaling_study.sh runs/scaling 1 ...
#
# Environment: SAMA (executable), DECK (default inputs/fmnist_reweight.toml), STEPS (default 600),
# MODES ("strong weak"), SETS (extra deck overrides, e.g. "parallel.bucket_mb=0.25").
#SBATCH --job-name=sama-scaling
#SBATCH --output=sama-scaling-%j.out
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sama=${SAMA:-$here/build/sama}
deck=${DECK:-$here/inputs/fmnist_reweight.toml}
steps=${STEPS:-600}
modes=${MODES:-strong weak}
global_batch=${GLOBAL_BATCH:-256}
local_batch=${LOCAL_BATCH:-128}
out=${1:-runs/scaling}
shift || true
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(1 2)

launch() {  # launch NP COMMAND...
  local np=$1
  shift
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    srun --ntasks="$np" --cpu-bind=cores "$@"
  else
    mpirun -np "$np" --oversubscribe --bind-to core "$@"
  fi
}

mkdir -p "$out"
for mode in $modes; do
  for np in "${ranks[@]}"; do
    if [ "$mode" = strong ]; then batch=$global_batch; else batch=$((np * local_batch)); fi
    dir="$out/${mode}_np${np}"
    if [ -f "$dir/summary.json" ]; then
      echo "skip $dir (complete)"
      continue
    fi
    rm -rf "$dir"
    args=(--set "train.steps=$steps" --set "train.batch_size=$batch" --set "meta.batch_size=$batch"
          --set "train.eval_interval=$steps" --set "train.log_interval=$((steps / 2))")
    for s in ${SETS:-}; do args+=(--set "$s"); done
    echo "== $mode scaling, $np rank(s), global batch $batch"
    launch "$np" "$sama" train "$deck" --out "$dir" "${args[@]}"
  done
done
/usr/bin/python3 "$here/postprocess/scaling_report.py" "$out" --out "$out/scaling.png"
