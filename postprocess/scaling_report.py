#!/usr/bin/python3
"""Table and plot of a scaling study (jobscripts/scaling_study.sh): samples/s and parallel efficiency
against ranks, for strong and weak scaling. Efficiency(P) = samples/s(P) / (P × samples/s(1)): for strong
scaling the global batch is fixed, for weak scaling the per-rank batch is.
Usage: scaling_report.py STUDY_DIR [--out scaling.png] [--csv table.csv]"""
import argparse
import glob
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import read_summary  # noqa: E402


def collect(study):
    runs = {}
    for path in sorted(glob.glob(os.path.join(study, "*_np*", "summary.json"))):
        run = os.path.dirname(path)
        m = re.match(r"(strong|weak)_np(\d+)$", os.path.basename(run))
        if not m:
            continue
        s = read_summary(run)
        if int(m.group(2)) != s["ranks"]:
            sys.exit(f"{run}: directory says {m.group(2)} ranks, summary.json says {s['ranks']}")
        runs.setdefault(m.group(1), []).append(s)
    if not runs:
        sys.exit(f"{study}: no completed runs (strong_npP/ or weak_npP/ with summary.json)")
    return {mode: sorted(v, key=lambda s: s["ranks"]) for mode, v in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("study")
    ap.add_argument("--out", help="PNG (default STUDY/scaling.png)")
    ap.add_argument("--csv", help="also write the table as CSV")
    args = ap.parse_args()
    runs = collect(args.study)
    rows = []
    print(f"{'mode':<7} {'ranks':>5} {'samples/s':>11} {'speed-up':>9} {'efficiency':>10} {'comm hidden':>11}")
    for mode, rs in runs.items():
        base = next((r for r in rs if r["ranks"] == 1), None)
        for r in rs:
            sps = r["samples_per_second"]
            speedup = sps / base["samples_per_second"] if base else float("nan")
            eff = speedup / r["ranks"]
            hidden = r.get("comm_hidden_fraction", float("nan")) if r["ranks"] > 1 else float("nan")
            rows.append((mode, r["ranks"], sps, speedup, eff, hidden))
            print(f"{mode:<7} {r['ranks']:>5} {sps:>11.0f} {speedup:>9.3f} {eff:>10.3f} {hidden:>11.2f}")
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("mode,ranks,samples_per_s,speedup,efficiency,comm_hidden_fraction\n")
            for row in rows:
                f.write(",".join(str(x) for x in row) + "\n")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in runs:
        pts = [r for r in rows if r[0] == mode]
        a1.plot([p[1] for p in pts], [p[2] for p in pts], marker="o", label=mode)
        a2.plot([p[1] for p in pts], [p[4] for p in pts], marker="o", label=mode)
    a1.set(xlabel="ranks", ylabel="samples/s", title="throughput")
    a2.set(xlabel="ranks", ylabel="parallel efficiency", title="efficiency", ylim=(0, 1.1))
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    out = args.out or os.path.join(args.study, "scaling.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
