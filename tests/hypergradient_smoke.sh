#!/usr/bin/env bash
# `sama bench --hypergradients` writes a record per method and K with the documented fields, its plot
# script reads them, and the hypergradient-quality study runs end to end in miniature (table + plot).
set -eu
sama=$1
src=$2
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$sama" bench --hypergradients --steps 3 --warmup 1 --json "$work/hg.json" | tee "$work/hg.txt"
grep -q "sama meta step .* FLOP-count prediction .* ratio" "$work/hg.txt" || fail "no FLOP-prediction line"
grep -q "unrolled memory: .* MB per K" "$work/hg.txt" || fail "no unrolled memory line"
"$py" - "$work/hg.json" <<'PY'
import json, math, sys
recs = json.load(open(sys.argv[1]))
runs = [r for r in recs if r["method"] != "unrolled_memory"]
want = {(m, k) for m, k in [("none", 0), ("sama", 0), ("sama_jvp", 0), ("finite_difference", 0), ("neumann", 1),
                            ("neumann", 5), ("cg", 1), ("cg", 5), ("unrolled", 1), ("unrolled", 5)]}
for h in ("100", "256,256"):
    got = {(r["method"], r["k"]) for r in runs if r["hidden"] == h}
    assert got == want, (h, sorted(got))
for r in runs:
    for k in ("method", "k", "hidden", "batch", "iterations_per_s", "samples_per_s", "peak_rss_mb",
              "cosine_to_reference"):
        assert k in r, (k, r)
    assert r["iterations_per_s"] > 0 and r["peak_rss_mb"] > 0, r
    assert abs(r["samples_per_s"] - r["iterations_per_s"] * r["batch"]) < 1e-3 * r["samples_per_s"], r
    if r["method"] == "none":
        assert r["cosine_to_reference"] is None, r
    else:
        assert -1.0001 <= r["cosine_to_reference"] <= 1.0001, r
mem = sorted((r["k"], r["peak_rss_mb"]) for r in recs if r["method"] == "unrolled_memory")
assert [k for k, _ in mem] == [1, 2, 4, 8, 16], mem
print("hypergradient bench JSON ok:", len(runs), "method records,", len(mem), "memory records")
PY
"$py" "$src/postprocess/hypergradient_bench.py" "$work/hg.json" --out "$work/hg.png"
[ "$(head -c 4 "$work/hg.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "hypergradient_bench.py wrote no PNG"

SAMA=$sama STEPS=20 EVERY=5 ALPHAS="0.1 1" OPTIMIZERS="adam sgd" WIDTHS="16" \
  SETS="data.source=synthetic data.meta_size=256" bash "$src/jobscripts/hypergradient_study.sh" "$work/study" \
  >"$work/study.log" 2>&1 || { cat "$work/study.log"; fail "hypergradient_study.sh"; }
"$py" - "$work/study/hypergradient_study.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert sorted((r["optimizer"], float(r["alpha"])) for r in rows) == [("adam", 0.1), ("adam", 1.0), ("sgd", 0.1), ("sgd", 1.0)], rows
for r in rows:
    assert int(r["diagnoses"]) == 4 and -1.0001 <= float(r["cosine"]) <= 1.0001, r
print("hypergradient study table ok:", len(rows), "rows")
PY
[ -s "$work/study/hypergradient_study.png" ] || fail "no study plot"
echo "hypergradient smoke ok"
