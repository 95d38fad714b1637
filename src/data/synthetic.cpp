// A seeded synthetic classification set: Gaussian clusters with unit noise.
//
// Class means: mean[c][j] = N(0,1) * separation * D(C) / sqrt(2 * features), drawn once from
// Rng(seed, Stream::synthetic, 0), so train and test (different `stream`) share them. The expected
// distance between two means is then separation * D(C), with D(C) = 2 * Phi^-1(1 - 0.08 / (C - 1)):
// at separation 1 the Bayes-optimal classifier errs on roughly 6-8% of the samples whatever the
// number of classes (less with fewer features, where the random means spread more), so a trained
// MLP lands near 85-93%, not 100%. Larger separation is easier.
//
// Samples: labels are balanced (i mod C) and shuffled, then x = mean[label] + N(0, I), all drawn from
// Rng(seed, Stream::synthetic, stream + 1). Stored as float32, shape {features}.
#include "sama/core/error.hpp"
#include "sama/core/rng.hpp"
#include "sama/data/dataset.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace sama::data {

namespace {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

/// Phi^-1(p) for p in (0.5, 1), by bisection (called once per data set).
double normal_quantile(double p) {
  double lo = 0.0, hi = 40.0;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (normal_cdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

Dataset make_synthetic(std::size_t n, std::size_t features, int classes, double separation,
                       std::uint64_t seed, std::uint64_t stream) {
  SAMA_REQUIRE(n > 0, "synthetic data set: n must be positive (got 0)");
  SAMA_REQUIRE(features > 0, "synthetic data set: features must be positive (got 0)");
  SAMA_REQUIRE(classes >= 2 && classes <= 65536, "synthetic data set: classes must be in [2, 65536] (got {})",
               classes);
  SAMA_REQUIRE(std::isfinite(separation) && separation >= 0.0,
               "synthetic data set: separation must be finite and >= 0 (got {})", separation);
  constexpr std::size_t kMaxValues = std::size_t(1) << 30;  // 4 GiB of float32
  SAMA_REQUIRE(features <= kMaxValues && n <= kMaxValues / features,
               "synthetic data set: n * features = {} * {} is too large (at most {} values)", n, features,
               kMaxValues);

  const std::size_t C = static_cast<std::size_t>(classes);
  const double target_distance = 2.0 * normal_quantile(1.0 - 0.08 / static_cast<double>(classes - 1));
  const double mean_scale = separation * target_distance / std::sqrt(2.0 * static_cast<double>(features));

  std::vector<double> means(C * features);
  {
    Rng rng(seed, Stream::synthetic, 0);
    for (auto& m : means) m = rng.normal() * mean_scale;
  }

  Dataset d;
  d.source = fmt::format("synthetic(n={}, features={}, classes={}, separation={}, seed={}, stream={})", n,
                         features, classes, separation, seed, stream);
  d.n = n;
  d.shape = {features};
  d.num_classes = classes;
  d.labels.resize(n);
  d.f32.resize(n * features);

  Rng rng(seed, Stream::synthetic, stream + 1);
  for (std::size_t i = 0; i < n; ++i) d.labels[i] = static_cast<std::int32_t>(i % C);
  rng.shuffle(d.labels.begin(), d.labels.end());
  for (std::size_t i = 0; i < n; ++i) {
    const double* mu = means.data() + static_cast<std::size_t>(d.labels[i]) * features;
    float* x = d.f32.data() + i * features;
    for (std::size_t j = 0; j < features; ++j) x[j] = static_cast<float>(mu[j] + rng.normal());
  }
  // With n < classes some classes are absent, but num_classes stays the generator's class count.
  return d;
}

}  // namespace sama::data
