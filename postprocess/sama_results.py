"""Readers for the files of a sama run directory (metrics.csv, summary.json, weights.h5)."""
import csv
import json
import os

import numpy as np


def read_metrics(run_dir):
    """metrics.csv as a dict of column name -> float array (empty cells are NaN)."""
    path = os.path.join(run_dir, "metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty metrics file")
    header, body = rows[0], rows[1:]
    cols = {name: np.full(len(body), np.nan) for name in header}
    for i, row in enumerate(body):
        for name, cell in zip(header, row):
            if cell != "":
                cols[name][i] = float(cell)
    return cols


def read_summary(run_dir):
    """summary.json as a dict; a run without one did not complete."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: no summary.json (the run did not complete)")
    with open(path) as f:
        return json.load(f)


def read_weights(run_dir):
    """weights.h5 as a dict of arrays plus its attributes under 'attrs'."""
    import h5py

    path = os.path.join(run_dir, "weights.h5")
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f.keys()}
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
    return out


def auroc(scores, positives):
    """Area under the ROC curve of `scores` for detecting `positives` (rank statistic, ties averaged)."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives).astype(bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def precision_at(scores, positives, k):
    """Fraction of positives among the k highest scores."""
    if k <= 0:
        return float("nan")
    top = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")[:k]
    return float(np.asarray(positives).astype(bool)[top].mean())
