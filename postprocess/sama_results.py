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


# ---------------------------------------------------------------------------------------- scores.h5
# Per-sample scores of a run (scores.h5) and keep masks of `sama prune` (MASK.h5).

SCORE_NAMES = ("meta_weight", "meta_log_weight", "meta_weight_envelope", "el2n", "grand", "forgetting", "loss")
# Which end of a score flags a noisy label, for noise detection: the meta-learner gives a noisy
# sample a LOW weight; a noisy sample is hard to fit, so its EL2N, GraNd, forgetting events and loss
# are HIGH.
NOISE_FLAG = {"meta_weight": "low", "meta_log_weight": "low", "meta_weight_envelope": "low", "el2n": "high", "grand": "high", "forgetting": "high", "loss": "high"}
# Which end `sama prune --by NAME` keeps (see `sama prune --help`).
PRUNE_KEEPS = {"meta_weight": "highest", "meta_log_weight": "highest", "meta_weight_envelope": "highest", "el2n": "highest", "grand": "highest", "forgetting": "highest",
               "loss": "highest", "random": "random"}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _attrs(obj):
    out = {}
    for k, v in obj.attrs.items():
        v = _text(v)
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.item()
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def scores_path(path):
    """The scores.h5 of a run directory, or `path` itself when it is a file."""
    return os.path.join(path, "scores.h5") if os.path.isdir(path) else path


def read_scores(path):
    """scores.h5 (or a run directory holding one) as a dict: sample_id, label_observed, label_true,
    is_noisy (arrays), scores {name: float64 array}, score_attrs {name: attrs}, attrs (root)."""
    import h5py

    path = scores_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such scores file (a run writes scores.h5 when it completes)")
    with h5py.File(path, "r") as f:
        for name in ("sample_id", "label_observed", "label_true", "is_noisy"):
            if name not in f:
                raise ValueError(f"{path}: missing dataset /{name}")
        out = {name: f[name][()] for name in ("sample_id", "label_observed", "label_true", "is_noisy")}
        n = len(out["sample_id"])
        out["scores"], out["score_attrs"] = {}, {}
        for name in (f["scores"].keys() if "scores" in f else []):
            v = f["scores"][name][()].astype(np.float64)
            if v.shape != (n,):
                raise ValueError(f"{path}: /scores/{name} has shape {v.shape}, expected ({n},) like /sample_id")
            out["scores"][name] = v
            out["score_attrs"][name] = _attrs(f["scores"][name])
        for name in ("label_observed", "label_true", "is_noisy"):
            if out[name].shape != (n,):
                raise ValueError(f"{path}: /{name} has shape {out[name].shape}, expected ({n},) like /sample_id")
        out["is_noisy"] = out["is_noisy"].astype(bool)
        out["attrs"] = _attrs(f)
    out["path"] = path
    return out


def noise_detector(name, values):
    """Scores oriented so that HIGH flags a noisy label (NOISE_FLAG): -values for meta_weight."""
    values = np.asarray(values, dtype=np.float64)
    if name not in NOISE_FLAG:
        raise ValueError(f"unknown score '{name}': expected one of {', '.join(NOISE_FLAG)}")
    return -values if NOISE_FLAG[name] == "low" else values


def read_keep_mask(path):
    """A `sama prune` mask as a dict: sample_id, keep (bool), label_observed, attrs."""
    import h5py

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such keep mask")
    with h5py.File(path, "r") as f:
        for name in ("sample_id", "keep", "label_observed"):
            if name not in f:
                raise ValueError(f"{path}: missing dataset /{name} (not a `sama prune` mask?)")
        out = {name: f[name][()] for name in ("sample_id", "keep", "label_observed")}
        out["keep"] = out["keep"].astype(bool)
        out["attrs"] = _attrs(f)
    return out


def read_idx_images(path):
    """An IDX image file (gzip-compressed or plain, magic 0x00000803) as a uint8 array [N, rows, cols]."""
    import gzip
    import struct

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 16:
        raise ValueError(f"{path}: too short for an IDX image header")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803:
        raise ValueError(f"{path}: not an IDX image file (magic {magic:#010x}, expected 0x00000803)")
    if len(data) != 16 + n * rows * cols:
        raise ValueError(f"{path}: {len(data) - 16} bytes of pixels, the header says {n} x {rows} x {cols}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def training_images(attrs):
    """The training images of a run from scores.h5's root attributes (data_source, data_path), indexed
    by sample id: (array [N, H, W] or [N, H, W, C], None), or (None, why there are none)."""
    source, path = attrs.get("data_source", ""), attrs.get("data_path", "")
    if source == "fashion_mnist":
        f = os.path.join(path, "train-images-idx3-ubyte.gz")
        if not os.path.exists(f):
            return None, f"{f} does not exist"
        return read_idx_images(f), None
    if source == "hdf5":
        import h5py

        if not os.path.exists(path):
            return None, f"{path} does not exist"
        with h5py.File(path, "r") as f:
            if "images" not in f or f["images"].ndim < 3:
                return None, f"{path} has no /images of shape [N, H, W(, C)]"
            return f["images"][()], None
    return None, f"data_source = {source or '?'} has no images"
