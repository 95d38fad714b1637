#!/usr/bin/python3
"""Pruning curves from a pruning-study table (postprocess/collect_pruning.py): test accuracy vs the
fraction of training samples kept, one line per method with mean ± std over seeds as error bars, the
full-data reference (method "full") as a horizontal line with its ±std band; one panel per setting.
Also prints a markdown table: method × keep, mean ± std (n seeds).

Usage: pruning_curves.py TABLE.csv [--out PNG] [--metric final_test_accuracy|best_test_accuracy]"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REQUIRED = ["setting", "method", "keep", "seed", "final_test_accuracy", "best_test_accuracy"]


def read_table(path, metric):
    """{setting: {method: {keep: [values over seeds]}}}"""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(REQUIRED)})")
            rows = list(reader)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}") from e
    if not rows:
        raise ValueError(f"{path}: the table has no rows")
    table = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for i, r in enumerate(rows, start=2):
        try:
            keep, value = float(r["keep"]), float(r[metric])
        except ValueError as e:
            raise ValueError(f"{path}:{i}: {e}") from e
        table[r["setting"]][r["method"]][keep].append(value)
    return table


def stats(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def cell(values):
    mean, std, n = stats(values)
    return f"{mean:.4f} ± {std:.4f} (n={n})" if n > 1 else f"{mean:.4f} (n=1)"


def markdown(table, metric):
    """One table per setting: a row per method (the full-data reference last), a column per keep."""
    lines = []
    for setting, methods in table.items():
        keeps = sorted({k for by_keep in methods.values() for k in by_keep}, reverse=True)
        lines.append(f"{metric}, setting {setting}, mean ± std over seeds:\n")
        lines.append("| method | " + " | ".join(f"keep {k:g}" for k in keeps) + " |")
        lines.append("|---|" + "---|" * len(keeps))
        for method in sorted(methods, key=lambda m: (m == "full", m)):
            cells = [cell(methods[method][k]) if k in methods[method] else "" for k in keeps]
            lines.append(f"| {'full data' if method == 'full' else method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", help="pruning_results.csv")
    ap.add_argument("--out", help="PNG (default pruning_curves.png beside the table)")
    ap.add_argument("--metric", default="final_test_accuracy", choices=["final_test_accuracy", "best_test_accuracy"])
    args = ap.parse_args()
    try:
        table = read_table(args.table, args.metric)
    except ValueError as e:
        sys.exit(f"pruning_curves.py: {e}")
    print(markdown(table, args.metric))

    settings = sorted(table)
    fig, axes = plt.subplots(1, len(settings), figsize=(6.5 * len(settings), 4.5), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        methods = table[setting]
        for method in sorted(m for m in methods if m != "full"):
            keeps = sorted(methods[method])
            s = [stats(methods[method][k]) for k in keeps]
            ax.errorbar(keeps, [x[0] for x in s], yerr=[x[1] for x in s], marker="o", capsize=3, label=method)
        if "full" in methods:
            mean, std, n = stats([v for vals in methods["full"].values() for v in vals])
            ax.axhline(mean, color="black", linestyle="--", label=f"full data (n={n})")
            if std > 0:
                ax.axhspan(mean - std, mean + std, color="black", alpha=0.08)
        ax.set_xlabel("fraction of training samples kept")
        ax.set_ylabel(args.metric.replace("_", " "))
        ax.set_title(f"setting: {setting}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.table)), "pruning_curves.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
