#!/usr/bin/env bash
# Data-pruning study: score the training samples once, prune by each score, retrain on what is kept,
# and compare with random pruning and with the full data.
#
#   (a) one scoring run (default inputs/fmnist_reweight.toml: SAMA, so meta_weight is scored too),
#       writing OUT_DIR/<setting>/score_run/scores.h5;
#   (b) for each keep fraction, method and seed: `sama prune` (OUT_DIR/<setting>/masks/) and a retrain
#       with the retrain deck (default inputs/fmnist_baseline.toml, meta.method = none) on the kept
#       samples (data.keep_mask), seed train.seed = S, in OUT_DIR/<setting>/runs/<method>_keep<K>_seed<S>;
#   (c) a full-data reference per seed (no mask) in OUT_DIR/<setting>/runs/full_seed<S>;
#   (d) one table OUT_DIR/pruning_results.csv (postprocess/collect_pruning.py; every setting run into
#       this OUT_DIR) and the plot OUT_DIR/pruning_curves.png (postprocess/pruning_curves.py).
#
# Every run uses the same data and noise as the scoring run: data.seed is fixed (--data-seed, default
# 1) while train.seed varies, so the mask's samples and observed labels match the retrain's. Runs whose
# summary.json exists are skipped; an interrupted run continues from its checkpoints (--resume auto).
#
#   jobscripts/pruning_study.sh OUT_DIR [--setting noisy|clean] [--seeds "1 2"] [--keeps "0.9 0.7 0.5 0.3"]
#       [--methods "meta_weight el2n grand forgetting random"] [--epochs E] [--steps S] [--score-epochs E]
#       [--deck SCORING_DECK] [--retrain-deck DECK] [--retrain-method none] [--data-seed D]
#       [--class-balanced] [--ranks NP] [--set section.key=value ...]
#
#   --setting clean: no label noise (data.noise_type = none, data.noise_rate = 0) in every run.
#   --epochs / --steps: train.epochs / train.steps of the retrains and references (default: the deck's);
#   --score-epochs: train.epochs of the scoring run; --set: an override for every run (repeatable).
#
# Locally: SAMA=build/sama NP=2 jobscripts/pruning_study.sh runs/pruning   (mpirun when NP > 1; MPIRUN
# names the launcher). Under Slurm (srun when SLURM_JOB_ID is set), e.g.
#   sbatch --ntasks=4 --time=04:00:00 jobscripts/pruning_study.sh runs/pruning --ranks 4
#SBATCH --job-name=sama-pruning
#SBATCH --output=sama-pruning-%j.out
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sama=${SAMA:-$here/build/sama}
python=${PYTHON:-/usr/bin/python3}
np_ranks=${NP:-1}
mpirun_cmd=${MPIRUN:-mpirun}

usage() { sed -n '2,/^#SBATCH/p' "${BASH_SOURCE[0]}" | grep -v '^#SBATCH' | sed 's/^# \{0,1\}//'; }
die() { echo "pruning_study.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h | --help) usage; exit 0 ;; -*) die "the first argument must be OUT_DIR, got '$1'" ;; esac
out=$1
shift
setting=noisy
seeds="1 2"
keeps="0.9 0.7 0.5 0.3"
methods="meta_weight el2n grand forgetting random"
epochs=""
steps=""
score_epochs=""
score_deck=$here/inputs/fmnist_reweight.toml
retrain_deck=$here/inputs/fmnist_baseline.toml
retrain_method=none
data_seed=1
balanced=()
extra=()
while [ $# -gt 0 ]; do
  case $1 in --class-balanced | -h | --help) ;; *) [ $# -ge 2 ] || die "option $1 needs a value" ;; esac
  case $1 in
    --setting) setting=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --keeps) keeps=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --score-epochs) score_epochs=$2; shift 2 ;;
    --deck) score_deck=$2; shift 2 ;;
    --retrain-deck) retrain_deck=$2; shift 2 ;;
    --retrain-method) retrain_method=$2; shift 2 ;;
    --data-seed) data_seed=$2; shift 2 ;;
    --ranks) np_ranks=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    --class-balanced) balanced=(--class-balanced); shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case $setting in
  noisy) setting_sets=() ;;
  clean) setting_sets=(--set data.noise_type=none --set data.noise_rate=0) ;;
  *) die "--setting must be noisy or clean, got '$setting'" ;;
esac
for f in "$score_deck" "$retrain_deck"; do [ -f "$f" ] || die "deck '$f' does not exist"; done
[ -x "$sama" ] || die "sama executable '$sama' not found (set SAMA=path/to/sama)"
for m in $methods; do
  case $m in meta_weight | meta_log_weight | meta_weight_envelope | el2n | grand | forgetting | loss | random) ;; *) die "unknown method '$m' in --methods" ;; esac
done
if [ -z "$seeds" ] || [ -z "$keeps" ]; then die "--seeds and --keeps must not be empty"; fi

launch() {  # launch COMMAND...: sama train on np_ranks ranks
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    srun --ntasks="$np_ranks" --cpu-bind=cores "$@"
  elif [ "$np_ranks" -gt 1 ]; then
    "$mpirun_cmd" -np "$np_ranks" --oversubscribe --bind-to core "$@"
  else
    "$@"
  fi
}

base=$out/$setting
mkdir -p "$base/masks" "$base/runs"
base=$(cd "$base" && pwd)  # masks are named by absolute path in the retrain decks
same_data=(--set "data.seed=$data_seed" "${setting_sets[@]}")
retrain_sets=(--set "meta.method=$retrain_method" --set scores.enabled=false)
[ -z "$epochs" ] || retrain_sets+=(--set "train.epochs=$epochs")
[ -z "$steps" ] || retrain_sets+=(--set "train.steps=$steps")

# (a) the scoring run
score_run=$base/score_run
if [ -f "$score_run/summary.json" ]; then
  echo "skip $score_run (complete)"
else
  score_sets=(--set "train.seed=$data_seed" --set scores.enabled=true)
  [ -z "$score_epochs" ] || score_sets+=(--set "train.epochs=$score_epochs")
  echo "== scoring run ($setting): $score_deck"
  launch "$sama" train "$score_deck" --out "$score_run" --resume auto "${same_data[@]}" "${score_sets[@]}" \
    "${extra[@]}"
fi
[ -f "$score_run/scores.h5" ] || die "the scoring run wrote no $score_run/scores.h5"

retrain() {  # retrain RUN_DIR SEED [MASK]
  local dir=$1 seed=$2 mask=${3:-}
  if [ -f "$dir/summary.json" ]; then
    echo "skip $dir (complete)"
    return
  fi
  local sets=(--set "train.seed=$seed")
  [ -z "$mask" ] || sets+=(--set "data.keep_mask=\"$mask\"")
  echo "== $(basename "$dir")"
  launch "$sama" train "$retrain_deck" --out "$dir" --resume auto "${same_data[@]}" "${retrain_sets[@]}" \
    "${sets[@]}" "${extra[@]}"
}

# (c) full-data references, (b) pruned retrains
for seed in $seeds; do
  retrain "$base/runs/full_seed$seed" "$seed"
done
for keep in $keeps; do
  for method in $methods; do
    for seed in $seeds; do
      name=${method}_keep${keep}_seed${seed}
      if [ "$method" = random ]; then mask=$base/masks/$name.h5; else mask=$base/masks/${method}_keep${keep}.h5; fi
      if [ ! -f "$base/runs/$name/summary.json" ] && [ ! -f "$mask" ]; then
        "$sama" prune --scores "$score_run/scores.h5" --by "$method" --keep "$keep" --seed "$seed" \
          "${balanced[@]}" --out "$mask"
      fi
      retrain "$base/runs/$name" "$seed" "$mask"
    done
  done
done

# (d) one table over every setting in OUT_DIR, and the curves
"$python" "$here/postprocess/collect_pruning.py" "$out" --out "$out/pruning_results.csv"
"$python" "$here/postprocess/pruning_curves.py" "$out/pruning_results.csv" --out "$out/pruning_curves.png"
