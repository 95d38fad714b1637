#!/usr/bin/env bash
# Input integrity: a training file that shrinks between open and read (deterministic, through the
# SAMA_TEST_SHRINK_AFTER_OPEN hook) is refused, never trained on; the bytes read are recorded in
# summary.json as an FNV-1a 64 checksum equal to that of the file; a pixel of 3e38 is refused at load
# with what was found.
set -u
sama=$1
src=$2
python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
deck="$src/inputs/smoke.toml"
"$python" - "$work" <<'PY' || fail "cannot write the test data"
import sys, h5py, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(1)
for name, n in (("train", 2000), ("test", 400)):
    y = rng.integers(0, 10, n)
    x = (rng.normal(size=(n, 32)) + y[:, None] * 0.5).astype(np.float32)
    with h5py.File(f"{w}/{name}.h5", "w") as f:
        f["labels"] = y.astype(np.int64)  # stored before /images, as in the fault campaign
        f["images"] = x
    if name == "train":
        x[7, 3] = 3e38
        with h5py.File(f"{w}/huge.h5", "w") as f:
            f["labels"] = y.astype(np.int64)
            f["images"] = x
PY
h5=(--set data.source=hdf5 --set "data.train_file=\"$work/train.h5\"" --set "data.test_file=\"$work/test.h5\""
    --set train.steps=20 --set data.meta_size=100)

# 1. A normal run records the checksum of the bytes it read.
"$sama" train "$deck" --out "$work/ok" "${h5[@]}" >"$work/ok.log" 2>&1 || fail "run on good data failed: $(tail -n 3 "$work/ok.log")"
want=$("$python" -c '
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("fnv1a64:%016x" % h)' "$work/train.h5")
grep -q "\"train_data_checksum\": \"$want\"" "$work/ok/summary.json" ||
  fail "summary.json lacks train_data_checksum $want: $(grep checksum "$work/ok/summary.json")"
grep -q "read in full and checked.*$want" "$work/ok.log" || fail "the run header does not show the checksum"
echo "checksum recorded: $want"

# 2. The training file shrinks to 20 kB right after it is opened: an error, no run directory.
size=$(stat -c %s "$work/train.h5")
cp "$work/train.h5" "$work/shrink.h5"
shrink=("${h5[@]}")
shrink[3]="data.train_file=\"$work/shrink.h5\""
SAMA_TEST_SHRINK_AFTER_OPEN="20000:$work/shrink.h5" "$sama" train "$deck" --out "$work/shrunk" "${shrink[@]}" >"$work/shrunk.log" 2>&1
rc=$?
cat "$work/shrunk.log"
[ $rc -ne 0 ] || fail "a file shrunk while read gave exit 0"
[ "$(stat -c %s "$work/shrink.h5")" -eq 20000 ] || fail "the hook did not shrink the file (size $size)"
grep -q "shrink.h5.*changed while it was read: $size bytes when opened" "$work/shrunk.log" ||
  fail "the message does not say that the file changed while read"
[ ! -e "$work/shrunk" ] || fail "a run directory was created for a run on a changed file"
# The shrunk file itself (a truncated HDF5 file) is refused too, whatever is read of it.
"$sama" train "$deck" --out "$work/shrunk2" "${shrink[@]}" >"$work/shrunk2.log" 2>&1 &&
  fail "a truncated HDF5 file gave exit 0"
echo "truncated after the shrink: $(tail -n 1 "$work/shrunk2.log")"

# 3. A pixel of 3e38.
huge=("${h5[@]}")
huge[3]="data.train_file=\"$work/huge.h5\""
"$sama" train "$deck" --out "$work/huge" "${huge[@]}" >"$work/huge.log" 2>&1 && fail "a pixel of 3e38 gave exit 0"
grep -q "sample 7 has a pixel of 3e+38 at feature 3" "$work/huge.log" || fail "no message naming the pixel: $(cat "$work/huge.log")"
tail -n 1 "$work/huge.log"
echo "PASS"
