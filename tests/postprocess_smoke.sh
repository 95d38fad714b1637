#!/usr/bin/env bash
# The Python analysis scripts on the outputs of a short real run.
set -eu
sama=$1
src=$2
py=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$sama" train "$src/inputs/smoke.toml" --out "$work/sama" >/dev/null
"$sama" train "$src/inputs/smoke.toml" --out "$work/none" --set meta.method=none >/dev/null
"$py" "$src/postprocess/plot_training.py" "$work/sama" "$work/none" --out "$work/curves.png"
"$py" "$src/postprocess/weights_report.py" "$work/sama" --out "$work/weights.png" | tee "$work/report.txt"
"$py" "$src/postprocess/compare_runs.py" "$work/sama" "$work/none" | tee "$work/table.txt"
for f in curves.png weights.png; do
  [ -s "$work/$f" ] || { echo "missing $f"; exit 1; }
  head -c 8 "$work/$f" | od -An -c | grep -q "P   N   G" || { echo "$f is not a PNG"; exit 1; }
done
# The smoke run separates clean from noisy samples: AUROC well above chance.
auc=$(sed -n 's/.*AUROC (low weight = noisy, by log_weight): \([0-9.]*\)/\1/p' "$work/report.txt")
"$py" -c "import sys; a=float('$auc'); sys.exit(0 if a > 0.7 else 1)" || { echo "AUROC $auc too low"; exit 1; }
grep -q "mean final test accuracy, sama (1 runs)" "$work/table.txt"
# The AUROC helper against a hand-computed case: scores [0.1,0.4,0.35,0.8], positives [0,0,1,1] -> 0.75.
"$py" - "$src/postprocess" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from sama_results import auroc, precision_at
assert abs(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 0.75) < 1e-12
assert abs(auroc([1, 1, 1, 1], [0, 1, 0, 1]) - 0.5) < 1e-12
assert precision_at([0.9, 0.1, 0.8], [1, 0, 0], 2) == 0.5
print("auroc/precision helpers ok")
PY
echo "postprocess ok"
