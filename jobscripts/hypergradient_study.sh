#!/usr/bin/env bash
# Where does SAMA's identity approximation break? Short runs of a method (default sama) with the
# hypergradient diagnostic on: every N meta steps the λ-gradient is compared, on the same batches,
# with a reference (CG with K iterations: the implicit-function hypergradient), and the run's mean
# cosine and norm ratio go to its summary.json. One run per (probe radius α, base optimizer, width),
# then postprocess/hypergradient_study.py writes OUT_DIR/hypergradient_study.csv and the plot.
#
#   jobscripts/hypergradient_study.sh OUT_DIR
#
# Environment: SAMA (executable), DECK (default inputs/fmnist_reweight.toml), METHOD (default sama),
# STEPS (default 300), EVERY (diagnose every N meta steps, default 10), REFERENCE (cg or unrolled,
# default cg), REF_K (default 20), ALPHAS ("0.01 0.1 1 10"), OPTIMIZERS ("sgd adam rmsprop adagrad
# lion lamb"), WIDTHS ("64 256 1024": model.hidden = [W, W]), NP (ranks, default 1; mpirun or srun),
# SETS (extra deck overrides). Runs whose summary.json exists are skipped.
#SBATCH --job-name=sama-hypergrad
#SBATCH --output=sama-hypergrad-%j.out
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sama=${SAMA:-$here/build/sama}
python=${PYTHON:-/usr/bin/python3}
deck=${DECK:-$here/inputs/fmnist_reweight.toml}
method=${METHOD:-sama}
steps=${STEPS:-300}
every=${EVERY:-10}
reference=${REFERENCE:-cg}
ref_k=${REF_K:-20}
alphas=${ALPHAS:-0.01 0.1 1 10}
optimizers=${OPTIMIZERS:-sgd adam rmsprop adagrad lion lamb}
widths=${WIDTHS:-64 256 1024}
np_ranks=${NP:-1}
read -r -a sets <<<"${SETS:-}"
out=${1:?usage: hypergradient_study.sh OUT_DIR (settings in the environment; see the header)}
[ -x "$sama" ] || { echo "hypergradient_study.sh: no executable '$sama' (set SAMA)" >&2; exit 2; }
mkdir -p "$out"

# A learning rate that trains each optimizer on this problem (constant schedule: D keeps its scale).
lr_of() {
  case $1 in
    sgd) echo 0.05 ;; adam | rmsprop | lamb) echo 1e-3 ;; adagrad) echo 1e-2 ;; lion) echo 1e-4 ;;
    *) echo "hypergradient_study.sh: no learning rate for optimizer '$1'" >&2; exit 2 ;;
  esac
}

launch() {
  if [ "$np_ranks" -le 1 ]; then
    "$@"
  elif [ -n "${SLURM_JOB_ID:-}" ]; then
    srun --ntasks="$np_ranks" "$@"
  else
    mpirun -np "$np_ranks" --oversubscribe "$@"
  fi
}

manifest=$out/manifest.csv
echo "method,optimizer,alpha,width,reference,reference_k,run_dir" >"$manifest"
for width in $widths; do
  for opt in $optimizers; do
    for alpha in $alphas; do
      dir=$out/${method}_${opt}_alpha${alpha}_width${width}
      echo "$method,$opt,$alpha,$width,$reference,$ref_k,$dir" >>"$manifest"
      if [ -f "$dir/summary.json" ]; then
        echo "skip $dir (done)"
        continue
      fi
      momentum=()
      [ "$opt" = sgd ] && momentum=(--set optimizer.momentum=0.9)
      echo "run $dir"
      launch "$sama" train "$deck" --out "$dir" --resume auto --set "meta.method=$method" \
        --set "optimizer.name=$opt" --set "optimizer.lr=$(lr_of "$opt")" "${momentum[@]}" \
        --set "meta.alpha=$alpha" --set "model.hidden=[$width, $width]" --set schedule.name=constant \
        --set "train.steps=$steps" --set "train.log_interval=$steps" --set "train.eval_interval=$steps" \
        --set "meta.diagnose_every=$every" --set "meta.diagnose_reference=$reference" \
        --set "meta.diagnose_k=$ref_k" --set scores.enabled=false "${sets[@]/#/--set=}" >"$dir.log" 2>&1 ||
        { tail -n 5 "$dir.log" >&2; echo "hypergradient_study.sh: run $dir failed (log: $dir.log)" >&2; exit 1; }
    done
  done
done
"$python" "$here/postprocess/hypergradient_study.py" "$out"
