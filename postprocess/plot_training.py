#!/usr/bin/python3
"""Training curves of one or more sama runs: base/meta loss, test accuracy, meta weights of clean and
noisy samples. Usage: plot_training.py RUN_DIR [RUN_DIR ...] --out curves.png"""
import argparse
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
    ap.add_argument("--out", required=True, help="output PNG")
    args = ap.parse_args()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for run in args.runs:
        m = read_metrics(run)
        label = os.path.basename(os.path.normpath(run))
        ep = m["epoch"]
        ok = np.isfinite(m["base_loss"])
        axes[0, 0].plot(ep[ok], m["base_loss"][ok], label=label)
        ok = np.isfinite(m["meta_loss"])
        if ok.any():
            axes[0, 1].plot(ep[ok], m["meta_loss"][ok], label=label)
        ok = np.isfinite(m["test_accuracy"])
        axes[1, 0].plot(ep[ok], m["test_accuracy"][ok], marker=".", label=label)
        for col, style in (("weight_clean", "-"), ("weight_noisy", "--")):
            ok = np.isfinite(m[col])
            if ok.any():
                axes[1, 1].plot(ep[ok], m[col][ok], style, label=f"{label} {col.split('_')[1]}")
    titles = ["base loss (unweighted, observed labels)", "meta loss (clean meta set)", "test accuracy",
              "mean meta weight in the batch"]
    for ax, title in zip(axes.flat, titles):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
