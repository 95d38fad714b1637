// Meta split, label noise, the synthetic data set, normalisation and gather.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "sama/core/error.hpp"
#include "sama/data/dataset.hpp"
#include "sama/data/noise.hpp"

namespace {

using namespace sama::data;

/// Labels 0..C-1, `per_class` of each, interleaved in a fixed irregular order.
std::vector<std::int32_t> make_labels(int C, int per_class) {
  std::vector<std::int32_t> l;
  for (int k = 0; k < per_class; ++k)
    for (int c = 0; c < C; ++c) l.push_back((c * 7 + k) % C);
  return l;
}

std::vector<std::int64_t> iota_ids(std::size_t n) {
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// ------------------------------------------------------------------------- split_meta

TEST(SplitMeta, ClassBalancedDisjointComplete) {
  const int C = 10;
  const auto labels = make_labels(C, 100);
  const std::size_t meta_size = 57;  // 5 or 6 per class
  const MetaSplit s = split_meta(labels, C, meta_size, 42);
  ASSERT_EQ(s.meta_ids.size(), meta_size);
  ASSERT_EQ(s.train_ids.size(), labels.size() - meta_size);
  EXPECT_TRUE(std::is_sorted(s.meta_ids.begin(), s.meta_ids.end()));
  EXPECT_TRUE(std::is_sorted(s.train_ids.begin(), s.train_ids.end()));

  std::vector<int> per_class(C, 0);
  for (auto id : s.meta_ids) ++per_class[labels[id]];
  for (int c = 0; c < C; ++c) EXPECT_EQ(per_class[c], c < 7 ? 6 : 5) << "class " << c;

  std::set<std::int64_t> all(s.meta_ids.begin(), s.meta_ids.end());
  EXPECT_EQ(all.size(), meta_size);  // no duplicates
  for (auto id : s.train_ids) EXPECT_TRUE(all.insert(id).second) << "id " << id << " in both sets";
  EXPECT_EQ(all.size(), labels.size());
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), static_cast<std::int64_t>(labels.size()) - 1);
}

TEST(SplitMeta, ReproducibleAndSeedDependent) {
  const auto labels = make_labels(5, 200);
  const auto a = split_meta(labels, 5, 100, 7);
  const auto b = split_meta(labels, 5, 100, 7);
  const auto c = split_meta(labels, 5, 100, 8);
  EXPECT_EQ(a.meta_ids, b.meta_ids);
  EXPECT_EQ(a.train_ids, b.train_ids);
  EXPECT_NE(a.meta_ids, c.meta_ids);
}

TEST(SplitMeta, EdgeCasesAndErrors) {
  const auto labels = make_labels(4, 3);
  EXPECT_TRUE(split_meta(labels, 4, 0, 1).meta_ids.empty());
  EXPECT_EQ(split_meta(labels, 4, 12, 1).train_ids.size(), 0u);
  EXPECT_THROW(split_meta(labels, 4, 13, 1), sama::Error);  // larger than the set
  // 3 per class: a meta set of 4 per class cannot be balanced.
  std::vector<std::int32_t> skew = {0, 0, 0, 0, 0, 1, 1};
  try {
    split_meta(skew, 2, 6, 1);
    ADD_FAILURE() << "no throw";
  } catch (const sama::Error& e) {
    EXPECT_NE(std::string(e.what()).find("class 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(split_meta({0, 5}, 3, 1, 1), sama::Error);  // label out of range
  EXPECT_THROW(split_meta({0, 1}, 0, 1, 1), sama::Error);
}

// ------------------------------------------------------------------------- noise

TEST(Noise, ParseType) {
  EXPECT_EQ(parse_noise_type("none"), NoiseType::none);
  EXPECT_EQ(parse_noise_type("uniform"), NoiseType::uniform);
  EXPECT_EQ(parse_noise_type("pair"), NoiseType::pair);
  EXPECT_THROW(parse_noise_type("Uniform"), sama::Error);
  EXPECT_THROW(parse_noise_type(""), sama::Error);
}

void check_noise(NoiseType type, double rate) {
  const int C = 10;
  const auto labels = make_labels(C, 2000);  // 20000 samples
  const auto split = split_meta(labels, C, 1000, 3);
  const auto& ids = split.train_ids;
  const NoisyLabels nl = apply_label_noise(labels, C, ids, type, rate, 99);
  ASSERT_EQ(nl.observed.size(), labels.size());
  ASSERT_EQ(nl.truth, labels);
  ASSERT_EQ(nl.is_noisy.size(), labels.size());

  std::size_t flipped = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    ASSERT_EQ(nl.is_noisy[i] != 0, nl.observed[i] != nl.truth[i]) << "sample " << i;
    ASSERT_GE(nl.observed[i], 0);
    ASSERT_LT(nl.observed[i], C);
    if (nl.is_noisy[i]) {
      ++flipped;
      if (type == NoiseType::pair) {
        EXPECT_EQ(nl.observed[i], (nl.truth[i] + 1) % C);
      }
    }
  }
  for (auto id : split.meta_ids) EXPECT_EQ(nl.is_noisy[id], 0) << "meta sample " << id << " was touched";

  const double n = static_cast<double>(ids.size());
  const double sigma = std::sqrt(n * rate * (1 - rate));
  EXPECT_NEAR(static_cast<double>(flipped), n * rate, 4 * sigma + 1e-9);

  if (type == NoiseType::uniform && rate > 0) {
    // Every other class receives flipped labels, roughly uniformly.
    std::vector<std::vector<int>> m(C, std::vector<int>(C, 0));
    for (auto id : ids)
      if (nl.is_noisy[id]) ++m[nl.truth[id]][nl.observed[id]];
    for (int a = 0; a < C; ++a)
      for (int b = 0; b < C; ++b)
        if (a != b) {
          EXPECT_GT(m[a][b], 0) << a << " -> " << b;
        }
  }

  const NoisyLabels again = apply_label_noise(labels, C, ids, type, rate, 99);
  EXPECT_EQ(again.observed, nl.observed);
  if (rate > 0 && rate < 1) {
    const NoisyLabels other = apply_label_noise(labels, C, ids, type, rate, 100);
    EXPECT_NE(other.observed, nl.observed);
  }
}

TEST(Noise, Uniform40) { check_noise(NoiseType::uniform, 0.4); }
TEST(Noise, Uniform10) { check_noise(NoiseType::uniform, 0.1); }
TEST(Noise, Pair40) { check_noise(NoiseType::pair, 0.4); }
TEST(Noise, RateOneFlipsEverything) {
  const auto labels = make_labels(3, 50);
  const auto ids = iota_ids(labels.size());
  for (auto type : {NoiseType::uniform, NoiseType::pair}) {
    const auto nl = apply_label_noise(labels, 3, ids, type, 1.0, 5);
    for (std::size_t i = 0; i < labels.size(); ++i) EXPECT_NE(nl.observed[i], labels[i]);
  }
}

TEST(Noise, RateZeroAndNoneChangeNothing) {
  const auto labels = make_labels(4, 100);
  const auto ids = iota_ids(labels.size());
  for (auto type : {NoiseType::uniform, NoiseType::pair, NoiseType::none}) {
    const auto nl = apply_label_noise(labels, 4, ids, type, 0.0, 5);
    EXPECT_EQ(nl.observed, labels);
    EXPECT_EQ(std::count(nl.is_noisy.begin(), nl.is_noisy.end(), 1), 0);
  }
  const auto none = apply_label_noise(labels, 4, ids, NoiseType::none, 0.7, 5);
  EXPECT_EQ(none.observed, labels);
}

TEST(Noise, InvalidInputsThrow) {
  const auto labels = make_labels(4, 10);
  const auto ids = iota_ids(labels.size());
  EXPECT_THROW(apply_label_noise(labels, 4, ids, NoiseType::uniform, -0.01, 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 4, ids, NoiseType::uniform, 1.01, 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 4, ids, NoiseType::pair, std::nan(""), 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 4, {0, 40}, NoiseType::pair, 0.5, 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 4, {-1}, NoiseType::pair, 0.5, 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 4, {3, 3}, NoiseType::pair, 0.5, 1), sama::Error);
  EXPECT_THROW(apply_label_noise(labels, 3, ids, NoiseType::pair, 0.5, 1), sama::Error);  // label 3
  EXPECT_THROW(apply_label_noise({0, 0}, 1, {0, 1}, NoiseType::uniform, 0.5, 1), sama::Error);
}

// ------------------------------------------------------------------------- synthetic

TEST(Synthetic, DeterministicShapeAndRange) {
  const Dataset a = make_synthetic(500, 12, 4, 1.0, 11, 0);
  const Dataset b = make_synthetic(500, 12, 4, 1.0, 11, 0);
  EXPECT_EQ(a.n, 500u);
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{12}));
  EXPECT_EQ(a.features(), 12u);
  EXPECT_EQ(a.num_classes, 4);
  EXPECT_FALSE(a.is_u8());
  ASSERT_EQ(a.f32.size(), 500u * 12u);
  ASSERT_EQ(a.labels.size(), 500u);
  std::vector<int> count(4, 0);
  for (auto l : a.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 4);
    ++count[l];
  }
  for (int c = 0; c < 4; ++c) EXPECT_EQ(count[c], 125);  // balanced
  for (float v : a.f32) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(a.f32, b.f32);
  EXPECT_EQ(a.labels, b.labels);

  const Dataset other_seed = make_synthetic(500, 12, 4, 1.0, 12, 0);
  EXPECT_NE(a.f32, other_seed.f32);
  const Dataset test = make_synthetic(500, 12, 4, 1.0, 11, 1);
  EXPECT_NE(a.f32, test.f32);
  EXPECT_NE(a.labels, test.labels);
}

TEST(Synthetic, TrainAndTestShareClassMeans) {
  // Class means estimated from the train and test streams agree (same clusters), and differ
  // between classes.
  const std::size_t F = 16;
  const int C = 3;
  const Dataset tr = make_synthetic(6000, F, C, 2.0, 5, 0);
  const Dataset te = make_synthetic(6000, F, C, 2.0, 5, 1);
  auto means = [&](const Dataset& d) {
    std::vector<double> m(C * F, 0.0);
    std::vector<int> cnt(C, 0);
    for (std::size_t i = 0; i < d.n; ++i) {
      ++cnt[d.labels[i]];
      for (std::size_t j = 0; j < F; ++j) m[d.labels[i] * F + j] += d.raw(i, j);
    }
    for (int c = 0; c < C; ++c)
      for (std::size_t j = 0; j < F; ++j) m[c * F + j] /= cnt[c];
    return m;
  };
  const auto ma = means(tr), mb = means(te);
  for (std::size_t k = 0; k < ma.size(); ++k) EXPECT_NEAR(ma[k], mb[k], 0.15) << k;
  double d01 = 0;
  for (std::size_t j = 0; j < F; ++j) d01 += (ma[j] - ma[F + j]) * (ma[j] - ma[F + j]);
  EXPECT_GT(std::sqrt(d01), 1.0);
}

TEST(Synthetic, InvalidArguments) {
  EXPECT_THROW(make_synthetic(0, 4, 2, 1.0, 1, 0), sama::Error);
  EXPECT_THROW(make_synthetic(10, 0, 2, 1.0, 1, 0), sama::Error);
  EXPECT_THROW(make_synthetic(10, 4, 1, 1.0, 1, 0), sama::Error);
  EXPECT_THROW(make_synthetic(10, 4, 2, -1.0, 1, 0), sama::Error);
  EXPECT_THROW(make_synthetic(std::size_t(1) << 40, 1 << 20, 2, 1.0, 1, 0), sama::Error);
}

// ------------------------------------------------------------------------- normalisation, gather

template <class T>
void expect_standardized(const std::vector<T>& v) {
  double s = 0, s2 = 0;
  for (T x : v) s += x;
  const double mean = s / v.size();
  for (T x : v) s2 += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0.0, 1e-4);
  EXPECT_NEAR(std::sqrt(s2 / v.size()), 1.0, 1e-4);
}

TEST(Normalization, Uint8GatheredIsStandardized) {
  Dataset d;
  d.source = "test-u8";
  d.n = 50;
  d.shape = {3, 4};
  d.num_classes = 1;
  d.labels.assign(d.n, 0);
  for (std::size_t i = 0; i < d.n * 12; ++i) d.u8.push_back(static_cast<std::uint8_t>((i * i * 31 + i) % 256));
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < 50; i += 2) ids.push_back(i);  // only the even samples
  const Normalization nrm = compute_normalization(d, ids);
  EXPECT_GT(nrm.scale, 0.0f);

  std::vector<float> out(ids.size() * 12);
  gather(d, nrm, ids.data(), ids.size(), out.data());
  expect_standardized(out);
  std::vector<double> outd(ids.size() * 12);
  gather(d, nrm, ids.data(), ids.size(), outd.data());
  expect_standardized(outd);
  // The documented formula: (raw/255 - mean)/std == raw*scale + shift, row-major per id.
  for (std::size_t k = 0; k < ids.size(); ++k)
    for (std::size_t j = 0; j < 12; ++j) {
      // The library may fuse the multiply-add (one rounding instead of two): allow a few float ulps of
      // the terms, not of the (possibly cancelled) result.
      const double a = static_cast<double>(d.raw(ids[k], j)) * nrm.scale, b = nrm.shift;
      EXPECT_NEAR(out[k * 12 + j], a + b, 4e-7 * (std::abs(a) + std::abs(b)));
    }
}

TEST(Normalization, Float32GatheredIsStandardized) {
  const Dataset d = make_synthetic(400, 9, 3, 1.5, 21, 0);
  // Offset the data so that a one-pass variance would lose precision.
  Dataset big = d;
  for (auto& v : big.f32) v += 1000.0f;
  std::vector<std::int64_t> ids = {5, 17, 3, 399, 200, 0, 42, 43, 44, 45, 101, 300};
  for (const Dataset* p : std::vector<const Dataset*>{&d, &big}) {
    const Normalization nrm = compute_normalization(*p, ids);
    std::vector<double> out(ids.size() * 9);
    gather(*p, nrm, ids.data(), ids.size(), out.data());
    expect_standardized(out);
  }
}

TEST(Normalization, ConstantDataAndErrors) {
  Dataset d;
  d.source = "const";
  d.n = 3;
  d.shape = {2};
  d.u8.assign(6, 51);
  d.labels.assign(3, 0);
  d.num_classes = 1;
  const std::vector<std::int64_t> ids = {0, 1, 2};
  const Normalization nrm = compute_normalization(d, ids);
  std::vector<float> out(6);
  gather(d, nrm, ids.data(), 3, out.data());
  for (float v : out) EXPECT_NEAR(v, 0.0f, 1e-6f);

  EXPECT_THROW(compute_normalization(d, {}), sama::Error);
  EXPECT_THROW(compute_normalization(d, {3}), sama::Error);
  const std::int64_t bad[] = {0, -1};
  EXPECT_THROW(gather(d, nrm, bad, 2, out.data()), sama::Error);
  Dataset broken = d;
  broken.u8.pop_back();
  EXPECT_THROW(compute_normalization(broken, ids), sama::Error);
}

}  // namespace
