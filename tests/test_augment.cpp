// Crop-and-flip augmentation: keyed by (seed, epoch, sample id) only, and each output is the padded
// image shifted and mirrored as drawn.
#include "sama/data/augment.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <vector>

namespace {

using namespace sama::data;

std::vector<float> ramp(std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return v;
}

TEST(CropFlip, EachSampleDependsOnlyOnSeedEpochAndId) {
  const ImageShape s{2, 5, 7};
  const std::size_t f = s.c * s.h * s.w;
  CropFlip opt;
  opt.padding = 2;
  opt.fill = -1;
  // Sample 42 alone, and at position 2 of a batch of three: the same output.
  std::vector<std::int64_t> one{42}, three{7, 9, 42};
  auto a = ramp(f, 0);
  crop_flip(a.data(), 1, s, opt, 5, 3, one.data());
  std::vector<float> b;
  for (int k = 0; k < 3; ++k) {
    auto r = ramp(f, 0);
    b.insert(b.end(), r.begin(), r.end());
  }
  crop_flip(b.data(), 3, s, opt, 5, 3, three.data());
  EXPECT_EQ(a, std::vector<float>(b.begin() + 2 * static_cast<long>(f), b.end()));
  // Another epoch or seed draws anew (over many ids, some draw differs).
  int differ_epoch = 0, differ_seed = 0;
  for (std::int64_t id = 0; id < 50; ++id) {
    const auto d0 = crop_flip_draw(5, 3, id, 2), d1 = crop_flip_draw(5, 4, id, 2), d2 = crop_flip_draw(6, 3, id, 2);
    differ_epoch += d0.dx != d1.dx || d0.dy != d1.dy || d0.flip != d1.flip;
    differ_seed += d0.dx != d2.dx || d0.dy != d2.dy || d0.flip != d2.flip;
  }
  EXPECT_GT(differ_epoch, 30);
  EXPECT_GT(differ_seed, 30);
}

TEST(CropFlip, OutputIsThePaddedImageShiftedAndMirrored) {
  const ImageShape s{3, 6, 5};
  const std::size_t plane = s.h * s.w, f = s.c * plane;
  CropFlip opt;
  opt.padding = 2;
  opt.fill = -7;
  std::set<std::size_t> seen_dx, seen_dy;
  int flips = 0;
  for (std::int64_t id = 0; id < 200; ++id) {
    const auto src = ramp(f, 100);
    auto x = src;
    crop_flip(x.data(), 1, s, opt, 11, 0, &id);
    const auto d = crop_flip_draw(11, 0, id, opt.padding);
    ASSERT_LE(d.dx, 4u);
    ASSERT_LE(d.dy, 4u);
    seen_dx.insert(d.dx);
    seen_dy.insert(d.dy);
    flips += d.flip;
    // Every output pixel is the fill or the source pixel the shift and mirror name; pixels move
    // rigidly: neighbours in a row stay neighbours (mirrored when flipped).
    for (std::size_t c = 0; c < s.c; ++c)
      for (std::size_t i = 0; i < s.h; ++i)
        for (std::size_t j = 0; j < s.w; ++j) {
          const float v = x[c * plane + i * s.w + j];
          const long si = static_cast<long>(i + d.dy) - 2;
          const long sj = static_cast<long>(d.flip ? s.w - 1 - j : j) + static_cast<long>(d.dx) - 2;
          if (si < 0 || sj < 0 || si >= static_cast<long>(s.h) || sj >= static_cast<long>(s.w)) {
            EXPECT_EQ(v, -7.0f);
          } else {
            EXPECT_EQ(v, src[c * plane + static_cast<std::size_t>(si) * s.w + static_cast<std::size_t>(sj)]);
          }
        }
    // The number of fill pixels follows from the shift alone.
    const std::size_t rows = s.h - static_cast<std::size_t>(std::abs(static_cast<long>(d.dy) - 2));
    const std::size_t cols = s.w - static_cast<std::size_t>(std::abs(static_cast<long>(d.dx) - 2));
    std::size_t fills = 0;
    for (float v : x) fills += v == -7.0f;
    EXPECT_EQ(fills, s.c * (plane - rows * cols));
  }
  EXPECT_EQ(seen_dx.size(), 5u);
  EXPECT_EQ(seen_dy.size(), 5u);
  EXPECT_GT(flips, 70);
  EXPECT_LT(flips, 130);
}

TEST(CropFlip, NoPaddingIsTheImageOrItsMirror) {
  const ImageShape s{1, 3, 4};
  CropFlip opt;
  opt.padding = 0;
  for (std::int64_t id = 0; id < 20; ++id) {
    std::vector<double> x{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    crop_flip(x.data(), 1, s, opt, 1, 0, &id);
    const bool flip = crop_flip_draw(1, 0, id, 0).flip;
    const std::vector<double> expect = flip ? std::vector<double>{3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8}
                                            : std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    EXPECT_EQ(x, expect) << id;
  }
}

}  // namespace
