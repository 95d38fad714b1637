#!/usr/bin/python3
"""Writes the malformed-input corpus for tests/malformed_inputs.sh (and the fuzz replay).

    make_malformed.py OUT_DIR

OUT_DIR/cases/<name>/ holds, per case: `args` (the arguments after `sama`, one per line; the runner
adds --out), `expect` (fragments that stderr must contain, one per line: the offending file's name,
and for decks the key) and the malformed input itself. OUT_DIR/controls/<name>/ has the same layout
for the valid counterparts, which must train (exit 0, summary.json). OUT_DIR/fuzz/{deck,idx,hdf5}/
gets a copy of every malformed deck, IDX and HDF5 file, for the libFuzzer targets to replay.

Everything is deterministic (seeded); nothing is downloaded. Needs numpy and h5py (Debian's
python3-numpy, python3-h5py).
"""
import gzip
import os
import random
import shutil
import struct
import sys
import zlib

import h5py
import numpy as np

OUT = os.path.abspath(sys.argv[1])
CASES = os.path.join(OUT, "cases")
CONTROLS = os.path.join(OUT, "controls")
FUZZ = os.path.join(OUT, "fuzz")
rng = random.Random(20240607)

# ------------------------------------------------------------------------------------ helpers


def fresh(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def case_dir(name, root=None):
    d = os.path.join(root or CASES, name)
    os.makedirs(d)
    return d


def finish(d, args, expect, gap=None):
    if gap:  # a known gap: the message does not name what it should yet (see the runner)
        with open(os.path.join(d, "gap"), "w") as f:
            f.write(gap + "\n")
    with open(os.path.join(d, "args"), "w") as f:
        f.write("".join(a + "\n" for a in args))
    with open(os.path.join(d, "expect"), "w") as f:
        f.write("".join(e + "\n" for e in expect))


def fuzz_copy(kind, name, path):
    if os.path.isfile(path):
        shutil.copyfile(path, os.path.join(FUZZ, kind, name))


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A tiny training job: a few steps on small data, so that a control (or a case that is wrongly
# accepted) ends in about a second.
TINY = """[data]
meta_size = 20
noise_type = "uniform"
noise_rate = 0.2
{data}
[model]
hidden = [8]
[optimizer]
name = "adam"
lr = 1e-3
[train]
steps = 2
batch_size = 8
log_interval = 1
eval_interval = 2
eval_batch = 50
[meta]
batch_size = 8
hidden = 4
"""
SYNTH = 'source = "synthetic"\nsynthetic_train = 120\nsynthetic_test = 40\nsynthetic_features = 4\n'


def tiny_deck(data_lines):
    return TINY.format(data=data_lines)


# ------------------------------------------------------------------------------------ IDX

N_TRAIN, N_TEST, ROWS, COLS = 120, 40, 4, 4
IDX_NAMES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
}


def idx(dims, payload, type_byte=0x08, magic01=b"\0\0", ndims=None):
    nd = len(dims) if ndims is None else ndims
    return magic01 + bytes([type_byte, nd]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def pixels(n, seed):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(n * ROWS * COLS))


def labels(n):
    return bytes(i % 10 for i in range(n))


VALID_IDX = {
    "train-images": idx([N_TRAIN, ROWS, COLS], pixels(N_TRAIN, 1)),
    "train-labels": idx([N_TRAIN], labels(N_TRAIN)),
    "t10k-images": idx([N_TEST, ROWS, COLS], pixels(N_TEST, 2)),
    "t10k-labels": idx([N_TEST], labels(N_TEST)),
}


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def idx_dir(d, replace=None, content=b"", plain=False):
    """The four Fashion-MNIST files in d, gzip-compressed; `replace` (a key of IDX_NAMES) gets
    `content` instead, written as is, under the .gz name or (plain=True) the uncompressed name."""
    for key, name in IDX_NAMES.items():
        if key == replace:
            continue
        write(os.path.join(d, name + ".gz"), gz(VALID_IDX[key]))
    if replace is None:
        return None
    path = os.path.join(d, IDX_NAMES[replace] + ("" if plain else ".gz"))
    write(path, content)
    return path


def idx_args(d):
    deck = os.path.join(d, "deck.toml")
    write(deck, tiny_deck('source = "fashion_mnist"\npath = ' + toml_str(d)).encode())
    return ["train", deck]


n_idx = 0


def idx_case(name, replace, content, plain=False, compress=False, extra_expect=(), gap=None):
    """One IDX case: `content` (gzip-compressed first if compress) replaces one of the four files."""
    global n_idx
    n_idx += 1
    name = "idx_" + name
    d = case_dir(name)
    data = gz(content) if compress else content
    path = idx_dir(d, replace, data, plain)
    fuzz_copy("idx", name, path)
    finish(d, idx_args(d), [os.path.join(name, os.path.basename(path))] + list(extra_expect), gap)


def idx_cases():
    img = VALID_IDX["train-images"]
    lab = VALID_IDX["train-labels"]
    gimg = gz(img)
    # Truncated (uncompressed file) at many offsets: in the magic, in the dimensions, in the payload.
    for cut in [0, 1, 2, 3, 4, 5, 7, 8, 11, 12, 15, 16, 17, 100, len(img) - 1]:
        idx_case(f"images_plain_cut_{cut}", "train-images", img[:cut], plain=True)
    # Truncated content, validly gzip-compressed.
    for cut in [0, 3, 9, 16, 500]:
        idx_case(f"images_gz_content_cut_{cut}", "train-images", img[:cut], compress=True)
    for cut in [3, 7, 8, 60]:
        idx_case(f"labels_plain_cut_{cut}", "train-labels", lab[:cut], plain=True)
    idx_case("test_labels_cut_20", "t10k-labels", VALID_IDX["t10k-labels"][:20], compress=True)
    idx_case("test_images_cut_300", "t10k-images", VALID_IDX["t10k-images"][:300], compress=True)
    # A truncated gzip stream (the compressed file cut).
    for cut in [1, 5, 10, 15, 30, len(gimg) // 2, len(gimg) - 8, len(gimg) - 4, len(gimg) - 1]:
        idx_case(f"images_gzip_cut_{cut}", "train-images", gimg[:cut])
    # Corrupt gzip: CRC-32 and length trailers, deflate data, header method byte, random after magic.
    bad = bytearray(gimg)
    bad[-8:-4] = bytes(b ^ 0xFF for b in bad[-8:-4])
    idx_case("images_gzip_bad_crc", "train-images", bytes(bad))
    bad = bytearray(gimg)
    bad[-4:] = struct.pack("<I", len(img) + 1)
    idx_case("images_gzip_bad_isize", "train-images", bytes(bad))
    glab = bytearray(gz(lab))
    glab[-8] ^= 0x01
    idx_case("labels_gzip_bad_crc", "train-labels", bytes(glab))
    bad = bytearray(gimg)
    for i in range(20, len(bad) - 20):
        bad[i] ^= 0x5A
    idx_case("images_gzip_corrupt_deflate", "train-images", bytes(bad))
    bad = bytearray(gimg)
    bad[len(bad) // 2] ^= 0xFF
    idx_case("images_gzip_one_bit_flip", "train-images", bytes(bad))
    bad = bytearray(gimg)
    bad[2] = 7  # compression method other than deflate
    idx_case("images_gzip_bad_method", "train-images", bytes(bad))
    idx_case("images_gzip_magic_then_garbage", "train-images",
             b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(600)))
    # Not gzip, not IDX.
    idx_case("images_random_garbage", "train-images", b"\x07" + bytes(rng.randrange(256) for _ in range(999)))
    idx_case("labels_random_garbage", "train-labels", b"\x13" + bytes(rng.randrange(256) for _ in range(99)))
    idx_case("images_text", "train-images", b"This is not an IDX file.\n" * 20, plain=True)
    # Bad magic numbers.
    idx_case("images_magic_byte0", "train-images", b"\x01" + img[1:], compress=True)
    idx_case("images_magic_byte1", "train-images", img[:1] + b"\x01" + img[2:], compress=True)
    idx_case("images_magic_little_endian", "train-images", b"\x03\x08\x00\x00" + img[4:], compress=True)
    idx_case("labels_magic", "train-labels", b"\xff\xff" + lab[2:], compress=True)
    # Wrong type byte (only 0x08, unsigned byte, is supported).
    for t in [0x00, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0xFF]:
        idx_case(f"images_type_{t:02x}", "train-images", img[:2] + bytes([t]) + img[3:], compress=True)
    idx_case("labels_type_0d", "train-labels", lab[:2] + b"\x0d" + lab[3:], compress=True)
    # Wrong number of dimensions.
    idx_case("images_0_dims", "train-images", idx([], img[16:]), compress=True)
    idx_case("images_1_dim", "train-images", idx([N_TRAIN * ROWS * COLS], img[16:]), compress=True)
    idx_case("images_9_dims", "train-images", idx([N_TRAIN, ROWS, COLS] + [1] * 6, img[16:]), compress=True)
    idx_case("images_255_dims", "train-images", idx([1] * 255, b""), compress=True)
    idx_case("labels_0_dims", "train-labels", idx([], lab[8:]), compress=True)
    idx_case("labels_2_dims", "train-labels", idx([N_TRAIN, 1], lab[8:]), compress=True)
    idx_case("labels_3_dims", "train-labels", idx([N_TRAIN, 1, 1], lab[8:]), compress=True)
    # Zero dimensions.
    idx_case("images_zero_n", "train-images", idx([0, ROWS, COLS], b""), compress=True)
    idx_case("images_zero_rows", "train-images", idx([N_TRAIN, 0, COLS], b""), compress=True)
    idx_case("images_zero_cols", "train-images", idx([N_TRAIN, ROWS, 0], img[16:]), compress=True)
    idx_case("labels_zero_n", "train-labels", idx([0], b""), compress=True)
    # Huge dimensions, including products that overflow 64 bits (2^96, exactly 2^64, 2^64 - 2^33 + 1).
    u32 = 0xFFFFFFFF
    idx_case("images_dims_2pow96", "train-images", idx([u32, u32, u32], img[16:]), compress=True)
    idx_case("images_dims_65536x4", "train-images", idx([65536] * 4, img[16:]), compress=True)
    idx_case("images_dims_256x8", "train-images", idx([256] * 8, img[16:]), compress=True)
    idx_case("images_dims_u32max_sq", "train-images", idx([u32, u32], img[16:]), compress=True)
    idx_case("images_dims_2pow31x2pow31x4", "train-images", idx([1 << 31, 1 << 31, 4], img[16:]), compress=True)
    idx_case("images_dims_8GiB", "train-images", idx([1 << 17, 256, 256], img[16:]), compress=True)
    idx_case("labels_dims_u32max", "train-labels", idx([u32], lab[8:]), compress=True)
    # Lying dimensions: a few bytes too many or too few, or a count that disagrees with the labels.
    idx_case("images_n_plus_1", "train-images", idx([N_TRAIN + 1, ROWS, COLS], img[16:]), compress=True)
    idx_case("images_n_minus_1", "train-images", idx([N_TRAIN - 1, ROWS, COLS], img[16:]), compress=True)
    idx_case("images_rows_cols_lie", "train-images", idx([N_TRAIN // 2, ROWS * 2, COLS], img[16:]), compress=True,
             extra_expect=["train-labels-idx1-ubyte.gz"])
    idx_case("images_claims_1GiB", "train-images", idx([1 << 24, 8, 8], img[16:]), compress=True)
    idx_case("labels_n_plus_1", "train-labels", idx([N_TRAIN + 1], lab[8:]), compress=True)
    # Count mismatches between images and labels (the message names the labels file).
    idx_case("labels_count_short", "train-labels", idx([N_TRAIN - 1], lab[8:-1]), compress=True)
    idx_case("labels_count_long", "train-labels", idx([N_TRAIN + 5], lab[8:] + bytes(5)), compress=True)
    idx_case("test_labels_count", "t10k-labels", idx([N_TEST + 1], labels(N_TEST + 1)), compress=True)
    # Test images of another shape than the training images.
    idx_case("test_images_other_shape", "t10k-images",
             idx([N_TEST, ROWS + 1, COLS], bytes(i * 7 % 256 for i in range(N_TEST * (ROWS + 1) * COLS))),
             compress=True)
    # Labels out of range: 255 in a ten-class set leaves classes 10..254 without training samples; a
    # test label of 200 is no class of the training data. Both messages name the labels file.
    idx_case("labels_out_of_range_255", "train-labels", idx([N_TRAIN], lab[8:-1] + b"\xff"), compress=True)
    idx_case("test_labels_out_of_range_200", "t10k-labels", idx([N_TEST], labels(N_TEST)[:-1] + b"\xc8"),
             compress=True)
    # Empty files, with and without gzip.
    for key in IDX_NAMES:
        idx_case(f"{key.replace('-', '_')}_empty", key, b"", plain=True)
    idx_case("images_empty_gzip", "train-images", b"", compress=True)
    idx_case("images_gzip_of_garbage", "train-images", b"garbage" * 50, compress=True)
    # data.path is not a directory of IDX files.
    global n_idx
    for name, make in [("idx_path_is_a_file", "file"), ("idx_path_missing_labels", "missing"),
                       ("idx_path_image_is_dir", "dir")]:
        n_idx += 1
        d = case_dir(name)
        if make == "file":
            target = os.path.join(d, "not_a_dir")
            write(target, b"x")
            deck = os.path.join(d, "deck.toml")
            write(deck, tiny_deck('source = "fashion_mnist"\npath = ' + toml_str(target)).encode())
            finish(d, ["train", deck], [os.path.join(name, "not_a_dir")])
        elif make == "missing":
            idx_dir(d)
            os.remove(os.path.join(d, IDX_NAMES["t10k-labels"] + ".gz"))
            finish(d, idx_args(d), [name, "t10k-labels-idx1-ubyte.gz"])
        else:
            idx_dir(d, "train-images", b"")
            os.remove(os.path.join(d, IDX_NAMES["train-images"] + ".gz"))
            os.mkdir(os.path.join(d, IDX_NAMES["train-images"] + ".gz"))
            finish(d, idx_args(d), [name, "train-images-idx3-ubyte.gz"])


# ------------------------------------------------------------------------------------ HDF5

n_h5 = 0
H5_DIR = None


def h5_valid(path, images=None, labels_=None):
    with h5py.File(path, "w") as f:
        f["images"] = images if images is not None else np.frombuffer(
            pixels(N_TRAIN, 1), dtype=np.uint8).reshape(N_TRAIN, ROWS, COLS)
        f["labels"] = labels_ if labels_ is not None else (np.arange(N_TRAIN) % 10).astype(np.int64)


def h5_args(d, train, test):
    deck = os.path.join(d, "deck.toml")
    write(deck, tiny_deck('source = "hdf5"\ntrain_file = ' + toml_str(train) + "\ntest_file = " +
                          toml_str(test)).encode())
    return ["train", deck]


def h5_case(name, build, as_test=False, extra_expect=()):
    """build(path) writes the malformed file; it is the training file (or the test file)."""
    global n_h5
    n_h5 += 1
    name = "h5_" + name
    d = case_dir(name)
    bad = os.path.join(d, "bad.h5")
    build(bad)
    good = os.path.join(H5_DIR, "test.h5" if not as_test else "train.h5")
    train, test = (good, bad) if as_test else (bad, good)
    fuzz_copy("hdf5", name, bad)
    finish(d, h5_args(d, train, test), [os.path.join(name, "bad.h5")] + list(extra_expect))


def h5_with(images=None, labels_=None, skip=()):
    def build(path):
        with h5py.File(path, "w") as f:
            if "images" not in skip:
                f["images"] = images if images is not None else np.zeros((N_TRAIN, ROWS, COLS), np.uint8) + 7
            if "labels" not in skip:
                f["labels"] = labels_ if labels_ is not None else (np.arange(N_TRAIN) % 10).astype(np.int64)
    return build


def raw_file(data):
    def build(path):
        write(path, data)
    return build


def hdf5_cases():
    global H5_DIR
    H5_DIR = os.path.join(OUT, "h5_valid")
    os.makedirs(H5_DIR)
    h5_valid(os.path.join(H5_DIR, "train.h5"))
    h5_valid(os.path.join(H5_DIR, "test.h5"),
             np.frombuffer(pixels(N_TEST, 2), dtype=np.uint8).reshape(N_TEST, ROWS, COLS),
             (np.arange(N_TEST) % 10).astype(np.int32))
    f32 = np.random.default_rng(5).random((N_TRAIN, ROWS, COLS), dtype=np.float32)
    lab = (np.arange(N_TRAIN) % 10).astype(np.int64)
    # Missing datasets.
    h5_case("missing_images", h5_with(skip=("images",)), extra_expect=["/images"])
    h5_case("missing_labels", h5_with(skip=("labels",)), extra_expect=["/labels"])
    h5_case("empty_hdf5", h5_with(skip=("images", "labels")))
    h5_case("test_missing_labels", h5_with(skip=("labels",)), as_test=True)

    def groups(path):
        with h5py.File(path, "w") as f:
            f.create_group("images")
            f.create_group("labels")
    h5_case("images_is_group", groups)

    def soft_link(path):
        with h5py.File(path, "w") as f:
            f["labels"] = lab
            f["images"] = h5py.SoftLink("/nowhere")
    h5_case("images_dangling_link", soft_link)

    def external(path):
        with h5py.File(path, "w") as f:
            f["labels"] = lab
            f["images"] = h5py.ExternalLink("no_such_file.h5", "/images")
    h5_case("images_external_link_missing", external)
    # Wrong ranks.
    h5_case("images_rank1", h5_with(images=np.zeros(N_TRAIN, np.uint8)))
    h5_case("images_scalar", h5_with(images=np.uint8(3)))
    h5_case("labels_rank2", h5_with(labels_=lab.reshape(N_TRAIN, 1)))
    h5_case("labels_scalar", h5_with(labels_=np.int64(1)))
    # N mismatch, zero N, zero feature dimension.
    h5_case("n_mismatch", h5_with(labels_=lab[:-1]))
    h5_case("test_n_mismatch", h5_with(images=np.zeros((N_TEST, ROWS, COLS), np.uint8),
                                       labels_=lab[:N_TEST + 3]), as_test=True)
    h5_case("zero_n", h5_with(images=np.zeros((0, ROWS, COLS), np.uint8), labels_=lab[:0]))
    h5_case("zero_feature_dim", h5_with(images=np.zeros((N_TRAIN, 0, COLS), np.uint8)))
    h5_case("test_other_shape", h5_with(images=np.zeros((N_TEST, ROWS + 1, COLS), np.uint8),
                                        labels_=lab[:N_TEST]), as_test=True)
    # Non-finite float pixels.
    for what, v in [("nan", np.nan), ("inf", np.inf), ("neg_inf", -np.inf)]:
        x = f32.copy()
        x[N_TRAIN // 2, 1, 2] = v
        h5_case(f"pixel_{what}", h5_with(images=x))
    x = f32.astype(np.float64)
    x[-1, -1, -1] = np.nan
    h5_case("pixel_nan_float64", h5_with(images=x))
    x = f32.copy()
    x[0, 0, 0] = np.nan
    h5_case("test_pixel_nan", h5_with(images=x[:N_TEST], labels_=lab[:N_TEST]), as_test=True)
    h5_case("pixel_float64_overflows_float32", h5_with(images=np.full((N_TRAIN, ROWS, COLS), 1e300)))
    # Labels: negative, huge, not integers.
    h5_case("label_negative", h5_with(labels_=np.concatenate([lab[:-1], [-1]])))
    h5_case("label_int64_min", h5_with(labels_=np.concatenate([lab[:-1], [np.iinfo(np.int64).min]])))
    h5_case("label_65536", h5_with(labels_=np.concatenate([lab[:-1], [65536]])))
    h5_case("label_2pow40", h5_with(labels_=np.concatenate([lab[:-1], [1 << 40]])))
    h5_case("label_uint64_max", h5_with(labels_=np.concatenate([lab[:-1], [0]]).astype(np.uint64) +
                                        np.array([0] * (N_TRAIN - 1) + [np.iinfo(np.uint64).max], np.uint64)))
    h5_case("labels_float", h5_with(labels_=lab.astype(np.float32)))
    h5_case("labels_string", h5_with(labels_=np.array([b"cat"] * N_TRAIN)))
    # Images of an unsupported type: integers other than uint8, strings, compound.
    for dt in [np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint64]:
        h5_case(f"images_{np.dtype(dt).name}", h5_with(images=np.zeros((N_TRAIN, ROWS, COLS), dt)))
    h5_case("images_string", h5_with(images=np.array([[b"ab"] * 2] * N_TRAIN)))
    h5_case("images_compound", h5_with(images=np.zeros((N_TRAIN, 2), dtype=[("a", "u1"), ("b", "f4")])))
    h5_case("images_bool_enum", h5_with(images=np.zeros((N_TRAIN, ROWS), dtype=bool)))

    def huge(path):  # chunked, nothing written: a tiny file that claims 2^60 bytes
        with h5py.File(path, "w") as f:
            f.create_dataset("images", shape=(1 << 40, 1 << 20), dtype=np.uint8, chunks=(1, 1024))
            f.create_dataset("labels", shape=(1 << 40,), dtype=np.int64, chunks=(1024,))
    h5_case("huge_dims", huge)

    def huge_per_sample(path):
        with h5py.File(path, "w") as f:
            f.create_dataset("images", shape=(2, 1 << 31, 1 << 31, 4), dtype=np.uint8, chunks=(1, 1, 1024, 4))
            f["labels"] = lab[:2]
    h5_case("huge_per_sample_overflow", huge_per_sample)

    def many_samples(path):  # 4 GiB of pixels, but 48 GiB with the labels
        with h5py.File(path, "w") as f:
            f.create_dataset("images", shape=(1 << 32, 1), dtype=np.uint8, chunks=(1 << 16, 1))
            f.create_dataset("labels", shape=(1 << 32,), dtype=np.int64, chunks=(1 << 16,))
    h5_case("labels_2pow32_samples", many_samples)
    # Not HDF5 at all, or damaged.
    good = open(os.path.join(H5_DIR, "train.h5"), "rb").read()
    for cut in [0, 8, 100, 1000, len(good) // 2, len(good) - 100]:
        h5_case(f"truncated_{cut}", raw_file(good[:cut]))
    h5_case("text_file", raw_file(b"images,labels\n1,2\n" * 10))
    h5_case("random_garbage", raw_file(bytes(rng.randrange(256) for _ in range(4096))))
    h5_case("signature_then_garbage", raw_file(b"\x89HDF\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(2048))))
    bad = bytearray(good)
    for i in range(8, 200):
        bad[i] ^= 0x33
    h5_case("superblock_corrupt", raw_file(bytes(bad)))

    def is_dir(path):
        os.mkdir(path)
    h5_case("is_a_directory", is_dir)

    def missing(path):
        pass
    h5_case("missing_file", missing)


# ------------------------------------------------------------------------------------ decks

n_deck = 0


def deck_case(name, text, expect_key=None, sets=(), line=None, gap=None):
    """A deck file with `text`; stderr must name the deck (with ':line' when given) and the key."""
    global n_deck
    n_deck += 1
    name = "deck_" + name
    d = case_dir(name)
    path = os.path.join(d, name + ".toml")
    write(path, text if isinstance(text, bytes) else text.encode())
    fuzz_copy("deck", name, path)
    args = ["train", path]
    for s in sets:
        args += ["--set", s]
    expect = [name + ".toml" + (f":{line}" if line else "")]
    if expect_key:
        expect.append(expect_key)
    finish(d, args, expect, gap)


def deck_cases():
    base = tiny_deck(SYNTH)
    # Unknown keys and sections.
    deck_case("unknown_key", base.replace("steps = 2", "steps = 2\nbatchsize = 3"),
              "train.batchsize", line=base.split("\n").index("steps = 2") + 2)
    deck_case("unknown_section", base + "[trian]\nseed = 1\n", "trian.seed")
    deck_case("unknown_top_level_key", "seed = 1\n" + base, "seed", line=1)
    deck_case("unknown_data_key", base.replace("[data]\n", "[data]\nsorce = \"hdf5\"\n"), "data.sorce", line=2)
    deck_case("nested_table_in_section", base + "[meta.extra]\nx = 1\n", "meta.extra")
    deck_case("array_of_tables", base + "[[train.runs]]\nseed = 1\n", "train.runs")
    # Wrong types.
    deck_case("type_batch_size_string", base.replace("batch_size = 8\nlog", 'batch_size = "8"\nlog'),
              "train.batch_size")
    deck_case("type_lr_string", base.replace("lr = 1e-3", 'lr = "fast"'), "optimizer.lr")
    deck_case("type_normalize_int", base + "normalize = 1\n", "meta.normalize")
    deck_case("type_hidden_scalar", base.replace("hidden = [8]", "hidden = 8"), "model.hidden")
    deck_case("type_hidden_strings", base.replace("hidden = [8]", 'hidden = ["8"]'), "model.hidden")
    deck_case("type_hidden_float", base.replace("hidden = [8]", "hidden = [8.5]"), "model.hidden")
    deck_case("type_source_int", base.replace('source = "synthetic"', "source = 5"), "data.source")
    deck_case("type_seed_float", base.replace("[train]\n", "[train]\nseed = 1.5\n"), "train.seed")
    deck_case("type_noise_rate_bool", base.replace("noise_rate = 0.2", "noise_rate = true"), "data.noise_rate")
    deck_case("type_date", base.replace("[train]\n", "[train]\nseed = 1979-05-27T07:32:00Z\n"), "train.seed")
    deck_case("type_inline_table_value", base.replace("[train]\n", "[train]\nseed = { a = 1 }\n"), "train.seed")
    deck_case("section_is_value", "train = 5\n" + base.replace("[train]", "[schedule]").replace(
        "steps = 2\n", ""), "train")
    # Out of range and invalid choices.
    deck_case("range_noise_rate", base.replace("noise_rate = 0.2", "noise_rate = 2.0"), "data.noise_rate")
    deck_case("range_batch_size_zero", base.replace("batch_size = 8\nlog", "batch_size = 0\nlog"),
              "train.batch_size")
    deck_case("range_lr_zero", base.replace("lr = 1e-3", "lr = 0"), "optimizer.lr")
    deck_case("range_lr_negative", base.replace("lr = 1e-3", "lr = -1.0"), "optimizer.lr")
    deck_case("range_seed_negative", base.replace("[train]\n", "[train]\nseed = -1\n"), "train.seed")
    deck_case("range_hidden_zero", base.replace("hidden = [8]", "hidden = [8, 0]"), "model.hidden")
    deck_case("range_beta1_one", base.replace('name = "adam"', 'name = "adam"\nbeta1 = 1.0'), "optimizer.beta1")
    deck_case("range_meta_interval_zero", base + "interval = 0\n", "meta.interval")
    deck_case("range_classes_one", base.replace("synthetic_features = 4", "synthetic_features = 4\n"
                                                "synthetic_classes = 1"), "data.synthetic_classes")
    deck_case("choice_optimizer", base.replace('name = "adam"', 'name = "adamx"'), "optimizer.name")
    deck_case("choice_source", base.replace('source = "synthetic"', 'source = "csv"'), "data.source")
    deck_case("choice_activation_case", base.replace("[model]\n", '[model]\nactivation = "ReLU"\n'),
              "model.activation")
    # Huge numbers and non-finite values.
    deck_case("huge_steps_int64_max", base.replace("steps = 2", "steps = 9223372036854775807"), "train.steps")
    deck_case("huge_int_overflow", base.replace("steps = 2", "steps = 99999999999999999999"), None,
              line=base.split("\n").index("steps = 2") + 1)
    deck_case("huge_float_1e400", base.replace("lr = 1e-3", "lr = 1e400"), None,
              line=base.split("\n").index("lr = 1e-3") + 1)
    deck_case("huge_alpha", base + "alpha = 1e308\n", "meta.alpha")
    deck_case("huge_seed", base.replace("[train]\n", "[train]\nseed = 9223372036854775807\n"), "train.seed")
    deck_case("huge_hidden", base.replace("hidden = [8]", "hidden = [4611686018427387904]"), "model.hidden")
    deck_case("nan_lr", base.replace("lr = 1e-3", "lr = nan"), "optimizer.lr")
    deck_case("neg_nan_noise_rate", base.replace("noise_rate = 0.2", "noise_rate = -nan"), "data.noise_rate")
    deck_case("inf_meta_lr", base + "lr = inf\n", "meta.lr")
    deck_case("neg_inf_bucket", base + "[parallel]\nbucket_mb = -inf\n", "parallel.bucket_mb")
    # Empty arrays and contradictions.
    deck_case("empty_hidden", base.replace("hidden = [8]", "hidden = []"), "model.hidden")
    deck_case("contradiction_noise_none", base.replace('noise_type = "uniform"', 'noise_type = "none"'),
              "data.noise_rate")
    deck_case("contradiction_nesterov", base.replace('name = "adam"', 'name = "sgd"\nnesterov = true'),
              "optimizer.nesterov")
    deck_case("contradiction_adam_momentum", base.replace('name = "adam"', 'name = "adam"\nmomentum = 0.9'),
              "optimizer.momentum")
    deck_case("contradiction_hdf5_no_files", base.replace('source = "synthetic"', 'source = "hdf5"'),
              "data.train_file")
    deck_case("batch_exceeds_data", base.replace("batch_size = 8\nlog", "batch_size = 5000\nlog"),
              "train.batch_size")
    deck_case("meta_batch_exceeds_meta_set", base.replace("[meta]\nbatch_size = 8", "[meta]\nbatch_size = 64"),
              "meta.batch_size")
    deck_case("meta_size_exceeds_data", base.replace("meta_size = 20", "meta_size = 100000"), "data.meta_size")
    # TOML syntax errors (the message names the line).
    deck_case("syntax_unterminated_string", base.replace('name = "adam"', 'name = "adam'), None,
              line=base.split("\n").index('name = "adam"') + 1)
    deck_case("syntax_missing_equals", base.replace("steps = 2", "steps 2"), None,
              line=base.split("\n").index("steps = 2") + 1)
    deck_case("syntax_duplicate_key", base.replace("steps = 2", "steps = 2\nsteps = 3"), None,
              line=base.split("\n").index("steps = 2") + 2)
    deck_case("syntax_duplicate_table", base + "[train]\nseed = 2\n", None, line=len(base.split("\n")))
    deck_case("syntax_bad_escape", base.replace('name = "adam"', 'name = "ad\\qam"'), None,
              line=base.split("\n").index('name = "adam"') + 1)
    deck_case("syntax_unclosed_array", base.replace("hidden = [8]", "hidden = [8,"), None)
    deck_case("syntax_unclosed_header", base.replace("[model]", "[model"), None,
              line=base.split("\n").index("[model]") + 1)
    deck_case("syntax_key_with_space", base.replace("steps = 2", "st eps = 2"), None,
              line=base.split("\n").index("steps = 2") + 1)
    deck_case("syntax_only_equals", "=\n", None, line=1)
    # Deep nesting: inline arrays/tables (the parser's depth limit), and very deep dotted tables.
    deck_case("deep_inline_arrays", "[train]\nseed = " + "[" * 5000 + "]" * 5000 + "\n", None, line=2)
    deck_case("deep_inline_tables", "[train]\nseed = " + "{a=" * 5000 + "1" + "}" * 5000 + "\n", None, line=2)
    deck_case("deep_table_header_100", "[" + ".".join(["t"] * 100) + "]\nx = 1\n", None)
    deck_case("deep_table_header_100k", "[" + ".".join(["t"] * 100000) + "]\nx = 1\n", None)
    deck_case("deep_dotted_key_100k", base + "t" + ".t" * 100000 + " = 1\n", None)
    # Binary garbage and encodings.
    deck_case("binary_garbage", bytes(rng.randrange(256) for _ in range(2000)), None)
    deck_case("nul_byte", base.replace("steps = 2", "steps = \0 2").encode(), None)
    deck_case("invalid_utf8", base.replace('name = "adam"', 'name = "ad\udcffam"').encode("utf-8", "surrogateescape"),
              None)
    deck_case("utf16_bom", ("\ufeff" + base).encode("utf-16"), None)
    deck_case("gzip_deck", gz(base.encode()), None)
    deck_case("hdf5_as_deck", open(os.path.join(H5_DIR, "train.h5"), "rb").read(), None)
    # --set overrides (the deck itself is fine).
    deck_case("set_unknown_key", base, "train.sed", sets=["train.sed=3"])
    deck_case("set_no_dot", base, "trainseed", sets=["trainseed=3"])
    deck_case("set_wrong_type", base, "train.batch_size", sets=["train.batch_size=[1,2]"])
    deck_case("set_nan", base, "data.noise_rate", sets=["data.noise_rate=nan"])
    deck_case("set_empty_array", base, "model.hidden", sets=["model.hidden=[]"])
    deck_case("set_inline_table", base, "train.seed", sets=["train.seed={a=1}"])
    deck_case("set_section_not_table", "train = 1\n", "train", sets=["train.seed=1"])
    deck_case("set_deep_value", base, None, sets=["train.seed={" + "a." * 30000 + "b=1}"])

    # A deck that is a directory, a deck that does not exist.
    global n_deck
    n_deck += 1
    d = case_dir("deck_is_a_directory")
    os.mkdir(os.path.join(d, "deck_dir.toml"))
    finish(d, ["train", os.path.join(d, "deck_dir.toml")], ["deck_dir.toml"])
    n_deck += 1
    d = case_dir("deck_missing")
    finish(d, ["train", os.path.join(d, "no_such_deck.toml")], ["no_such_deck.toml"])


def controls():
    """Valid counterparts: each must train."""
    d = case_dir("idx_valid", CONTROLS)
    idx_dir(d)
    finish(d, idx_args(d), [])
    d = case_dir("hdf5_valid", CONTROLS)
    finish(d, h5_args(d, os.path.join(H5_DIR, "train.h5"), os.path.join(H5_DIR, "test.h5")), [])
    d = case_dir("synthetic_valid", CONTROLS)
    deck = os.path.join(d, "deck.toml")
    write(deck, tiny_deck(SYNTH).encode())
    finish(d, ["train", deck], [])
    # Valid seeds for the fuzz targets too.
    write(os.path.join(FUZZ, "deck", "valid_tiny.toml"), tiny_deck(SYNTH).encode())
    write(os.path.join(FUZZ, "idx", "valid_train_images.gz"), gz(VALID_IDX["train-images"]))
    write(os.path.join(FUZZ, "idx", "valid_train_labels"), VALID_IDX["train-labels"])
    shutil.copyfile(os.path.join(H5_DIR, "train.h5"), os.path.join(FUZZ, "hdf5", "valid_train.h5"))
    shutil.copyfile(os.path.join(H5_DIR, "test.h5"), os.path.join(FUZZ, "hdf5", "valid_test.h5"))


def main():
    fresh(OUT)
    for sub in [CASES, CONTROLS] + [os.path.join(FUZZ, k) for k in ("deck", "idx", "hdf5")]:
        os.makedirs(sub)
    idx_cases()
    hdf5_cases()
    deck_cases()
    controls()
    total = n_idx + n_h5 + n_deck
    print(f"{total} malformed inputs written to {CASES} ({n_idx} IDX, {n_h5} HDF5, {n_deck} decks)")


main()
