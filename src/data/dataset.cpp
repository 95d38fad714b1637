// Dataset accessors, normalisation statistics and the batch gather (the hot path of every step).
#include "sama/data/dataset.hpp"

#include "sama/core/error.hpp"

#include <array>
#include <cmath>
#include <cstdint>

namespace sama::data {

std::size_t Dataset::features() const {
  if (shape.empty()) return 0;  // a default-constructed (empty) data set
  std::size_t f = 1;
  for (std::size_t s : shape) f *= s;
  return f;
}

float Dataset::raw(std::size_t i, std::size_t j) const {
  const std::size_t k = i * features() + j;
  return is_u8() ? static_cast<float>(u8[k]) : f32[k];
}

namespace {

/// Checks that the value array matches n * features (a hand-built Dataset may not).
std::size_t checked_features(const Dataset& d, const char* what) {
  const std::size_t f = d.features();
  const std::size_t have = d.is_u8() ? d.u8.size() : d.f32.size();
  if (f == 0 || have != d.n * f)
    fail("{}: data set '{}' is inconsistent: n = {}, features = {}, but it holds {} values", what, d.source,
         d.n, f, have);
  return f;
}

void check_id(const Dataset& d, std::int64_t id, std::size_t k, const char* what) {
  if (id < 0 || static_cast<std::uint64_t>(id) >= d.n)
    fail("{}: sample id {} (position {}) is out of range for data set '{}' with {} samples", what, id, k,
         d.source, d.n);
}

template <class T>
void gather_impl(const Dataset& d, const Normalization& norm, const std::int64_t* ids, std::size_t count,
                 T* out) {
  if (count == 0) return;
  const std::size_t f = checked_features(d, "gather");
  const T s = static_cast<T>(norm.scale);
  const T b = static_cast<T>(norm.shift);
  if (d.is_u8()) {
    const std::uint8_t* base = d.u8.data();
    for (std::size_t k = 0; k < count; ++k) {
      check_id(d, ids[k], k, "gather");
      const std::uint8_t* __restrict src = base + static_cast<std::size_t>(ids[k]) * f;
      T* __restrict dst = out + k * f;
      for (std::size_t j = 0; j < f; ++j) dst[j] = static_cast<T>(src[j]) * s + b;
    }
  } else {
    const float* base = d.f32.data();
    for (std::size_t k = 0; k < count; ++k) {
      check_id(d, ids[k], k, "gather");
      const float* __restrict src = base + static_cast<std::size_t>(ids[k]) * f;
      T* __restrict dst = out + k * f;
      for (std::size_t j = 0; j < f; ++j) dst[j] = static_cast<T>(src[j]) * s + b;
    }
  }
}

}  // namespace

Normalization compute_normalization(const Dataset& d, const std::vector<std::int64_t>& ids) {
  const std::size_t f = checked_features(d, "normalization");
  if (ids.empty()) fail("normalization: no samples given for data set '{}'", d.source);
  for (std::size_t k = 0; k < ids.size(); ++k) check_id(d, ids[k], k, "normalization");
  const double count = static_cast<double>(ids.size()) * static_cast<double>(f);

  double mean = 0.0, var = 0.0;
  if (d.is_u8()) {
    // Exact: a histogram of byte values, then the moments of raw/255.
    std::array<std::uint64_t, 256> hist{};
    for (std::int64_t id : ids) {
      const std::uint8_t* src = d.u8.data() + static_cast<std::size_t>(id) * f;
      for (std::size_t j = 0; j < f; ++j) ++hist[src[j]];
    }
    double sum = 0.0;
    for (int v = 0; v < 256; ++v) sum += static_cast<double>(hist[v]) * (v / 255.0);
    mean = sum / count;
    double sq = 0.0;
    for (int v = 0; v < 256; ++v) {
      const double dv = v / 255.0 - mean;
      sq += static_cast<double>(hist[v]) * dv * dv;
    }
    var = sq / count;
  } else {
    // Two passes in double (no cancellation when the mean is large compared with the spread).
    double sum = 0.0;
    for (std::int64_t id : ids) {
      const float* src = d.f32.data() + static_cast<std::size_t>(id) * f;
      double row = 0.0;
      for (std::size_t j = 0; j < f; ++j) row += src[j];
      sum += row;
    }
    mean = sum / count;
    double sq = 0.0;
    for (std::int64_t id : ids) {
      const float* src = d.f32.data() + static_cast<std::size_t>(id) * f;
      double row = 0.0;
      for (std::size_t j = 0; j < f; ++j) {
        const double dv = src[j] - mean;
        row += dv * dv;
      }
      sq += row;
    }
    var = sq / count;
  }
  if (!std::isfinite(mean) || !std::isfinite(var))
    fail("normalization: data set '{}' has non-finite values (mean {}, variance {})", d.source, mean, var);

  const double unit = d.is_u8() ? 1.0 / 255.0 : 1.0;  // raw -> the value whose moments were taken
  const double sd = std::sqrt(var);
  Normalization n;
  if (sd > 1e-12) {
    n.scale = static_cast<float>(unit / sd);
    n.shift = static_cast<float>(-mean / sd);
  } else {  // constant data: only centre it
    n.scale = static_cast<float>(unit);
    n.shift = static_cast<float>(-mean);
  }
  return n;
}

void gather(const Dataset& d, const Normalization& norm, const std::int64_t* ids, std::size_t count,
            float* out) {
  gather_impl<float>(d, norm, ids, count, out);
}
void gather(const Dataset& d, const Normalization& norm, const std::int64_t* ids, std::size_t count,
            double* out) {
  gather_impl<double>(d, norm, ids, count, out);
}

}  // namespace sama::data
