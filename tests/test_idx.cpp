// IDX reading: the real Fashion-MNIST files, and malformed files written here (gzip and plain).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"
#include "test_helpers.hpp"

namespace {

using sama::data::Dataset;
using sama::data::read_fashion_mnist;
using sama::data::read_idx;
using Bytes = std::vector<std::uint8_t>;

const std::string kDataDir = SAMA_TEST_DATA_DIR;

bool have_fashion_mnist() {
  namespace fs = std::filesystem;
  return fs::exists(fs::path(kDataDir) / "train-images-idx3-ubyte.gz") &&
         fs::exists(fs::path(kDataDir) / "train-labels-idx1-ubyte.gz") &&
         fs::exists(fs::path(kDataDir) / "t10k-images-idx3-ubyte.gz") &&
         fs::exists(fs::path(kDataDir) / "t10k-labels-idx1-ubyte.gz");
}

/// The first `len` decompressed bytes of a file, read directly with zlib (independent of read_idx).
Bytes gz_head(const std::string& path, unsigned len) {
  Bytes b(len);
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return {};
  const int r = gzread(f, b.data(), len);
  gzclose(f);
  b.resize(r > 0 ? static_cast<std::size_t>(r) : 0);
  return b;
}

void put32(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 24));
  b.push_back(static_cast<std::uint8_t>(v >> 16));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

/// An IDX file: magic 0 0 type ndims, the dims, then `payload` bytes (pattern i*7+3).
Bytes idx_file(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t payload) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put32(b, d);
  for (std::size_t i = 0; i < payload; ++i) b.push_back(static_cast<std::uint8_t>(i * 7 + 3));
  return b;
}
Bytes labels_file(const std::vector<std::uint8_t>& labels) {
  Bytes b = {0, 0, 0x08, 1};
  put32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

void write_plain(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!b.empty()) {
    ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

/// Runs `fn`, expects sama::Error whose message names `file` and contains `word`.
template <class Fn>
void expect_error(Fn fn, const std::string& file, const std::string& word) {
  try {
    fn();
    ADD_FAILURE() << "no sama::Error thrown (expected one naming " << file << " and '" << word << "')";
  } catch (const sama::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(word), std::string::npos) << "message lacks '" << word << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// ------------------------------------------------------------------------- real Fashion-MNIST

TEST(Idx, FashionMnistTrain) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not found in " << kDataDir
                                          << " (Debian package dataset-fashion-mnist)";
  const Dataset d = read_fashion_mnist(kDataDir, true);
  EXPECT_EQ(d.n, 60000u);
  EXPECT_EQ(d.shape, (std::vector<std::size_t>{28, 28}));
  EXPECT_EQ(d.features(), 784u);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_TRUE(d.is_u8());
  EXPECT_TRUE(d.f32.empty());
  ASSERT_EQ(d.u8.size(), 60000u * 784u);
  ASSERT_EQ(d.labels.size(), 60000u);
  std::vector<int> count(10, 0);
  for (auto l : d.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++count[l];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[c], 6000) << "class " << c;

  // First label and first image against a direct read of the file bytes.
  const Bytes lab = gz_head(kDataDir + "/train-labels-idx1-ubyte.gz", 8 + 16);
  ASSERT_EQ(lab.size(), 24u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(d.labels[i], lab[8 + i]) << "label " << i;
  const Bytes img = gz_head(kDataDir + "/train-images-idx3-ubyte.gz", 16 + 2 * 784);
  ASSERT_EQ(img.size(), 16u + 2 * 784u);
  for (int j = 0; j < 2 * 784; ++j) ASSERT_EQ(d.u8[j], img[16 + j]) << "pixel " << j;
  for (int j = 0; j < 784; ++j) ASSERT_EQ(d.raw(1, j), static_cast<float>(img[16 + 784 + j]));
  EXPECT_NE(d.source.find("train-images-idx3-ubyte"), std::string::npos);
}

TEST(Idx, FashionMnistTest) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not found in " << kDataDir
                                          << " (Debian package dataset-fashion-mnist)";
  const Dataset d = read_fashion_mnist(kDataDir, false);
  EXPECT_EQ(d.n, 10000u);
  EXPECT_EQ(d.shape, (std::vector<std::size_t>{28, 28}));
  EXPECT_EQ(d.num_classes, 10);
  std::vector<int> count(10, 0);
  for (auto l : d.labels) ++count[l];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[c], 1000) << "class " << c;
  const Bytes lab = gz_head(kDataDir + "/t10k-labels-idx1-ubyte.gz", 9);
  ASSERT_EQ(lab.size(), 9u);
  EXPECT_EQ(d.labels[0], lab[8]);
}

TEST(Idx, FashionMnistMissingDirectory) {
  sama::test::TempDir tmp("idx_fm");
  expect_error([&] { read_fashion_mnist(tmp.path().string(), true); }, tmp.path().string(),
               "dataset-fashion-mnist");
  expect_error([&] { read_fashion_mnist(tmp.file("nope"), false); }, "t10k-images-idx3-ubyte.gz",
               "does not exist");
}

TEST(Idx, FashionMnistUncompressedFallback) {
  sama::test::TempDir tmp("idx_fm_plain");
  write_plain(tmp.file("t10k-images-idx3-ubyte"), idx_file(0x08, {3, 2, 2}, 12));
  write_gz(tmp.file("t10k-labels-idx1-ubyte.gz"), labels_file({0, 4, 1}));
  const Dataset d = read_fashion_mnist(tmp.path().string(), false);
  EXPECT_EQ(d.n, 3u);
  EXPECT_EQ(d.num_classes, 5);
}

// ------------------------------------------------------------------------- small good files

class IdxFiles : public ::testing::TestWithParam<bool> {  // param: gzip-compressed
 protected:
  void write(const std::string& path, const Bytes& b) {
    if (GetParam()) write_gz(path, b);
    else write_plain(path, b);
  }
  sama::test::TempDir tmp{"idx"};
};

TEST_P(IdxFiles, GoodFileRoundTrip) {
  const auto img = tmp.file("img.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {4, 3, 2}, 24));
  write(lab, labels_file({2, 0, 7, 2}));
  const Dataset d = read_idx(img, lab);
  EXPECT_EQ(d.n, 4u);
  EXPECT_EQ(d.shape, (std::vector<std::size_t>{3, 2}));
  EXPECT_EQ(d.num_classes, 8);
  EXPECT_EQ(d.labels, (std::vector<std::int32_t>{2, 0, 7, 2}));
  ASSERT_EQ(d.u8.size(), 24u);
  for (std::size_t i = 0; i < 24; ++i) EXPECT_EQ(d.u8[i], static_cast<std::uint8_t>(i * 7 + 3));
}

TEST_P(IdxFiles, TruncatedPayload) {
  const auto img = tmp.file("trunc-images.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {4, 3, 2}, 20));
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "trunc-images.idx", "truncated");
  expect_error([&] { read_idx(img, lab); }, "trunc-images.idx", "promises 24 bytes");
}

TEST_P(IdxFiles, TruncatedHeader) {
  const auto img = tmp.file("short-header.idx"), lab = tmp.file("lab.idx");
  Bytes b = idx_file(0x08, {4, 3, 2}, 0);
  b.resize(9);
  write(img, b);
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "short-header.idx", "truncated");
}

TEST_P(IdxFiles, BadMagic) {
  const auto img = tmp.file("magic.idx"), lab = tmp.file("lab.idx");
  Bytes b = idx_file(0x08, {4, 3, 2}, 24);
  b[0] = 0x12;
  write(img, b);
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "magic.idx", "magic");
  // Labels with an image magic (3 dims) are refused too.
  write(lab, idx_file(0x08, {4, 1, 1}, 4));
  write(img, idx_file(0x08, {4, 3, 2}, 24));
  expect_error([&] { read_idx(img, lab); }, "lab.idx", "magic");
}

TEST_P(IdxFiles, WrongTypeByte) {
  const auto img = tmp.file("type.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x0D, {4, 3, 2}, 96));  // float32
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "type.idx", "type");
}

TEST_P(IdxFiles, LyingDimensionsTooMany) {
  const auto img = tmp.file("more.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {5, 3, 2}, 24));  // header says 5 samples, content holds 4
  write(lab, labels_file({0, 1, 2, 3, 4}));
  expect_error([&] { read_idx(img, lab); }, "more.idx", "truncated");
}

TEST_P(IdxFiles, LyingDimensionsTooFew) {
  const auto img = tmp.file("fewer.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {3, 3, 2}, 24));  // header says 3 samples, content holds 4
  write(lab, labels_file({0, 1, 2}));
  expect_error([&] { read_idx(img, lab); }, "fewer.idx", "trailing");
  expect_error([&] { read_idx(img, lab); }, "fewer.idx", "6 trailing bytes");
}

TEST_P(IdxFiles, ZeroDimension) {
  const auto img = tmp.file("zero.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {4, 0, 2}, 0));
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "zero.idx", "zero");
  write(img, idx_file(0x08, {4, 3, 2}, 24));
  write(lab, labels_file({}));
  expect_error([&] { read_idx(img, lab); }, "lab.idx", "zero");
}

TEST_P(IdxFiles, AbsurdDimensions) {
  const auto img = tmp.file("huge.idx"), lab = tmp.file("lab.idx");
  write(img, idx_file(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, 16));
  write(lab, labels_file({0, 1, 2, 3}));
  expect_error([&] { read_idx(img, lab); }, "huge.idx", "too large");
}

TEST_P(IdxFiles, LabelCountMismatch) {
  const auto img = tmp.file("img.idx"), lab = tmp.file("count-labels.idx");
  write(img, idx_file(0x08, {4, 3, 2}, 24));
  write(lab, labels_file({0, 1, 2}));
  expect_error([&] { read_idx(img, lab); }, "count-labels.idx", "mismatch");
  expect_error([&] { read_idx(img, lab); }, "img.idx", "mismatch");
}

TEST_P(IdxFiles, EmptyFile) {
  const auto img = tmp.file("empty.idx"), lab = tmp.file("lab.idx");
  write(img, {});
  write(lab, labels_file({0}));
  expect_error([&] { read_idx(img, lab); }, "empty.idx", "empty");
}

TEST_P(IdxFiles, Garbage) {
  const auto img = tmp.file("garbage.idx"), lab = tmp.file("lab.idx");
  Bytes g;
  for (int i = 0; i < 1000; ++i) g.push_back(static_cast<std::uint8_t>(0x41 + i % 26));
  write(img, g);
  write(lab, labels_file({0}));
  expect_error([&] { read_idx(img, lab); }, "garbage.idx", "magic");
}

INSTANTIATE_TEST_SUITE_P(GzipAndPlain, IdxFiles, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "gzip" : "plain"; });

// ------------------------------------------------------------------------- file-level problems

TEST(Idx, MissingFile) {
  sama::test::TempDir tmp("idx_missing");
  const auto img = tmp.file("absent-images.gz"), lab = tmp.file("lab.idx");
  write_plain(lab, labels_file({0}));
  expect_error([&] { read_idx(img, lab); }, "absent-images.gz", "No such file");
  expect_error([&] { read_idx(tmp.path().string(), lab); }, tmp.path().string(), "directory");
}

TEST(Idx, CorruptGzipStream) {
  sama::test::TempDir tmp("idx_corrupt");
  const auto good = tmp.file("good.gz"), lab = tmp.file("lab.idx");
  write_gz(good, idx_file(0x08, {50, 10, 10}, 5000));
  write_plain(lab, labels_file(std::vector<std::uint8_t>(50, 1)));
  ASSERT_EQ(read_idx(good, lab).n, 50u);

  std::ifstream in(good, std::ios::binary);
  Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(gz.size(), 40u);

  // Gzip magic followed by garbage: a corrupt deflate stream.
  Bytes bad = gz;
  for (std::size_t i = 12; i < bad.size() - 8; ++i) bad[i] = static_cast<std::uint8_t>(0xA5 ^ i);
  const auto corrupt = tmp.file("corrupt.gz");
  write_plain(corrupt, bad);
  expect_error([&] { read_idx(corrupt, lab); }, "corrupt.gz", "gzip");

  // The compressed file cut in half: the stream ends early.
  Bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  const auto cutf = tmp.file("cut.gz");
  write_plain(cutf, cut);
  expect_error([&] { read_idx(cutf, lab); }, "cut.gz", "truncated");
}

}  // namespace
