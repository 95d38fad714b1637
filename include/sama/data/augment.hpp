#pragma once
// Image augmentation of training batches: a random crop after zero padding, and a horizontal flip.
// Each sample's draw comes from (seed, epoch, sample id) alone, so the augmented batch does not depend
// on the rank count or on where a run was resumed. Never applied to meta batches or evaluation.
#include <cstdint>
#include <cstddef>

namespace sama::data {

struct ImageShape {
  std::size_t c = 1, h = 1, w = 1;
};

struct CropFlip {
  std::size_t padding = 2;  // zero padding on each side before cropping back to H × W
  float fill = 0.0f;        // the value of a padded pixel (a raw 0 after normalisation)
};

/// The offsets (dy, dx in [0, 2·padding]) and flip a sample gets in an epoch.
struct CropFlipDraw {
  std::size_t dy = 0, dx = 0;
  bool flip = false;
};
CropFlipDraw crop_flip_draw(std::uint64_t seed, long epoch, std::int64_t id, std::size_t padding);

/// In place on x[count][C·H·W] (normalised samples ids[0..count)): out(c, i, j) = padded(c, i + dy,
/// j' + dx) with j' = W − 1 − j when flipped, where padded is the image with `padding` fill pixels on
/// every side.
void crop_flip(float* x, std::size_t count, const ImageShape& shape, const CropFlip& opt, std::uint64_t seed,
               long epoch, const std::int64_t* ids);
void crop_flip(double* x, std::size_t count, const ImageShape& shape, const CropFlip& opt, std::uint64_t seed,
               long epoch, const std::int64_t* ids);

}  // namespace sama::data
