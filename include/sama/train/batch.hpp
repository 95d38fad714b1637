#pragma once
// A batch of samples on the device, gathered (and normalised) from a host data set.
#include "sama/core/types.hpp"
#include "sama/data/dataset.hpp"

#include <cstdint>
#include <functional>
#include <vector>

namespace sama::training {

using real = float;

/// A batch of samples on the device, gathered (and normalised) from a host data set.
struct Batch {
  Batch(std::size_t capacity, std::size_t features)
      : x(make_mat<real>("sama::Batch::x", capacity, features)),
        y("sama::Batch::y", capacity),
        x_host(Kokkos::create_mirror_view(x)),
        y_host(Kokkos::create_mirror_view(y)) {}
  /// On the host, after gathering and before the upload: e.g. augmentation (x [count][features]).
  using HostTransform = std::function<void(real* x, const std::int64_t* ids, std::size_t count)>;
  void load(const data::Dataset& d, const data::Normalization& norm, const std::vector<std::int32_t>& labels,
            const std::int64_t* ids, std::size_t count, const HostTransform& transform = nullptr) {
    size = count;
    data::gather(d, norm, ids, count, host_data(x_host));
    if (transform) transform(host_data(x_host), ids, count);
    for (std::size_t i = 0; i < count; ++i) y_host(i) = labels[static_cast<std::size_t>(ids[i])];
    Kokkos::deep_copy(x, x_host);
    Kokkos::deep_copy(y, y_host);
  }
  MatU<const real> xs() const { return MatU<const real>(x.data(), size, x.extent(1)); }
  VecU<const int> ys() const { return VecU<const int>(y.data(), size); }
  Mat<real> x;
  Vec<int> y;
  Mat<real>::HostMirror x_host;
  Vec<int>::HostMirror y_host;
  std::size_t size = 0;
};

}  // namespace sama::training
