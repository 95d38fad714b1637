#!/usr/bin/env bash
# The collapse detector on a deck that provokes the old collapse quickly: the smoke deck's synthetic
# data with a meta learning rate of 0.03. The paper's sigmoid Meta-Weight-Net drives its
# pre-activation into saturation (every weight 1, gradient gone) and the detector must fire: one
# warning on the progress line, weight_collapsed = 1 in metrics.csv from that window on, and
# meta_weight_collapsed_at_step in summary.json. The softmax (default) and monotone weight nets under
# the same deck must keep their weights apart: no warning, null in summary.json. The plot of the
# weight net's health (postprocess/weight_net_health.py) reads both runs.
set -eu
sama=$1
src=$2
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run() {  # run NAME WEIGHT_NET
  "$sama" train "$src/inputs/smoke.toml" --out "$work/$1" --set "meta.weight_net=\"$2\"" --set meta.lr=0.03 \
    --set train.steps=400 >"$work/$1.log" 2>&1 || { cat "$work/$1.log"; fail "run $1"; }
}
run sigmoid sigmoid
run softmax softmax
run monotone monotone
[ "$(grep -c 'WARNING: meta weights collapsed' "$work/sigmoid.log")" = 1 ] || { cat "$work/sigmoid.log"; fail "sigmoid: expected one collapse warning"; }
for n in softmax monotone; do
  if grep -q 'WARNING: meta weights collapsed' "$work/$n.log"; then cat "$work/$n.log"; fail "$n: false collapse warning"; fi
done
"$py" - "$work" <<'PY'
import csv, json, sys
work = sys.argv[1]
for name, collapses in (("sigmoid", True), ("softmax", False), ("monotone", False)):
    summary = json.load(open(f"{work}/{name}/summary.json"))
    rows = [r for r in csv.DictReader(open(f"{work}/{name}/metrics.csv")) if r["weight_spread"]]
    assert summary["weight_net"] == name, summary
    at = summary["meta_weight_collapsed_at_step"]
    flags = [int(float(r["weight_collapsed"])) for r in rows]
    if collapses:
        assert isinstance(at, int) and at > 0, (name, at)
        first = next(int(float(r["step"])) for r in rows if int(float(r["weight_collapsed"])))
        assert first == at, (name, first, at)
        # Collapsed for good: every later window too, with the weights' spread near zero.
        assert all(flags[flags.index(1):]), (name, flags)
        last = rows[-1]
        assert float(last["weight_spread"]) < 0.01 and float(last["weight_saturated"]) == 1.0, last
        assert float(last["logit_min"]) > 5, last  # the pre-activation drifted far positive
    else:
        assert at is None, (name, at)
        assert not any(flags), (name, flags)
        # The weights tell clean from noisy samples in every window after the first.
        for r in rows[1:]:
            assert float(r["weight_clean"]) > float(r["weight_noisy"]) + 0.2, (name, r)
            assert float(r["weight_spread"]) > 0.05, (name, r)
    print(name, "collapsed at", at, "ok")
PY
"$py" "$src/postprocess/weight_net_health.py" "$work/sigmoid" "$work/softmax" --out "$work/health.png"
[ "$(head -c 4 "$work/health.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "weight_net_health.py wrote no PNG"
echo "weight collapse detector ok"
