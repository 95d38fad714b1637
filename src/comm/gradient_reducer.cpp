#include "sama/comm/gradient_reducer.hpp"

#include "sama/core/error.hpp"
#include "sama/core/timer.hpp"
#include "sama/core/types.hpp"

#include <algorithm>
#include <climits>

namespace sama::comm {

double GradientReducer::hidden_fraction() const {
  const auto& s = stats();
  if (s.steps == 0 || s.reference_seconds <= 0) return 0.0;
  const double total = s.reference_seconds * static_cast<double>(s.steps);
  return std::clamp(1.0 - s.exposed_seconds / total, 0.0, 1.0);
}

std::vector<std::pair<std::size_t, std::size_t>> make_buckets(
    const std::vector<std::pair<std::size_t, std::size_t>>& layers, double bucket_bytes, std::size_t elem_size) {
  std::vector<std::pair<std::size_t, std::size_t>> buckets;
  std::size_t lo = 0, hi = 0;
  bool open = false;
  for (const auto& [offset, count] : layers) {
    if (count == 0) continue;
    if (open && offset + count != lo)
      fail("gradient buckets: layers must be contiguous in completion order (layer at {} does not end at {})", offset,
           lo);
    if (!open) {
      hi = offset + count;
      open = true;
    }
    lo = offset;
    if (static_cast<double>((hi - lo) * elem_size) >= bucket_bytes) {
      buckets.emplace_back(lo, hi);
      open = false;
    }
  }
  if (open) buckets.emplace_back(lo, hi);
  return buckets;
}

BucketedReducer::BucketedReducer(std::size_t size, const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                                 double bucket_bytes, std::size_t elem_size)
    : buckets_(make_buckets(layers, bucket_bytes, elem_size)) {
  std::size_t covered = 0;
  for (const auto& [lo, hi] : buckets_) covered += hi - lo;
  SAMA_REQUIRE(covered == size, "gradient buckets cover {} of {} elements", covered, size);
  pending_.assign(buckets_.size(), 0);
}

void BucketedReducer::begin() {
  next_ = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].second - buckets_[b].first;
}

void BucketedReducer::ready(std::size_t offset, std::size_t count) {
  // Layers arrive in bucket order; credit this one to the bucket holding it.
  std::size_t b = next_;
  while (b < buckets_.size() && !(offset >= buckets_[b].first && offset < buckets_[b].second)) ++b;
  SAMA_REQUIRE(b < buckets_.size(), "gradient reducer: layer at offset {} is in no bucket", offset);
  pending_[b] -= std::min(pending_[b], count);
  while (next_ < buckets_.size() && pending_[next_] == 0) launch_next();
  progress();
}

void BucketedReducer::finish() {
  while (next_ < buckets_.size()) launch_next();  // layers without a ready() call
  Timer timer;
  wait_all();
  stats_.exposed_seconds += timer.seconds();
  ++stats_.steps;
}

void BucketedReducer::launch_next() {
  const auto [lo, hi] = buckets_[next_];
  launch(next_++, lo, hi);
  ++stats_.buckets_launched;
}

namespace {

class MpiReducer final : public BucketedReducer {
 public:
  using DeviceVec = Kokkos::View<float*, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  MpiReducer(const Communicator& comm, float* data, std::size_t size,
             const std::vector<std::pair<std::size_t, std::size_t>>& layers, double bucket_bytes, MpiBuffer mode)
      : BucketedReducer(size, layers, bucket_bytes, sizeof(float)), comm_(comm), data_(data), size_(size), mode_(mode) {
    for (const auto& [lo, hi] : buckets())
      SAMA_REQUIRE(hi - lo <= static_cast<std::size_t>(INT_MAX), "gradient bucket of {} elements is too large for MPI",
                   hi - lo);
    requests_.assign(buckets().size(), MPI_REQUEST_NULL);
    if (mode_ == MpiBuffer::staged) staging_ = HostVec<float>(Kokkos::view_alloc(Kokkos::WithoutInitializing,
                                                                          "sama::MpiReducer::staging"), size_);
    // Reference: a blocking all-reduce of the whole buffer (on a scratch copy in the memory MPI is
    // given in this mode), median of 5.
    Kokkos::fence();
    std::vector<float> host_scratch;
    Kokkos::View<float*, MemSpace> device_scratch;
    float* scratch = nullptr;
    if (mode_ == MpiBuffer::host) {
      host_scratch.assign(data_, data_ + size);
      scratch = host_scratch.data();
    } else if (mode_ == MpiBuffer::staged) {
      Kokkos::deep_copy(staging_, DeviceVec(data_, size_));
      scratch = host_data(staging_);
    } else {
      device_scratch = Kokkos::View<float*, MemSpace>("sama::MpiReducer::reference", size_);
      Kokkos::deep_copy(device_scratch, DeviceVec(data_, size_));
      Kokkos::fence();
      scratch = device_scratch.data();
    }
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
      comm_.barrier();
      Timer timer;
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, scratch, static_cast<int>(size), MPI_FLOAT, MPI_SUM, comm_.get()),
                "MPI_Allreduce(reference)", comm_.get());
      t.push_back(timer.seconds());
    }
    std::sort(t.begin(), t.end());
    stats_.reference_seconds = comm_.allreduce_max(t[t.size() / 2]);
  }
  std::string backend() const override {
    return mode_ == MpiBuffer::host ? "mpi" : mode_ == MpiBuffer::staged ? "mpi (host-staged)" : "mpi (gpu-aware)";
  }

 private:
  void launch(std::size_t b, std::size_t lo, std::size_t hi) override {
    // The kernels that wrote this bucket may still be running (asynchronous back ends).
    Kokkos::fence();
    float* buf = data_ + lo;
    if (mode_ == MpiBuffer::staged) {
      auto host = Kokkos::subview(staging_, std::make_pair(lo, hi));
      Kokkos::deep_copy(host, DeviceVec(data_ + lo, hi - lo));
      buf = host_data(staging_) + lo;
    }
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf, static_cast<int>(hi - lo), MPI_FLOAT, MPI_SUM, comm_.get(),
                             &requests_[b]),
              "MPI_Iallreduce(gradient bucket)", comm_.get());
  }
  void progress() override {
    int done = 0;
    check_mpi(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall(gradient buckets)", comm_.get());
  }
  void wait_all() override {
    check_mpi(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall(gradient buckets)", comm_.get());
    // The buckets tile the buffer: one copy brings the whole sum back to the device.
    if (mode_ == MpiBuffer::staged) Kokkos::deep_copy(DeviceVec(data_, size_), staging_);
  }

  const Communicator& comm_;
  float* data_;
  std::size_t size_;
  MpiBuffer mode_;
  HostVec<float> staging_;
  std::vector<MPI_Request> requests_;
};

}  // namespace

MpiBuffer default_mpi_buffer(bool gpu_aware_mpi) {
  if (Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible) return MpiBuffer::host;
  return gpu_aware_mpi ? MpiBuffer::gpu_aware : MpiBuffer::staged;
}

std::unique_ptr<GradientReducer> make_mpi_reducer(const Communicator& comm, float* data, std::size_t size,
                                                  const std::vector<std::pair<std::size_t, std::size_t>>& layers,
                                                  double bucket_bytes, MpiBuffer mode) {
  return std::make_unique<MpiReducer>(comm, data, size, layers, bucket_bytes, mode);
}

}  // namespace sama::comm
