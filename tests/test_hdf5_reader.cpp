// read_hdf5 and the sama::io HDF5 helpers: round trips and malformed files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"
#include "sama/io/h5.hpp"
#include "test_helpers.hpp"

namespace {

using sama::data::Dataset;
using sama::data::read_hdf5;
namespace io = sama::io;

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

/// Writes a dataset of any HDF5 file type from memory of the given native type (raw C API).
void write_typed(hid_t file, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                 const std::vector<hsize_t>& dims) {
  io::H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  io::H5Handle dset(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(dset.valid());
  ASSERT_GE(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
}

std::vector<std::uint8_t> pattern_u8(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 37 + 5) % 256);
  return v;
}
std::vector<float> pattern_f32(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = 0.25f * static_cast<float>(i) - 3.0f;
  return v;
}

class Hdf5Reader : public ::testing::Test {
 protected:
  sama::test::TempDir tmp{"h5"};
};

// ------------------------------------------------------------------------- good files

TEST_F(Hdf5Reader, Uint8RoundTrip) {
  const auto path = tmp.file("good_u8.h5");
  const auto px = pattern_u8(5 * 4 * 3);
  const std::vector<std::int64_t> lab = {0, 3, 1, 3, 2};
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", px.data(), {5, 4, 3});
    io::write_vector(f, "labels", lab);
  }
  const Dataset d = read_hdf5(path);
  EXPECT_EQ(d.source, path);
  EXPECT_EQ(d.n, 5u);
  EXPECT_EQ(d.shape, (std::vector<std::size_t>{4, 3}));
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_TRUE(d.is_u8());
  EXPECT_EQ(d.u8, px);
  EXPECT_EQ(d.labels, (std::vector<std::int32_t>{0, 3, 1, 3, 2}));
}

TEST_F(Hdf5Reader, Float32RoundTrip) {
  const auto path = tmp.file("good_f32.h5");
  const auto px = pattern_f32(6 * 7);
  const std::vector<std::int32_t> lab = {1, 1, 0, 2, 0, 1};
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<float>(f, "/images", px.data(), {6, 7});
    io::write_vector(f, "/labels", lab);
  }
  const Dataset d = read_hdf5(path);
  EXPECT_EQ(d.n, 6u);
  EXPECT_EQ(d.shape, (std::vector<std::size_t>{7}));
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_FALSE(d.is_u8());
  EXPECT_EQ(d.f32, px);
  EXPECT_EQ(d.labels, lab);
  EXPECT_EQ(d.raw(2, 3), px[2 * 7 + 3]);
}

TEST_F(Hdf5Reader, OtherFloatAndIntegerTypesConvert) {
  const auto path = tmp.file("double_int16.h5");
  std::vector<double> px = {0.5, -1.5, 2.0, 1e-3, 4.0, 5.0};
  std::vector<std::int16_t> lab = {4, 0, 2};
  {
    io::H5Handle f = io::create_file(path);
    write_typed(f, "images", H5T_IEEE_F64BE, H5T_NATIVE_DOUBLE, px.data(), {3, 2});
    write_typed(f, "labels", H5T_STD_I16BE, H5T_NATIVE_INT16, lab.data(), {3});
  }
  const Dataset d = read_hdf5(path);
  ASSERT_EQ(d.f32.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(d.f32[i], static_cast<float>(px[i]));
  EXPECT_EQ(d.labels, (std::vector<std::int32_t>{4, 0, 2}));
  EXPECT_EQ(d.num_classes, 5);
}

// ------------------------------------------------------------------------- malformed files

TEST_F(Hdf5Reader, MissingLabels) {
  const auto path = tmp.file("no_labels.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(8).data(), {2, 4});
  }
  expect_error([&] { read_hdf5(path); }, "no_labels.h5", "missing dataset /labels");
}

TEST_F(Hdf5Reader, MissingImages) {
  const auto path = tmp.file("no_images.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_vector<std::int64_t>(f, "labels", {0, 1});
  }
  expect_error([&] { read_hdf5(path); }, "no_images.h5", "missing dataset /images");
}

TEST_F(Hdf5Reader, NMismatch) {
  const auto path = tmp.file("n_mismatch.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(12).data(), {3, 4});
    io::write_vector<std::int64_t>(f, "labels", {0, 1});
  }
  expect_error([&] { read_hdf5(path); }, "n_mismatch.h5", "mismatch");
}

TEST_F(Hdf5Reader, ZeroSamples) {
  const auto path = tmp.file("empty_n.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", nullptr, {0, 4});
    io::write_vector<std::int64_t>(f, "labels", {});
  }
  expect_error([&] { read_hdf5(path); }, "empty_n.h5", "N = 0");
}

TEST_F(Hdf5Reader, NanPixel) {
  const auto path = tmp.file("nan.h5");
  auto px = pattern_f32(4 * 5);
  px[2 * 5 + 3] = std::numeric_limits<float>::quiet_NaN();
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<float>(f, "images", px.data(), {4, 5});
    io::write_vector<std::int64_t>(f, "labels", {0, 1, 0, 1});
  }
  expect_error([&] { read_hdf5(path); }, "nan.h5", "sample 2");
  expect_error([&] { read_hdf5(path); }, "nan.h5", "non-finite");
}

TEST_F(Hdf5Reader, InfPixel) {
  const auto path = tmp.file("inf.h5");
  auto px = pattern_f32(4 * 5);
  px[3 * 5] = -std::numeric_limits<float>::infinity();
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<float>(f, "images", px.data(), {4, 5});
    io::write_vector<std::int64_t>(f, "labels", {0, 1, 0, 1});
  }
  expect_error([&] { read_hdf5(path); }, "inf.h5", "sample 3");
}

TEST_F(Hdf5Reader, NegativeLabel) {
  const auto path = tmp.file("neg.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(12).data(), {3, 4});
    io::write_vector<std::int32_t>(f, "labels", {0, -2, 1});
  }
  expect_error([&] { read_hdf5(path); }, "neg.h5", "negative label -2");
}

TEST_F(Hdf5Reader, HugeLabel) {
  const auto path = tmp.file("huge_label.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(12).data(), {3, 4});
    io::write_vector<std::int64_t>(f, "labels", {0, std::int64_t(1) << 40, 1});
  }
  expect_error([&] { read_hdf5(path); }, "huge_label.h5", "too large");
}

TEST_F(Hdf5Reader, WrongRankLabels) {
  const auto path = tmp.file("rank_labels.h5");
  const std::vector<std::int64_t> lab = {0, 1, 2};
  {
    io::H5Handle f = io::create_file(path);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(12).data(), {3, 4});
    io::write_dataset<std::int64_t>(f, "labels", lab.data(), {3, 1});
  }
  expect_error([&] { read_hdf5(path); }, "rank_labels.h5", "rank 2");
}

TEST_F(Hdf5Reader, WrongRankImages) {
  const auto path = tmp.file("rank_images.h5");
  {
    io::H5Handle f = io::create_file(path);
    io::write_vector<std::uint8_t>(f, "images", pattern_u8(3));
    io::write_vector<std::int64_t>(f, "labels", {0, 1, 2});
  }
  expect_error([&] { read_hdf5(path); }, "rank_images.h5", "rank 1");
}

TEST_F(Hdf5Reader, UnsupportedTypes) {
  const auto path = tmp.file("int_images.h5");
  {
    io::H5Handle f = io::create_file(path);
    const std::vector<std::int32_t> px(12, 1);
    io::write_dataset<std::int32_t>(f, "images", px.data(), {3, 4});
    io::write_vector<std::int64_t>(f, "labels", {0, 1, 2});
  }
  expect_error([&] { read_hdf5(path); }, "int_images.h5", "unsupported");
  const auto path2 = tmp.file("float_labels.h5");
  {
    io::H5Handle f = io::create_file(path2);
    io::write_dataset<std::uint8_t>(f, "images", pattern_u8(12).data(), {3, 4});
    io::write_vector<float>(f, "labels", {0.f, 1.f, 2.f});
  }
  expect_error([&] { read_hdf5(path2); }, "float_labels.h5", "unsupported type class for /labels");
}

TEST_F(Hdf5Reader, NotAnHdf5File) {
  const auto path = tmp.file("text.h5");
  {
    std::ofstream f(path);
    f << "this is not HDF5\n";
  }
  expect_error([&] { read_hdf5(path); }, "text.h5", "not an HDF5 file");
  const auto empty = tmp.file("empty.h5");
  { std::ofstream f(empty); }
  expect_error([&] { read_hdf5(empty); }, "empty.h5", "not an HDF5 file");
}

TEST_F(Hdf5Reader, MissingFile) {
  expect_error([&] { read_hdf5(tmp.file("absent.h5")); }, "absent.h5", "No such file");
}

// ------------------------------------------------------------------------- sama::io helpers

TEST_F(Hdf5Reader, IoHelpersRoundTrip) {
  const auto path = tmp.file("io.h5");
  const std::vector<double> dv = {1.5, -2.25, 3e10};
  const std::vector<float> fv = {0.5f, 1.25f};
  const std::vector<std::int32_t> iv = {-7, 8, 9};
  const std::vector<std::int64_t> lv = {std::int64_t(1) << 40, -1};
  const std::vector<std::uint8_t> uv = {0, 255, 17};
  {
    io::H5Handle f = io::create_file(path);
    io::H5Handle g = io::create_group(f, "results/run0");
    io::write_vector(g, "d", dv);
    io::write_vector(f, "results/run0/f", fv);
    io::write_vector(f, "i", iv);
    io::write_vector(f, "l", lv);
    io::write_vector(f, "u", uv);
    io::write_vector(f, "u", uv);  // replacing works
    io::write_string_attribute(f, "version", "sama 0.1");
    io::write_string_attribute(f, "version", "sama 0.2");  // replacing works
    io::write_string_attribute(g, "empty", "");
    io::write_attribute<double>(g, "lr", 0.125);
    io::write_attribute<std::int64_t>(g, "steps", 123456789012);
  }
  io::H5Handle f = io::open_file(path);
  EXPECT_EQ(io::file_name(f), path);
  EXPECT_TRUE(io::exists(f, "results/run0/d"));
  EXPECT_TRUE(io::exists(f, "/results/run0"));
  EXPECT_FALSE(io::exists(f, "results/run1/d"));
  EXPECT_FALSE(io::exists(f, "nothing"));
  std::vector<hsize_t> dims;
  EXPECT_EQ(io::read_dataset<double>(f, "results/run0/d", &dims), dv);
  EXPECT_EQ(dims, (std::vector<hsize_t>{3}));
  EXPECT_EQ(io::read_dataset<float>(f, "results/run0/f"), fv);
  EXPECT_EQ(io::read_dataset<std::int32_t>(f, "i"), iv);
  EXPECT_EQ(io::read_dataset<std::int64_t>(f, "l"), lv);
  EXPECT_EQ(io::read_dataset<std::uint8_t>(f, "u"), uv);
  EXPECT_EQ(io::read_dataset<double>(f, "i"), (std::vector<double>{-7, 8, 9}));  // converted
  EXPECT_EQ(io::read_string_attribute(f, "version"), "sama 0.2");
  io::H5Handle g = io::open_group(f, "results/run0");
  EXPECT_EQ(io::read_string_attribute(g, "empty"), "");
  EXPECT_EQ(io::read_attribute<double>(g, "lr"), 0.125);
  EXPECT_EQ(io::read_attribute<std::int64_t>(g, "steps"), 123456789012);
  io::H5Handle d = io::open_dataset(f, "results/run0/d");
  EXPECT_EQ(io::dataset_dims(d), (std::vector<hsize_t>{3}));

  expect_error([&] { io::open_dataset(f, "nope"); }, "io.h5", "missing dataset 'nope'");
  expect_error([&] { io::open_group(f, "nope"); }, "io.h5", "missing group 'nope'");
  expect_error([&] { io::read_string_attribute(f, "nope"); }, "io.h5", "missing attribute 'nope'");
  expect_error([&] { io::read_dataset<double>(f, "results/run0/d", nullptr, 2); }, "io.h5", "limit");
  expect_error([&] { io::write_vector<double>(f, "x", {1.0}); }, "io.h5", "failed");  // read-only
  expect_error([&] { io::check(-1, "doing X", "some.h5"); }, "some.h5", "doing X failed");
  expect_error([&] { io::create_file(tmp.file("no/such/dir/x.h5")); }, "x.h5", "does not exist");
}

TEST_F(Hdf5Reader, HandleMoveAndRelease) {
  const auto path = tmp.file("handle.h5");
  io::H5Handle a = io::create_file(path);
  ASSERT_TRUE(a.valid());
  io::H5Handle b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.valid());
  io::H5Handle space(H5Screate(H5S_SCALAR));
  const hid_t raw = space.release();
  EXPECT_FALSE(space.valid());
  EXPECT_GT(H5Iis_valid(raw), 0);
  space.reset(raw);
  space.reset();
  EXPECT_LE(H5Iis_valid(raw), 0);
}

}  // namespace
