#!/usr/bin/python3
"""Collects the runs of a pruning study (jobscripts/pruning_study.sh) into one CSV table.

Layout read: OUT_DIR/<setting>/runs/<run>/ (summary.json, deck.resolved.toml) and, for the full-data
reference, OUT_DIR/<setting>/score_run/scores.h5. A run's method, keep fraction, kept count and share of
noisy labels kept come from the attributes of the mask named by its data.keep_mask; a run without a
mask is the full-data reference (method "full", keep 1). Incomplete runs (no summary.json) are listed
and left out.

Columns: setting, method, keep, seed, kept, noisy_fraction_kept, final_test_accuracy,
best_test_accuracy, run_dir.

Usage: collect_pruning.py OUT_DIR [--out OUT_DIR/pruning_results.csv]"""
import argparse
import csv
import os
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import read_keep_mask, read_scores, read_summary  # noqa: E402

COLUMNS = ["setting", "method", "keep", "seed", "kept", "noisy_fraction_kept", "final_test_accuracy",
           "best_test_accuracy", "run_dir"]


def resolved_deck(run):
    path = os.path.join(run, "deck.resolved.toml")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read the resolved deck: {e}") from e


def mask_path(run, path):
    """data.keep_mask as written in the deck: absolute, or relative to where the run was started."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(run, path)


def collect(out_dir):
    rows, incomplete = [], []
    full_n = {}  # setting -> (N, noisy fraction) from the scoring run
    for setting in sorted(os.listdir(out_dir)):
        runs_dir = os.path.join(out_dir, setting, "runs")
        if not os.path.isdir(runs_dir):
            continue
        scores = os.path.join(out_dir, setting, "score_run", "scores.h5")
        if os.path.exists(scores):
            s = read_scores(scores)
            full_n[setting] = (len(s["sample_id"]), float(s["is_noisy"].mean()))
        for name in sorted(os.listdir(runs_dir)):
            run = os.path.join(runs_dir, name)
            if not os.path.isdir(run):
                continue
            if not os.path.exists(os.path.join(run, "summary.json")):
                incomplete.append(run)
                continue
            summary = read_summary(run)
            deck = resolved_deck(run)
            mask = deck.get("data", {}).get("keep_mask", "")
            row = {"setting": setting, "seed": deck.get("train", {}).get("seed", summary.get("seed", "")),
                   "final_test_accuracy": summary["final_test_accuracy"],
                   "best_test_accuracy": summary["best_test_accuracy"], "run_dir": run}
            if mask:
                m = read_keep_mask(mask_path(run, mask))
                a = m["attrs"]
                row.update(method=a.get("by", "?"), keep=a.get("keep_fraction", ""), kept=int(m["keep"].sum()),
                           noisy_fraction_kept=a.get("noisy_fraction_kept", ""))
            else:
                n, noisy = full_n.get(setting, ("", ""))
                row.update(method="full", keep=1.0, kept=n, noisy_fraction_kept=noisy)
            rows.append(row)
    rows.sort(key=lambda r: (r["setting"], r["method"], -float(r["keep"]), int(r["seed"])))
    return rows, incomplete


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", help="the pruning study's output directory")
    ap.add_argument("--out", help="CSV to write (default OUT_DIR/pruning_results.csv)")
    args = ap.parse_args()
    if not os.path.isdir(args.out_dir):
        sys.exit(f"collect_pruning.py: {args.out_dir}: no such directory")
    try:
        rows, incomplete = collect(args.out_dir)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"collect_pruning.py: {e}")
    for run in incomplete:
        print(f"note: {run} has no summary.json (incomplete): left out", file=sys.stderr)
    if not rows:
        sys.exit(f"collect_pruning.py: {args.out_dir}: no completed runs under <setting>/runs/")
    out = args.out or os.path.join(args.out_dir, "pruning_results.csv")
    tmp = out + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(rows)} runs")


if __name__ == "__main__":
    main()
