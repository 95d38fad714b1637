#!/usr/bin/python3
"""Table of finished runs from their summary.json: one row per run, then the mean per method.
Usage: compare_runs.py RUN_DIR [RUN_DIR ...]"""
import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sama_results import read_summary  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    by_method = defaultdict(list)
    print(f"{'run':<28} {'method':<18} {'seed':>5} {'final acc':>10} {'best acc':>9} {'samples/s':>10} {'RSS MB':>8}")
    for run in args.runs:
        s = read_summary(run)
        by_method[s["method"]].append(s)
        print(f"{os.path.basename(os.path.normpath(run)):<28} {s['method']:<18} {s.get('seed', '?'):>5} "
              f"{s['final_test_accuracy']:>10.4f} {s['best_test_accuracy']:>9.4f} "
              f"{s['samples_per_second']:>10.0f} {s['peak_rss_mb']:>8.1f}")
    print()
    for method, runs in by_method.items():
        acc = sum(r["final_test_accuracy"] for r in runs) / len(runs)
        print(f"mean final test accuracy, {method} ({len(runs)} runs): {acc:.4f}")


if __name__ == "__main__":
    main()
