#!/usr/bin/env bash
# The memory estimate: printed on the run header; a model that cannot fit (hidden = [40000, 40000],
# 1.6e9 parameters) is refused before anything is allocated or the run directory is created, with
# the estimate and the memory available; an estimate above a given limit (SAMA_MEMORY_AVAILABLE_MB)
# is refused too.
set -u
sama=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
"$sama" train "$deck" --out "$work/ok" --set train.steps=5 >"$work/ok.log" 2>&1 || fail "small run failed"
grep -q "memory estimate [0-9]* MB per rank" "$work/ok.log" || fail "no estimate on the header"
start=$(date +%s)
SAMA_MEMORY_AVAILABLE_MB=50000 timeout 60 "$sama" train "$deck" --out "$work/big" --set "model.hidden=[40000,40000]" \
  >"$work/big.log" 2>&1 && fail "a 1.6e9-parameter model was accepted with 50 GB"
cat "$work/big.log"
grep -q "this run needs about [0-9]* MB per rank (parameters and optimizer/meta state [0-9]* MB (1601760010 parameters" "$work/big.log" ||
  fail "no estimate in the message"
grep -q "more than the 50000 MB available" "$work/big.log" || fail "no available memory in the message"
[ $(($(date +%s) - start)) -lt 20 ] || fail "refusing took too long (allocated first?)"
[ ! -e "$work/big" ] || fail "a refused run created its directory"
# Against the real MemAvailable / cgroup limit: 4e10 parameters (1.4 TB) fit on no machine.
"$sama" train "$deck" --out "$work/big2" --set "model.hidden=[200000,200000]" >"$work/big2.log" 2>&1 && fail "1.4 TB accepted"
grep -q "available to each of the 1 rank" "$work/big2.log" || fail "the real limit: $(cat "$work/big2.log")"
SAMA_MEMORY_AVAILABLE_MB=20 "$sama" train "$deck" --out "$work/small" --set train.steps=5 >"$work/small.log" 2>&1 &&
  fail "a run above a 20 MB limit was accepted"
echo "PASS"
