// The Kokkos counters (tool callbacks) count what they claim, and a training step allocates no View:
// after the first step, every step of the real Trainer makes 0 View allocations while it launches
// kernels (which shows the counters are live during the run).
#include "sama/app/deck.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/kokkos_counters.hpp"
#include "sama/core/types.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <string>
#include <vector>

namespace sama::test_counters {
// One kernel of each kind (a free function: nvcc's extended lambdas may not sit in a test's private body).
float launch_one_of_each(const Vec<float>& v) {
  Kokkos::parallel_for("test::for", Range(0, 16), KOKKOS_LAMBDA(int i) { v(i) = float(i); });
  float sum = 0;
  Kokkos::parallel_reduce("test::reduce", Range(0, 16), KOKKOS_LAMBDA(int i, float& s) { s += v(i); }, sum);
  Kokkos::parallel_scan("test::scan", Range(0, 16), KOKKOS_LAMBDA(int i, float& partial, bool final) {
    partial += 1.0f;
    if (final) v(i) = partial;
  });
  Kokkos::fence();
  return sum;
}
}  // namespace sama::test_counters

namespace {
using namespace sama;

constexpr bool kDeviceSpace = !std::is_same_v<MemSpace, HostSpace>;

TEST(KokkosCounters, SpaceNames) {
  EXPECT_TRUE(kokkos_counters::is_host_space("Host"));
  EXPECT_TRUE(kokkos_counters::is_host_space("CudaHostPinned"));
  EXPECT_TRUE(kokkos_counters::is_host_space("HIPHostPinned"));
  EXPECT_FALSE(kokkos_counters::is_host_space("Cuda"));
  EXPECT_FALSE(kokkos_counters::is_host_space("CudaUVM"));
  EXPECT_FALSE(kokkos_counters::is_host_space("HIP"));
  EXPECT_FALSE(kokkos_counters::is_host_space(nullptr));
}

TEST(KokkosCounters, CountAllocationsCopiesKernelsAndRegions) {
  kokkos_counters::install();
  kokkos_counters::install();  // idempotent
  ASSERT_TRUE(kokkos_counters::installed());
  const KokkosCounts start = kokkos_counters::read();

  KokkosCounts d;
  {
    Kokkos::View<float*, HostSpace> h("test::host", 16);
    d = kokkos_counters::read() - start;
    EXPECT_EQ(d.host_allocations, 1);
    EXPECT_EQ(d.device_allocations, 0);
    EXPECT_EQ(d.host_deallocations, 0);
  }
  d = kokkos_counters::read() - start;
  EXPECT_EQ(d.host_deallocations, 1);

  KokkosCounts before = kokkos_counters::read();
  Vec<float> v("test::vec", 16);  // in the execution space's memory
  d = kokkos_counters::read() - before;
  EXPECT_EQ(d.host_allocations, kDeviceSpace ? 0 : 1);
  EXPECT_EQ(d.device_allocations, kDeviceSpace ? 1 : 0);
  EXPECT_EQ(d.allocations(), 1);

  // A host mirror: an allocation and a copy device -> host (a host copy where the View is on the
  // host); a mirror view of host memory aliases it: no allocation, and a copy that moves nothing.
  before = kokkos_counters::read();
  auto mirror = Kokkos::create_mirror(v);
  Kokkos::deep_copy(mirror, v);
  d = kokkos_counters::read() - before;
  EXPECT_EQ(d.host_allocations, 1);
  EXPECT_EQ(d.copies_device_to_host, kDeviceSpace ? 1 : 0);
  EXPECT_EQ(d.copies_host_to_host, kDeviceSpace ? 0 : 1);
  EXPECT_EQ(d.copies(), 1);
  before = kokkos_counters::read();
  Kokkos::deep_copy(v, mirror);
  d = kokkos_counters::read() - before;
  EXPECT_EQ(d.copies_host_to_device, kDeviceSpace ? 1 : 0);
  EXPECT_EQ(d.transfers(), kDeviceSpace ? 1 : 0);
  before = kokkos_counters::read();
  auto alias = Kokkos::create_mirror_view(mirror);
  Kokkos::deep_copy(alias, mirror);
  d = kokkos_counters::read() - before;
  EXPECT_EQ(d.allocations(), 0);
  EXPECT_EQ(d.copies(), 0);
  EXPECT_EQ(d.copies_aliased, 1);

  // deep_copy(view, scalar) is a fill, not a transfer.
  before = kokkos_counters::read();
  Kokkos::deep_copy(v, 2.0f);
  d = kokkos_counters::read() - before;
  EXPECT_EQ(d.fills, 1);
  EXPECT_EQ(d.copies(), 0);

  // Kernels, each kind, and a region (after a first launch: a back end may allocate its reduction
  // scratch memory on first use).
  test_counters::launch_one_of_each(v);
  before = kokkos_counters::read();
  const float sum = test_counters::launch_one_of_each(v);
  { ScopedRegion region("sama::test_region"); }
  d = kokkos_counters::read() - before;
  EXPECT_EQ(sum, 120.0f);
  EXPECT_EQ(d.parallel_for, 1);
  EXPECT_EQ(d.parallel_reduce, 1);
  EXPECT_EQ(d.parallel_scan, 1);
  EXPECT_EQ(d.kernels(), 3);
  EXPECT_EQ(d.regions, 1);
  EXPECT_EQ(d.allocations(), 0);

  // Arithmetic on counts.
  KokkosCounts a;
  a.host_allocations = 2;
  a.parallel_for = 5;
  KokkosCounts b = a + a;
  EXPECT_EQ(b.host_allocations, 4);
  EXPECT_EQ(b - a, a);
  EXPECT_NE(b, a);
}

/// A small synthetic run of `method` through the real Trainer, with the counters on.
app::RunResult counted_run(const std::string& method, long steps, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"data.source=synthetic",      "data.synthetic_features=24", "data.synthetic_classes=4",
                                   "data.synthetic_train=640",   "data.synthetic_test=96",     "data.meta_size=128",
                                   "optimizer.lr=1e-3",          "train.batch_size=32",        "meta.batch_size=32",
                                   "train.eval_batch=64",        "train.log_interval=3",       "train.eval_interval=3",
                                   "meta.method=" + method};
  bool optimizer_given = false;
  for (const auto& e : extra) {
    sets.push_back(e);
    optimizer_given = optimizer_given || e.rfind("optimizer.name=", 0) == 0;
  }
  if (!optimizer_given) sets.push_back("optimizer.name=adam");
  app::Deck deck = app::parse_deck("", "test_kokkos_counters", sets);
  deck.model.hidden = {16, 8};
  deck.train.steps = steps;
  comm::Communicator comm;
  app::RunOptions opt;
  opt.count_kokkos = true;
  return app::train(deck, opt, comm);
}

std::string describe(const KokkosCounts& c) {
  return fmt::format("allocations host {} device {}, copies h2d {} d2h {} h2h {} d2d {}, kernels {}, regions {}",
                     c.host_allocations, c.device_allocations, c.copies_host_to_device, c.copies_device_to_host,
                     c.copies_host_to_host, c.copies_device_to_device, c.kernels(), c.regions);
}

// On a device back end some steps still allocate host mirrors (the Meta-Weight-Net's and LAMB's
// host reductions, unrolled's λ-gradient): there the counts are checked to be live but not zero.
void expect_no_allocation_after_first_step(const app::RunResult& r, long steps) {
  ASSERT_EQ(static_cast<long>(r.kokkos_steps.size()), steps);
  for (long s = 0; s < steps; ++s) {
    const KokkosCounts& c = r.kokkos_steps[static_cast<std::size_t>(s)];
    SCOPED_TRACE(fmt::format("step {}: {}", s, describe(c)));
    EXPECT_GT(c.kernels(), 0);  // the counters are live during the run
    EXPECT_GE(c.regions, 6);    // step, gather, forward, backward, reduction, control, optimizer, ...
    // After the first step no View is allocated (the trainer allocates in its setup; in fact the
    // first step allocates none either on the host back ends).
    if (s >= 1 && !kDeviceSpace) EXPECT_EQ(c.allocations(), 0);
  }
}

TEST(KokkosCounters, SamaStepAllocatesNoView) {
  const long steps = 7;  // logging and evaluation after steps 3 and 6 (counted apart from the steps)
  const app::RunResult r = counted_run("sama", steps);
  EXPECT_EQ(r.meta_steps, steps);  // a meta step in every step
  expect_no_allocation_after_first_step(r, steps);
  // The step's data go host -> device only where there is a device; on the host nothing is transferred.
  for (std::size_t s = 1; s < r.kokkos_steps.size(); ++s)
    if (!kDeviceSpace) EXPECT_EQ(r.kokkos_steps[s].transfers(), 0) << "step " << s;
  const app::StepCounts m = app::per_step_counts(r, 1);
  EXPECT_EQ(m.steps, steps - 1);
  EXPECT_EQ(m.max_allocations, 0);
  EXPECT_GT(m.kernels, 0);
}

TEST(KokkosCounters, StepsOfOtherMethodsAllocateNoView) {
  for (const std::string method : {"none", "finite_difference", "sama_jvp", "neumann", "cg", "unrolled"}) {
    SCOPED_TRACE(method);
    const bool has_k = method == "neumann" || method == "cg" || method == "unrolled";
    expect_no_allocation_after_first_step(counted_run(method, 5, has_k ? std::vector<std::string>{"meta.k=2"}
                                                                       : std::vector<std::string>{}),
                                          5);
  }
}

TEST(KokkosCounters, StepsWithOtherWeightNetsOptimizersAndOptionsAllocateNoView) {
  const long steps = 4;
  const std::vector<std::vector<std::string>> variants = {
      {"meta.method=sama", "meta.weight_net=sigmoid"},    {"meta.method=sama", "meta.weight_net=monotone"},
      {"meta.method=sama", "optimizer.name=sgd"},         {"meta.method=sama", "optimizer.name=lamb"},
      {"meta.method=sama", "optimizer.name=lion"},        {"meta.method=sama", "optimizer.name=rmsprop"},
      {"meta.method=sama", "optimizer.name=adagrad"},     {"meta.method=sama", "scores.enabled=false"},
      {"meta.method=cg", "meta.hvp=finite_difference"},   {"meta.method=unrolled", "optimizer.name=sgd"},
      {"meta.method=sama", "meta.diagnose_every=2", "meta.diagnose_reference=cg"}};
  for (const auto& v : variants) {
    SCOPED_TRACE(fmt::format("{}", fmt::join(v, " ")));
    const std::string method = v[0].substr(std::string("meta.method=").size());
    expect_no_allocation_after_first_step(counted_run(method, steps, {v.begin() + 1, v.end()}), steps);
  }
}

}  // namespace
