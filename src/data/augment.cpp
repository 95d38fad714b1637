#include "sama/data/augment.hpp"

#include "sama/core/rng.hpp"

#include <vector>

namespace sama::data {

CropFlipDraw crop_flip_draw(std::uint64_t seed, long epoch, std::int64_t id, std::size_t padding) {
  Rng rng(seed, Stream::augment, mix_seed(static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(id)));
  CropFlipDraw d;
  d.dy = static_cast<std::size_t>(rng.below(2 * padding + 1));
  d.dx = static_cast<std::size_t>(rng.below(2 * padding + 1));
  d.flip = rng.below(2) == 1;
  return d;
}

namespace {
template <class T>
void crop_flip_impl(T* x, std::size_t count, const ImageShape& s, const CropFlip& opt, std::uint64_t seed, long epoch,
                    const std::int64_t* ids) {
  const std::size_t plane = s.h * s.w, features = s.c * plane;
  const long p = static_cast<long>(opt.padding);
  std::vector<T> src(features);
  for (std::size_t n = 0; n < count; ++n) {
    const CropFlipDraw d = crop_flip_draw(seed, epoch, ids[n], opt.padding);
    T* img = x + n * features;
    std::copy(img, img + features, src.begin());
    for (std::size_t c = 0; c < s.c; ++c)
      for (std::size_t i = 0; i < s.h; ++i)
        for (std::size_t j = 0; j < s.w; ++j) {
          const std::size_t jj = d.flip ? s.w - 1 - j : j;
          const long si = static_cast<long>(i) + static_cast<long>(d.dy) - p;
          const long sj = static_cast<long>(jj) + static_cast<long>(d.dx) - p;
          const bool inside = si >= 0 && sj >= 0 && si < static_cast<long>(s.h) && sj < static_cast<long>(s.w);
          img[c * plane + i * s.w + j] =
              inside ? src[c * plane + static_cast<std::size_t>(si) * s.w + static_cast<std::size_t>(sj)]
                     : static_cast<T>(opt.fill);
        }
  }
}
}  // namespace

void crop_flip(float* x, std::size_t count, const ImageShape& shape, const CropFlip& opt, std::uint64_t seed,
               long epoch, const std::int64_t* ids) {
  crop_flip_impl(x, count, shape, opt, seed, epoch, ids);
}
void crop_flip(double* x, std::size_t count, const ImageShape& shape, const CropFlip& opt, std::uint64_t seed,
               long epoch, const std::int64_t* ids) {
  crop_flip_impl(x, count, shape, opt, seed, epoch, ids);
}

}  // namespace sama::data
