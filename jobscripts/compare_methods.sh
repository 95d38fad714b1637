#!/usr/bin/env bash
# Runs one deck once per meta.method (default: the default job, every hypergradient method) and prints
# the comparison table (postprocess/compare_runs.py). Completed runs are skipped, interrupted ones
# resumed; JOBS runs go at once locally (default 1), one srun task each inside a Slurm allocation.
#
#   jobscripts/compare_methods.sh [OUT_DIR] [METHODS...]
#   e.g. JOBS=2 jobscripts/compare_methods.sh runs/methods none sama sama_jvp finite_difference neumann cg unrolled
#
# Environment: SAMA (executable), DECK (default inputs/fmnist_reweight.toml), SETS (extra overrides
# for every run, space-separated section.key=value).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sama=${SAMA:-$here/build/sama}
deck=${DECK:-$here/inputs/fmnist_reweight.toml}
jobs=${JOBS:-1}
read -r -a sets <<<"${SETS:-}"
out=${1:-runs/methods}
shift || true
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(none sama sama_jvp finite_difference neumann cg unrolled)
launch=()
if [ -n "${SLURM_JOB_ID:-}" ]; then launch=(srun --ntasks=1 --exclusive); fi
mkdir -p "$out"
runs=()
for method in "${methods[@]}"; do
  dir="$out/$method"
  runs+=("$dir")
  [ -f "$dir/summary.json" ] && { echo "skip $dir (done)"; continue; }
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  echo "run $dir"
  "${launch[@]}" "$sama" train "$deck" --out "$dir" --resume auto --set "meta.method=$method" \
    "${sets[@]/#/--set=}" >"$dir.log" 2>&1 &
done
failed=0
for pid in $(jobs -p); do wait "$pid" || failed=1; done
[ $failed -eq 0 ] || { echo "compare_methods.sh: a run failed (logs: $out/*.log)" >&2; exit 1; }
/usr/bin/python3 "$here/postprocess/compare_runs.py" "${runs[@]}"
