#!/usr/bin/python3
"""Per-sample meta weights of a sama run (weights.h5): mean weight of clean and noisy samples, the
noise-detection AUROC of a low weight, the precision at the noise rate, and a histogram (PNG) of the
log-weight. The ranking uses `log_weight` (the weight's log, not clamped at e^±80, so samples the
clamp ties stay ranked) where the file has it, else `meta_weight`.
Usage: weights_report.py RUN_DIR [--out weights.png]"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import auroc, precision_at, read_weights  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", help="run directory (with weights.h5)")
    ap.add_argument("--out", help="histogram PNG (default RUN/weights.png)")
    args = ap.parse_args()
    w = read_weights(args.run)
    weight = w["meta_weight"].astype(np.float64)
    noisy = w["is_noisy"].astype(bool)
    has_log = "log_weight" in w
    logw = w["log_weight"].astype(np.float64) if has_log else np.log(np.maximum(weight, 1e-300))
    if not np.array_equal(noisy, w["label_observed"] != w["label_true"]):
        sys.exit(f"{args.run}/weights.h5: is_noisy disagrees with label_observed != label_true")
    n, k = len(weight), int(noisy.sum())
    print(f"run {args.run}: method {w['attrs'].get('method', '?')}, {n} samples, {k} noisy ({k / n:.3f})")
    print(f"mean meta weight: clean {weight[~noisy].mean():.4g}, noisy {weight[noisy].mean():.4g}"
          if 0 < k < n else f"mean meta weight {weight.mean():.4g}")
    # A low weight flags a noisy label: score = -log weight (the same ranking, without the clamp's ties).
    rank_by = "log_weight" if has_log else "meta_weight"
    print(f"noise-detection AUROC (low weight = noisy, by {rank_by}): {auroc(-logw, noisy):.4f}")
    print(f"precision at the noise rate (lowest {k} weights): {precision_at(-logw, noisy, k):.4f}")
    out = args.out or os.path.join(args.run, "weights.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(logw.min(), logw.max() + 1e-12, 60)
    ax.hist(logw[~noisy], bins=bins, alpha=0.6, label="clean labels")
    if k:
        ax.hist(logw[noisy], bins=bins, alpha=0.6, label="noisy labels")
    ax.set_xlabel("log of the un-normalised meta weight")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
