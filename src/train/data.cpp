// The run's data (data.hpp): read or made, checked, split, noised and normalised; and the memory check.
#include "sama/train/data.hpp"

#include "sama/core/error.hpp"
#include "sama/io/keep_mask.hpp"

#include <fmt/format.h>

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>

namespace sama::training {

long data_seed(const app::Deck& deck) { return deck.data.seed > 0 ? deck.data.seed : deck.train.seed; }

Data load_data(const app::Deck& deck) {
  Data d;
  const auto& c = deck.data;
  const auto seed = static_cast<std::uint64_t>(data_seed(deck));
  if (c.source == "fashion_mnist") {
    d.train = data::read_fashion_mnist(c.path, true);
    d.test = data::read_fashion_mnist(c.path, false);
  } else if (c.source == "hdf5") {
    // A corrupt file can crash libhdf5 itself: read each once in a child process first.
    data::probe_hdf5_in_child(c.train_file);
    d.train = data::read_hdf5(c.train_file);
    data::probe_hdf5_in_child(c.test_file);
    d.test = data::read_hdf5(c.test_file);
  } else {
    std::size_t f = static_cast<std::size_t>(c.synthetic_features);
    std::vector<std::size_t> shape;
    for (long s : c.synthetic_shape) shape.push_back(static_cast<std::size_t>(s));
    if (!shape.empty()) {
      f = 1;
      for (std::size_t s : shape) f *= s;
    }
    const int k = static_cast<int>(c.synthetic_classes);
    d.train = data::make_synthetic(static_cast<std::size_t>(c.synthetic_train), f, k, c.synthetic_separation, seed, 0);
    d.test = data::make_synthetic(static_cast<std::size_t>(c.synthetic_test), f, k, c.synthetic_separation, seed, 1);
    if (!shape.empty()) d.train.shape = d.test.shape = shape;  // the same values, seen as images
  }
  if (d.test.features() != d.train.features())
    fail("test data '{}' has {} features per sample, training data '{}' has {}", d.test.source, d.test.features(),
         d.train.source, d.train.features());
  // Classes are 0..C-1 with C = 1 + the largest training label; every class must have training
  // samples, and the test labels must be among them.
  const int classes = d.train.num_classes;
  std::vector<std::size_t> per_class(static_cast<std::size_t>(classes), 0);
  for (auto l : d.train.labels) ++per_class[static_cast<std::size_t>(l)];
  for (int k = 0; k < classes; ++k)
    if (per_class[static_cast<std::size_t>(k)] == 0)
      fail("training data '{}': class {} has no samples, but labels go up to {} (labels must be 0..C-1 with "
           "every class present)",
           d.train.source, k, classes - 1);
  for (std::size_t i = 0; i < d.test.labels.size(); ++i)
    if (d.test.labels[i] >= classes)
      fail("test data '{}': sample {} has label {}, not a class of the training data (0..{})", d.test.source, i,
           d.test.labels[i], classes - 1);
  d.test.num_classes = classes;
  try {
    d.split = data::split_meta(d.train.labels, classes, static_cast<std::size_t>(c.meta_size), seed);
  } catch (const Error& e) {
    fail("{}: data.meta_size = {} does not fit training data '{}': {}", deck.file, c.meta_size, d.train.source,
         e.what());
  }
  d.labels = data::apply_label_noise(d.train.labels, classes, d.split.train_ids, data::parse_noise_type(c.noise_type),
                                     c.noise_rate, seed);
  d.norm = data::compute_normalization(d.train, d.split.train_ids);
  // A keep mask (sama prune) must have been made for exactly this split and these observed labels.
  if (c.keep_mask.empty()) {
    d.kept = d.split.train_ids;
  } else {
    data::probe_hdf5_in_child(c.keep_mask, [](const std::string& p) { io::read_keep_mask(p); });  // a user file too
    d.kept = io::kept_ids(io::read_keep_mask(c.keep_mask), d.split.train_ids, d.labels.observed);
  }
  return d;
}

namespace {

/// Bytes of memory available to this process: MemAvailable, and the cgroup limit less its usage when
/// there is one (cgroup v2, else v1).
double available_bytes() {
  auto read_number = [](const char* path) -> double {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return -1;
    char buf[64] = {};
    const bool ok = std::fgets(buf, sizeof(buf), f) != nullptr;
    std::fclose(f);
    if (!ok || std::string(buf).rfind("max", 0) == 0) return -1;
    return std::strtod(buf, nullptr);
  };
  double avail = -1;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f))
      if (std::string(line).rfind("MemAvailable:", 0) == 0) avail = 1024.0 * std::strtod(line + 13, nullptr);
    std::fclose(f);
  }
  double limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    if (limit > 1e18) limit = -1;  // v1's "no limit"
  }
  if (limit > 0) {
    const double room = limit - std::max(used, 0.0);
    avail = avail < 0 ? room : std::min(avail, room);
  }
  return avail;
}

}  // namespace

double check_memory(const app::Deck& deck, const Data& data, const std::vector<std::size_t>& widths,
                    const ModelFootprint& footprint, int ranks_per_node, std::ostream* log,
                    const comm::Communicator& comm) {
  double params = footprint.params, units = 0;
  if (!widths.empty()) {
    params = 0;
    for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
      params += double(widths[i]) * double(widths[i + 1]) + double(widths[i + 1]);
      units += double(widths[i + 1]);
    }
  }
  const double f = sizeof(float);
  const std::string& m = deck.meta.method;
  const double opt_vectors = deck.optimizer.cfg.name == "sgd" ? 2 : 3;  // moments (+ the stored gradient D)
  // θ, its gradient, the optimizer's state; the meta step's v, w, θ backup and probe gradient; solver
  // vectors (neumann, cg); the unroll history (K parameter vectors and their batches).
  double vectors = 2 + opt_vectors + (m == "none" ? 0 : 4) + (m == "neumann" || m == "cg" ? 4 : 0);
  const double ws = double(std::max({deck.train.batch_size, deck.meta.batch_size, deck.train.eval_batch}));
  double history = 0;
  if (m == "unrolled") history = double(deck.meta.k) * (params * f + ws * double(data.train.features()) * f);
  params += footprint.buffers;  // running statistics (and their checkpoint copy: negligible)
  const double parameters = vectors * params * f;
  // Activations, pre-activations, their gradients and tangents, per layer, for the largest batch; the
  // GEMM workspaces and the batch buffers.
  const double features = double(data.train.features());
  const double activations = widths.empty()
                                 ? footprint.workspace_bytes + 3.0 * ws * features * f
                                 : 6.0 * ws * (units + double(widths[0])) * f + 3.0 * ws * double(widths[0]) * f;
  const double scores = deck.scores.enabled ? 12.0 * 8.0 * double(data.train.n) : 0.0;
  const double loaded = double(data.train.u8.size() + data.test.u8.size()) +
                        f * double(data.train.f32.size() + data.test.f32.size()) +
                        8.0 * double(data.train.n + data.test.n);
  // What the process holds already (libraries, MPI, Kokkos) and does not give back.
  double baseline = 0;
  if (std::FILE* sf = std::fopen("/proc/self/statm", "r")) {
    long pages = 0, resident = 0;
    if (std::fscanf(sf, "%ld %ld", &pages, &resident) == 2) baseline = double(resident) * double(::sysconf(_SC_PAGESIZE));
    std::fclose(sf);
  }
  baseline = std::max(0.0, baseline - loaded);
  const double total = parameters + history + activations + scores + loaded + baseline;
  int local = ranks_per_node;
  if (local <= 0) {
    MPI_Comm node;
    MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
  }
  double avail = available_bytes();
  if (const char* o = std::getenv("SAMA_MEMORY_AVAILABLE_MB")) avail = 1e6 * std::strtod(o, nullptr);
  const double per_rank = avail > 0 ? avail / std::max(local, 1) : -1;
  const auto mb = [](double b) { return b / 1e6; };
  const std::string breakdown =
      fmt::format("parameters and optimizer/meta state {:.0f} MB ({:.0f} parameters x {:.0f} vectors), unroll "
                  "history {:.0f} MB, activations and workspaces {:.0f} MB, score sums {:.0f} MB, data {:.0f} MB, process "
                  "{:.0f} MB",
                  mb(parameters), params, vectors, mb(history), mb(activations), mb(scores), mb(loaded), mb(baseline));
  if (comm.rank() == 0 && log)
    *log << fmt::format("sama: memory estimate {:.0f} MB per rank ({}); {} available per rank\n", mb(total),
                                breakdown,
                                per_rank > 0 ? fmt::format("{:.0f} MB", mb(per_rank)) : std::string("unknown"));
  if (per_rank > 0 && total > per_rank)
    fail("{}: this run needs about {:.0f} MB per rank ({}), more than the {:.0f} MB available to each of the {} "
         "rank(s) on this node (MemAvailable or the cgroup memory limit, shared by the ranks): use a smaller model "
         "(model.hidden) or batch, or fewer ranks per node",
         deck.file, mb(total), breakdown, mb(per_rank), local);
  return mb(total);
}

}  // namespace sama::training
