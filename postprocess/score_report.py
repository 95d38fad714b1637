#!/usr/bin/python3
"""Per-sample scores of a sama run (scores.h5): for each score, a histogram of clean vs noisy samples,
noise detection (AUROC and precision at the noise rate), a table (printed, CSV and markdown) and image
grids of the lowest- and highest-scored training samples.

Noise-detection direction: a noisy label is flagged by a LOW meta_weight, meta_log_weight or
meta_weight_envelope (the meta-learner
down-weights it) and by a HIGH el2n, grand, forgetting or loss (it is hard to fit). AUROC is that of
the flag for is_noisy (0.5 = chance, 1 = perfect); precision at the noise rate is the share of noisy
labels among the k most-flagged samples, k = the number of noisy samples. NaN scores (never visited
in the score's window) are left out of both and counted.

Image grids need images: data_source fashion_mnist (the IDX directory data_path) or hdf5 (/images of
data_path); synthetic data have none and the grids are skipped with a message.

Usage: score_report.py RUN_DIR|scores.h5 [--out DIR] [--grid N]"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import (NOISE_FLAG, SCORE_NAMES, auroc, noise_detector, precision_at,  # noqa: E402
                          read_scores, training_images)

COLUMNS = ["score", "noisy_if", "auroc", "precision_at_noise_rate", "k", "mean_clean", "mean_noisy", "nan", "n"]


def detection_row(name, values, noisy):
    ok = np.isfinite(values)
    v, y = values[ok], noisy[ok]
    k = int(y.sum())
    flag = noise_detector(name, v)
    return {"score": name, "noisy_if": NOISE_FLAG[name], "auroc": auroc(flag, y),
            "precision_at_noise_rate": precision_at(flag, y, k), "k": k,
            "mean_clean": float(v[~y].mean()) if (~y).any() else float("nan"),
            "mean_noisy": float(v[y].mean()) if y.any() else float("nan"),
            "nan": int((~ok).sum()), "n": len(values)}


def fmt(x):
    if isinstance(x, float):
        return "nan" if not np.isfinite(x) else f"{x:.4g}"
    return str(x)


def histogram(name, values, noisy, description, path):
    ok = np.isfinite(values)
    v, y = values[ok], noisy[ok]
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(v):
        lo, hi = float(v.min()), float(v.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
        ax.hist(v[~y], bins=bins, alpha=0.6, label=f"clean labels ({int((~y).sum())})")
        if y.any():
            ax.hist(v[y], bins=bins, alpha=0.6, label=f"noisy labels ({int(y.sum())})")
        ax.legend()
    ax.set_xlabel(name)
    ax.set_ylabel("samples")
    ax.set_title(description[:90] + ("…" if len(description) > 90 else ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_grid(images, rows_idx, s, name, values, title, path):
    """A grid of training images (rows of scores.h5 in rows_idx), each titled score, observed/true label."""
    n = len(rows_idx)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.65 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, rows_idx):
        sid = int(s["sample_id"][r])
        img = images[sid]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        obs, true = int(s["label_observed"][r]), int(s["label_true"][r])
        ax.set_title(f"#{sid} {values[r]:.3g}\nobs {obs} / true {true}", fontsize=6,
                     color="red" if obs != true else "black")
    fig.suptitle(f"{title} (red: noisy label)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="run directory (with scores.h5) or a scores.h5 file")
    ap.add_argument("--out", help="output directory (default: score_report/ beside scores.h5)")
    ap.add_argument("--grid", type=int, default=36, help="images per grid (default 36)")
    args = ap.parse_args()
    try:
        s = read_scores(args.input)
    except (OSError, ValueError) as e:
        sys.exit(f"score_report.py: {e}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(s["path"])), "score_report")
    os.makedirs(out, exist_ok=True)
    noisy = s["is_noisy"]
    if not np.array_equal(noisy, s["label_observed"] != s["label_true"]):
        sys.exit(f"score_report.py: {s['path']}: is_noisy disagrees with label_observed != label_true")
    names = [n for n in SCORE_NAMES if n in s["scores"]]
    unknown = sorted(set(s["scores"]) - set(SCORE_NAMES))
    if unknown:
        print(f"note: scores not reported (unknown direction): {', '.join(unknown)}")
    if not names:
        sys.exit(f"score_report.py: {s['path']}: no scores under /scores (expected some of {', '.join(SCORE_NAMES)})")
    a = s["attrs"]
    n, k = len(noisy), int(noisy.sum())
    print(f"{s['path']}: method {a.get('method', '?')}, data {a.get('data_source', '?')}, noise "
          f"{a.get('noise_type', '?')} {a.get('noise_rate', '?')}, {n} samples, {k} noisy ({k / n:.3f})")

    rows = []
    for name in names:
        v = s["scores"][name]
        rows.append(detection_row(name, v, noisy))
        histogram(name, v, noisy, s["score_attrs"][name].get("description", name), os.path.join(out, f"hist_{name}.png"))

    widths = [12, 8, 7, 24, 6, 11, 11, 5, 7]
    print("  ".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths)))
    for r in rows:
        print("  ".join(f"{fmt(r[c]):>{w}}" for c, w in zip(COLUMNS, widths)))
    with open(os.path.join(out, "score_report.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: fmt(r[c]) for c in COLUMNS})
    with open(os.path.join(out, "score_report.md"), "w") as f:
        f.write(f"Noise detection on `{s['path']}` ({n} samples, {k} noisy). A noisy label is flagged by a "
                "LOW meta_weight, meta_log_weight or meta_weight_envelope and a HIGH el2n, grand, forgetting or loss.\n\n")
        f.write("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |\n")

    images, why = training_images(a)
    if images is None:
        print(f"skipping image grids: {why}")
    else:
        bad = [int(i) for i in s["sample_id"] if not 0 <= i < len(images)]
        if bad:
            sys.exit(f"score_report.py: {s['path']}: sample id {bad[0]} is outside the {len(images)} training "
                     f"images of {a.get('data_path')}")
        for name in names:
            v = s["scores"][name]
            finite = np.flatnonzero(np.isfinite(v))
            # Sorted by score, ties by sample id (as `sama prune`).
            order = finite[np.lexsort((s["sample_id"][finite], v[finite]))]
            g = min(args.grid, len(order))
            image_grid(images, order[:g], s, name, v, f"{name}: lowest {g}", os.path.join(out, f"grid_{name}_lowest.png"))
            image_grid(images, order[::-1][:g], s, name, v, f"{name}: highest {g}",
                       os.path.join(out, f"grid_{name}_highest.png"))
        print(f"image grids of the {min(args.grid, n)} lowest and highest per score")
    print(f"wrote {out}/: hist_<score>.png, score_report.csv, score_report.md"
          + ("" if images is None else ", grid_<score>_{lowest,highest}.png"))


if __name__ == "__main__":
    main()
