#!/usr/bin/env bash
# Data pruning end to end: a short real training run writes scores.h5; `sama prune` by every method
# (counts, directions, copied ids and labels checked against scores.h5); score_report.py; a pruning
# study in miniature (jobscripts/pruning_study.sh on the smoke deck, both settings) with its table,
# its rerun skipping completed runs, and pruning_curves.py.
set -eu
sama=$1
src=$2
py=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
is_png() {
  if ! [ -s "$1" ] || ! head -c 8 "$1" | od -An -c | grep -q "P   N   G"; then fail "$1 is missing or not a PNG"; fi
}

# The detection scores over the same epochs as meta_weight's default window [1, 5), for the AM-GM check.
"$sama" train "$src/inputs/smoke.toml" --out "$work/run" --set "scores.detection_epochs=[1, 5]" >/dev/null
[ -f "$work/run/scores.h5" ] || fail "the training run wrote no scores.h5"
# meta_weight is the arithmetic mean of the weights a sample got, meta_log_weight the mean of their
# logs over the same visits: so meta_weight >= exp(meta_log_weight) (AM >= GM), equal only where every visit gave the same
# weight; no visit here reaches the cap, and some samples' weights varied over the epochs.
"$py" - "$work/run/scores.h5" <<'PY'
import re, sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f:
    am, lg = f["scores/meta_weight"][:], f["scores/meta_log_weight"][:]
    cap = float(re.search(r"counts at most ([0-9.e+]+)", f["scores/meta_weight"].attrs["description"].decode()
                          if isinstance(f["scores/meta_weight"].attrs["description"], bytes)
                          else f["scores/meta_weight"].attrs["description"]).group(1))
ok = np.isfinite(am) & np.isfinite(lg)
assert ok.sum() > 0.9 * len(am), f"only {ok.sum()} of {len(am)} samples have both weight scores"
gm = np.exp(lg[ok])
assert am[ok].max() < cap, f"a mean weight {am[ok].max()} reaches the cap {cap}"
assert (am[ok] >= gm * (1 - 1e-5) - 1e-9).all(), f"AM < GM for {(am[ok] < gm * (1 - 1e-5) - 1e-9).sum()} samples"
assert (am[ok] > gm * (1 + 1e-3)).mean() > 0.5, "the mean weight equals the geometric mean for most samples"
print(f"ok meta_weight >= exp(meta_log_weight) for {ok.sum()} samples; cap {cap:g}")
PY

# Every method, plain and class-balanced.
keep=0.3
for method in meta_weight meta_log_weight el2n grand forgetting loss random; do
  for cb in "" --class-balanced; do
    mask="$work/mask_${method}${cb:+_cb}.h5"
    # shellcheck disable=SC2086 # $cb is empty or one flag
    "$sama" prune --scores "$work/run/scores.h5" --by "$method" --keep "$keep" --seed 3 $cb --out "$mask" \
      | tee "$work/prune.log"
    grep -q "^sama prune: kept .* by $method" "$work/prune.log" || fail "no summary line for $method"
    grep -q "noisy labels: .* of kept vs .* overall" "$work/prune.log" || fail "no noisy fraction for $method"
    "$py" - "$src/postprocess" "$work/run/scores.h5" "$mask" "$method" "$keep" "${cb:+1}" <<'PY'
import math, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from sama_results import read_keep_mask, read_scores
s, m = read_scores(sys.argv[2]), read_keep_mask(sys.argv[3])
method, keep, balanced = sys.argv[4], float(sys.argv[5]), sys.argv[6] == "1"
rounded = lambda x: math.floor(x + 0.5)
assert np.array_equal(m["sample_id"], s["sample_id"]), "mask ids differ from scores.h5"
assert np.array_equal(m["label_observed"], s["label_observed"]), "mask labels differ from scores.h5"
assert m["attrs"]["by"] == method and abs(m["attrs"]["keep_fraction"] - keep) < 1e-12
groups = [s["label_observed"] == c for c in np.unique(s["label_observed"])] if balanced else [np.ones(len(m["keep"]), bool)]
for g in groups:
    kept = int(m["keep"][g].sum())
    assert kept == rounded(keep * g.sum()), f"{method}: kept {kept} of {g.sum()}, expected round({keep} * {g.sum()})"
    if method != "random":  # the highest scores are kept: every kept score >= every pruned one
        v, k = s["scores"][method][g], m["keep"][g]
        kept_v, pruned_v = v[k], v[~k]
        assert not np.isnan(kept_v).any() or np.isnan(pruned_v).all(), f"{method}: a NaN kept while a number was pruned"
        f_k, f_p = kept_v[np.isfinite(kept_v)], pruned_v[np.isfinite(pruned_v)]
        assert len(f_k) == 0 or len(f_p) == 0 or f_k.min() >= f_p.max(), f"{method}: a pruned score beats a kept one"
noisy_kept = s["is_noisy"][m["keep"]].mean()
assert abs(noisy_kept - m["attrs"]["noisy_fraction_kept"]) < 1e-12
print(f"ok {method}{' class-balanced' if balanced else ''}: kept {int(m['keep'].sum())}, noisy {noisy_kept:.3f}")
PY
  done
done
# The same seed gives the same random mask, another seed another one.
"$sama" prune --scores "$work/run/scores.h5" --by random --keep "$keep" --seed 3 --out "$work/again.h5" >/dev/null
"$sama" prune --scores "$work/run/scores.h5" --by random --keep "$keep" --seed 4 --out "$work/other.h5" >/dev/null
"$py" - "$src/postprocess" "$work" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from sama_results import read_keep_mask
a, b, c = (read_keep_mask(f"{sys.argv[2]}/{n}.h5")["keep"] for n in ("mask_random", "again", "other"))
assert np.array_equal(a, b) and not np.array_equal(a, c), "random masks: same seed must agree, other seeds differ"
PY

# score_report.py: histograms, table, no images for synthetic data.
"$py" "$src/postprocess/score_report.py" "$work/run" --out "$work/report" | tee "$work/report.log"
grep -q "skipping image grids: data_source = synthetic has no images" "$work/report.log" || fail "no image-grid skip message"
for s in meta_weight meta_log_weight meta_weight_envelope el2n grand forgetting loss; do is_png "$work/report/hist_$s.png"; done
[ "$(wc -l <"$work/report/score_report.csv")" -eq 8 ] || fail "score_report.csv should have a header and 7 rows"
"$py" - "$work/report/score_report.csv" <<'PY'
import csv, sys
rows = {r["score"]: r for r in csv.DictReader(open(sys.argv[1]))}
assert rows["meta_weight"]["noisy_if"] == "low" and rows["el2n"]["noisy_if"] == "high"
# The smoke run separates clean from noisy labels: every detector well above chance.
for name, r in rows.items():
    assert float(r["auroc"]) > 0.7, f"{name}: AUROC {r['auroc']}"
PY

# The study in miniature: 1 keep, 2 methods, 1 seed, short retrains; noisy and clean.
study="$work/study"
for setting in noisy clean; do
  SAMA=$sama PYTHON=$py bash "$src/jobscripts/pruning_study.sh" "$study" --setting "$setting" \
    --deck "$src/inputs/smoke.toml" --retrain-deck "$src/inputs/smoke.toml" --steps 60 \
    --keeps 0.5 --methods "el2n random" --seeds 1 --set train.log_interval=30 --set train.eval_interval=30 \
    >"$work/study_$setting.log" 2>&1 || { cat "$work/study_$setting.log"; fail "pruning_study.sh --setting $setting"; }
done
csv_file="$study/pruning_results.csv"
[ -f "$csv_file" ] || fail "no $csv_file"
"$py" - "$csv_file" "$study" <<'PY'
import csv, math, os, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = "setting,method,keep,seed,kept,noisy_fraction_kept,final_test_accuracy,best_test_accuracy,run_dir"
with open(sys.argv[1]) as f:
    assert f.readline().strip() == cols, "unexpected columns"
got = sorted((r["setting"], r["method"], float(r["keep"]), int(r["seed"])) for r in rows)
want = sorted((s, m, k, 1) for s in ("noisy", "clean") for m, k in (("full", 1.0), ("el2n", 0.5), ("random", 0.5)))
assert got == want, f"rows {got}, expected {want}"
for r in rows:
    n = int(next(x for x in rows if x["setting"] == r["setting"] and x["method"] == "full")["kept"])
    assert int(r["kept"]) == math.floor(float(r["keep"]) * n + 0.5), f"kept {r['kept']} of {n} at keep {r['keep']}"
    assert 0.0 <= float(r["final_test_accuracy"]) <= 1.0
    assert os.path.exists(os.path.join(r["run_dir"], "summary.json"))
    import json
    trained = json.load(open(os.path.join(r["run_dir"], "summary.json")))["train_samples"]
    assert trained == int(r["kept"]), f"{r['run_dir']} trained on {trained} samples, the mask keeps {r['kept']}"
    noisy = float(r["noisy_fraction_kept"])
    assert (noisy == 0.0) if r["setting"] == "clean" else noisy > 0.2, f"noisy fraction {noisy} in {r['setting']}"
print(f"pruning table ok: {len(rows)} rows")
PY
# The retrains name their mask; the clean setting has no noise anywhere.
grep -q "keep_mask = .*el2n_keep0.5.h5" "$study/noisy/runs/el2n_keep0.5_seed1/deck.resolved.toml" || fail "retrain deck lacks the mask"
grep -q 'noise_type = .none' "$study/clean/runs/random_keep0.5_seed1/deck.resolved.toml" || fail "clean retrain is noisy"
is_png "$study/pruning_curves.png"
# Rerunning skips completed runs and rebuilds the table.
SAMA=$sama PYTHON=$py bash "$src/jobscripts/pruning_study.sh" "$study" --setting noisy --deck "$src/inputs/smoke.toml" \
  --retrain-deck "$src/inputs/smoke.toml" --steps 60 --keeps 0.5 --methods "el2n random" --seeds 1 \
  >"$work/rerun.log" 2>&1 || { cat "$work/rerun.log"; fail "rerun"; }
[ "$(grep -c '^skip ' "$work/rerun.log")" -eq 4 ] || { cat "$work/rerun.log"; fail "the rerun should skip 4 runs"; }
"$py" "$src/postprocess/pruning_curves.py" "$csv_file" --out "$work/curves.png" | tee "$work/curves.log"
is_png "$work/curves.png"
grep -q "^| el2n | " "$work/curves.log" || fail "no markdown row for el2n"
grep -q "^| full data | " "$work/curves.log" || fail "no markdown row for the full data"
echo "pruning ok"
