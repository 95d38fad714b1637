#!/usr/bin/python3
"""Plot of `sama bench --hypergradients --json FILE`: per MLP size, each method's iterations/s and peak
RSS relative to `none` (same run) and its cosine to the reference; and unrolled's peak RSS against K.
Usage: hypergradient_bench.py BENCH.json [--out PNG]"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REQUIRED = ("method", "k", "hidden", "batch", "iterations_per_s", "samples_per_s", "peak_rss_mb",
            "cosine_to_reference")


def label(r):
    return r["method"] + (f" K={r['k']}" if r["k"] else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("json")
    ap.add_argument("--out", help="PNG (default: the JSON's name with .png)")
    a = ap.parse_args()
    try:
        recs = json.load(open(a.json))
    except (OSError, ValueError) as e:
        sys.exit(f"{a.json}: cannot read the benchmark records: {e}")
    methods = [r for r in recs if r.get("method") != "unrolled_memory"]
    memory = sorted((r["k"], r["peak_rss_mb"]) for r in recs if r.get("method") == "unrolled_memory")
    for r in methods:
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            sys.exit(f"{a.json}: a record lacks {', '.join(missing)}: {r}")
    hiddens = sorted({r["hidden"] for r in methods}, key=lambda h: [int(x) for x in h.split(",")])
    fig, axes = plt.subplots(1, 3 + (1 if memory else 0), figsize=(17, 4.2))
    width = 0.8 / max(1, len(hiddens))
    for i, h in enumerate(hiddens):
        rs = [r for r in methods if r["hidden"] == h]
        none = next((r for r in rs if r["method"] == "none"), None)
        if none is None:
            sys.exit(f"{a.json}: hidden {h} has no 'none' record to compare with")
        xs = [j + i * width for j in range(len(rs))]
        axes[0].bar(xs, [r["iterations_per_s"] / none["iterations_per_s"] for r in rs], width, label=f"hidden {h}")
        axes[1].bar(xs, [r["peak_rss_mb"] / none["peak_rss_mb"] for r in rs], width, label=f"hidden {h}")
        axes[2].bar(xs, [r["cosine_to_reference"] if r["cosine_to_reference"] is not None else 0 for r in rs], width,
                    label=f"hidden {h}")
        names = [label(r) for r in rs]
    for ax, title in zip(axes[:3], ("iterations/s relative to none", "peak RSS relative to none",
                                    "cosine to the reference")):
        ax.set_xticks([j + width * (len(hiddens) - 1) / 2 for j in range(len(names))])
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    if memory:
        axes[3].plot([m[0] for m in memory], [m[1] for m in memory], "o-")
        axes[3].set_xlabel("K (base steps kept)")
        axes[3].set_ylabel("peak RSS (MB)")
        axes[3].set_title("unrolled: memory against K", fontsize=10)
        axes[3].grid(alpha=0.3)
    fig.tight_layout()
    out = a.out or a.json.rsplit(".", 1)[0] + ".png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
