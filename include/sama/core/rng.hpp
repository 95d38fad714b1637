#pragma once
// A small, explicit-state random number generator (xoshiro256**), seeded through splitmix64.
// All randomness in sama is drawn from instances of this class keyed by (seed, stream), so runs are
// reproducible and the state can be checkpointed: there is no hidden global generator.
#include <array>
#include <cmath>
#include <cstdint>

namespace sama {

inline std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Mix a seed with stream identifiers into one 64-bit key.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  std::uint64_t x = seed ^ 0x51ed270b27d1c3a5ULL;
  std::uint64_t h = splitmix64(x);
  x = h ^ (a * 0xd6e8feb86659fd93ULL);
  h = splitmix64(x);
  x = h ^ (b * 0xa0761d6478bd642fULL);
  return splitmix64(x);
}

/// Well-known stream numbers, so that independent uses of one seed never share a sequence.
enum class Stream : std::uint64_t {
  init = 1,          // parameter initialisation
  noise = 2,         // label noise
  meta_split = 3,    // clean meta-set selection
  sampler = 4,       // base batch permutation (keyed further by epoch)
  meta_sampler = 5,  // meta batch permutation
  synthetic = 6,     // synthetic data set
  meta_init = 7,     // Meta-Weight-Net initialisation
  augment = 8,       // training-batch augmentation (keyed further by epoch and sample id)
};

class Rng {
 public:
  Rng() : Rng(0) {}
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0, std::uint64_t sub = 0) {
    std::uint64_t x = mix_seed(seed, stream, sub);
    for (auto& s : s_) s = splitmix64(x);
  }
  Rng(std::uint64_t seed, Stream stream, std::uint64_t sub = 0)
      : Rng(seed, static_cast<std::uint64_t>(stream), sub) {}

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n), unbiased (Lemire's method); n > 0.
  std::uint64_t below(std::uint64_t n) {
    std::uint64_t x = next();
    __uint128_t m = static_cast<__uint128_t>(x) * n;
    std::uint64_t l = static_cast<std::uint64_t>(m);
    if (l < n) {
      const std::uint64_t t = (0 - n) % n;
      while (l < t) {
        x = next();
        m = static_cast<__uint128_t>(x) * n;
        l = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }
  /// Standard normal (Box-Muller, no cached spare: the state is just s_).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Fisher-Yates shuffle of a random-access range.
  template <class It>
  void shuffle(It first, It last) {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      const std::uint64_t j = below(i);
      std::swap(first[i - 1], first[j]);
    }
  }

  const std::array<std::uint64_t, 4>& state() const { return s_; }
  void set_state(const std::array<std::uint64_t, 4>& s) { s_ = s; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

}  // namespace sama
