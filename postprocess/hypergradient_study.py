#!/usr/bin/python3
"""Table and plot of a hypergradient-quality study (jobscripts/hypergradient_study.sh): the mean cosine
between a method's λ-gradient and the reference's (CG or unrolled, same batches) against the probe
radius α, one line per base optimizer, one panel per model width; the norm ratio in the table.
Usage: hypergradient_study.py STUDY_DIR [--out PNG] [--csv CSV]"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import read_summary  # noqa: E402


def collect(study):
    manifest = os.path.join(study, "manifest.csv")
    if not os.path.exists(manifest):
        sys.exit(f"{study}: no manifest.csv (written by jobscripts/hypergradient_study.sh)")
    rows, missing = [], []
    with open(manifest) as f:
        for r in csv.DictReader(f):
            if not os.path.exists(os.path.join(r["run_dir"], "summary.json")):
                missing.append(r["run_dir"])
                continue
            s = read_summary(r["run_dir"])
            if not s.get("hypergrad_diagnoses"):
                sys.exit(f"{r['run_dir']}: summary.json has no hypergradient diagnoses (meta.diagnose_every = 0?)")
            rows.append({
                "method": r["method"], "optimizer": r["optimizer"], "alpha": float(r["alpha"]),
                "width": int(r["width"]), "reference": f"{r['reference']} K={r['reference_k']}",
                "cosine": s["mean_hypergrad_cosine"], "norm_ratio": s["mean_hypergrad_norm_ratio"],
                "diagnoses": s["hypergrad_diagnoses"], "final_test_accuracy": s["final_test_accuracy"],
                "run_dir": r["run_dir"]})
    for m in missing:
        print(f"note: {m} has no summary.json (incomplete): left out")
    if not rows:
        sys.exit(f"{study}: no completed runs")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("study")
    ap.add_argument("--out", help="PNG (default STUDY/hypergradient_study.png)")
    ap.add_argument("--csv", help="table (default STUDY/hypergradient_study.csv)")
    a = ap.parse_args()
    rows = collect(a.study)
    table = a.csv or os.path.join(a.study, "hypergradient_study.csv")
    cols = ["method", "optimizer", "alpha", "width", "reference", "cosine", "norm_ratio", "diagnoses",
            "final_test_accuracy", "run_dir"]
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    widths = sorted({r["width"] for r in rows})
    optimizers = sorted({r["optimizer"] for r in rows})
    alphas = sorted({r["alpha"] for r in rows})
    method = rows[0]["method"]
    print(f"mean cosine of {method}'s hypergradient to {rows[0]['reference']} (norm ratio), by width, optimizer, α")
    for width in widths:
        print(f"\nwidth {width}:\n\n| optimizer | " + " | ".join(f"α = {x:g}" for x in alphas) + " |")
        print("|---" * (len(alphas) + 1) + "|")
        for o in optimizers:
            cells = []
            for x in alphas:
                r = [r for r in rows if r["width"] == width and r["optimizer"] == o and r["alpha"] == x]
                cells.append(f"{r[0]['cosine']:.3f} ({r[0]['norm_ratio']:.2g})" if r else "")
            print(f"| {o} | " + " | ".join(cells) + " |")
    fig, axes = plt.subplots(1, len(widths), figsize=(4.5 * len(widths), 3.8), squeeze=False, sharey=True)
    for ax, width in zip(axes[0], widths):
        for o in optimizers:
            pts = sorted((r["alpha"], r["cosine"]) for r in rows if r["width"] == width and r["optimizer"] == o)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=o)
        ax.set_xscale("log")
        ax.set_xlabel("probe radius α (ε = α/‖D⊙v‖)")
        ax.set_title(f"width {width}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"cosine to {rows[0]['reference']}")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"{method}: hypergradient quality", fontsize=10)
    fig.tight_layout()
    png = a.out or os.path.join(a.study, "hypergradient_study.png")
    fig.savefig(png, dpi=110)
    print(f"\nwrote {table} and {png}")


if __name__ == "__main__":
    main()
