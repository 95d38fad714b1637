#!/usr/bin/python3
"""The weight net's health over one or more sama runs (metrics.csv): its pre-activation (min, mean,
max over each logging window: the sigmoid net's logit, or the softmax/monotone net's log-weight
relative to a zero-loss sample), the norm of the λ-gradient, the spread of the weights (coefficient
of variation) and the share of saturated weights; a vertical line where the collapse detector fired.
Usage: weight_net_health.py RUN_DIR [RUN_DIR ...] --out health.png"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import read_metrics  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="run directories (each with metrics.csv)")
    ap.add_argument("--labels", nargs="*", help="legend labels (default: the directory names)")
    ap.add_argument("--out", required=True, help="output PNG")
    args = ap.parse_args()
    labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
    if len(labels) != len(args.runs):
        sys.exit("weight_net_health.py: --labels needs one label per run")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for i, (run, label) in enumerate(zip(args.runs, labels)):
        m = read_metrics(run)
        if "logit_mean" not in m:
            sys.exit(f"{run}/metrics.csv: no weight-net columns (a run of meta.method none, or an older version)")
        color = f"C{i}"
        ep = m["epoch"]
        ok = np.isfinite(m["logit_mean"])
        axes[0, 0].plot(ep[ok], m["logit_mean"][ok], color=color, label=label)
        axes[0, 0].fill_between(ep[ok], m["logit_min"][ok], m["logit_max"][ok], color=color, alpha=0.15)
        ok = np.isfinite(m["lambda_grad_norm"])
        axes[0, 1].semilogy(ep[ok], np.maximum(m["lambda_grad_norm"][ok], 1e-30), color=color, label=label)
        ok = np.isfinite(m["weight_spread"])
        axes[1, 0].plot(ep[ok], m["weight_spread"][ok], color=color, label=label)
        axes[1, 1].plot(ep[ok], m["weight_saturated"][ok], color=color, label=label)
        summary = os.path.join(run, "summary.json")
        at = json.load(open(summary)).get("meta_weight_collapsed_at_step") if os.path.exists(summary) else None
        if at is None and "weight_collapsed" in m:  # an unfinished run: the first flagged window
            flagged = np.flatnonzero(m["weight_collapsed"] == 1)
            at = m["step"][flagged[0]] if len(flagged) else None
        if at is not None:
            epoch_at = np.interp(at, m["step"], ep)
            for ax in axes.flat:
                ax.axvline(epoch_at, color=color, linestyle=":", linewidth=1)
    titles = ["pre-activation z: mean, band = min..max", "‖∇λ L_meta‖ (mean over meta steps)",
              "weight spread (std/mean of the weights)", "share of saturated weights"]
    for ax, title in zip(axes.flat, titles):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
