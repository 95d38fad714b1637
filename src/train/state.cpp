// The train state saved and loaded by name (state.hpp), and the translation of format-1 checkpoints.
#include "sama/train/state.hpp"

#include "sama/comm/communicator.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/threads.hpp"

#include <mpi.h>

#include <string>
#include <utility>

namespace sama::training {
namespace {

// The per-rank sums, by name, in the order they are gathered.
const char* const kWindowNames[] = {"window.base_loss",       "window.meta_loss",        "window.epsilon",
                                    "window.weight_clean_sum", "window.weight_clean_count",
                                    "window.weight_noisy_sum", "window.weight_noisy_count"};
constexpr std::size_t kWindowFields = std::size(kWindowNames);
const char* const kWeightWindowNames[WeightNetHealth::kFields] = {
    "weight_window.weight_sum", "weight_window.weight_sq_sum", "weight_window.loss_sum",
    "weight_window.loss_sq_sum", "weight_window.count",        "weight_window.logit_min",
    "weight_window.logit_max",  "weight_window.logit_sum",     "weight_window.logit_sq_sum",
    "weight_window.saturated"};
const char* const kResultNames[] = {"results.final_test_accuracy", "results.best_test_accuracy",
                                    "results.final_test_loss",     "results.final_train_loss",
                                    "results.first_train_loss",    "results.mean_weight_clean",
                                    "results.mean_weight_noisy",   "results.train_seconds"};

/// Gathers `n` doubles per rank to rank 0 and stores field f of every rank as names[f] (rank order).
void gather_per_rank(io::CheckpointData& c, const comm::Communicator& comm, const double* mine, std::size_t n,
                     const char* const* names, const char* what) {
  const auto ranks = static_cast<std::size_t>(comm.size());
  std::vector<double> all(n * ranks);
  comm::check_mpi(MPI_Gather(mine, static_cast<int>(n), MPI_DOUBLE, all.data(), static_cast<int>(n), MPI_DOUBLE, 0,
                             comm.get()),
                  what, comm.get());
  for (std::size_t f = 0; f < n; ++f) {
    std::vector<double>& v = c.doubles[names[f]];
    v.resize(ranks);
    for (std::size_t r = 0; r < ranks; ++r) v[r] = all[r * n + f];
  }
}

/// This rank's values of per-rank fields saved by `c.ranks` ranks: its own at the same rank count;
/// otherwise rank 0 takes the totals (`combine` folds one rank's value in) and the others `init`.
template <class Combine>
void take_per_rank(const io::CheckpointData& c, const comm::Communicator& comm, std::size_t n,
                   const char* const* names, double* mine, Combine combine) {
  for (std::size_t f = 0; f < n; ++f) {
    const auto& v = c.d(names[f], static_cast<std::size_t>(c.ranks));
    if (c.ranks == comm.size()) {
      mine[f] = v[static_cast<std::size_t>(comm.rank())];
    } else if (comm.rank() == 0) {
      for (int r = 0; r < c.ranks; ++r) mine[f] = combine(f, mine[f], v[static_cast<std::size_t>(r)]);
    }
  }
}

std::int64_t scalar_i(const io::CheckpointData& c, const std::string& name) { return c.i(name, 1)[0]; }
double scalar_d(const io::CheckpointData& c, const std::string& name) { return c.d(name, 1)[0]; }

}  // namespace

TrainState::TrainState(Vec<real> theta_, Vec<real> lambda_, std::unique_ptr<optim::Optimizer<real>> base_opt_,
                       std::unique_ptr<optim::Optimizer<real>> meta_opt_, data::EpochSampler sampler_,
                       data::EpochSampler meta_sampler_)
    : theta(std::move(theta_)),
      lambda(std::move(lambda_)),
      base_opt(std::move(base_opt_)),
      meta_opt(std::move(meta_opt_)),
      sampler(std::move(sampler_)),
      meta_sampler(std::move(meta_sampler_)) {}

void TrainState::save(io::CheckpointData& c, const comm::Communicator& comm) const {
  c.floats["theta"] = to_floats(theta);
  c.floats["lambda"] = to_floats(lambda);
  if (model_buffers.extent(0) > 0) c.floats["model_buffers"] = to_floats(model_buffers);
  auto save_opt = [&](const std::string& prefix, const optim::Optimizer<real>& o) {
    for (const auto& [name, v] : o.state()) c.floats[prefix + "." + name] = to_floats(v);
    c.ints[prefix + ".steps"] = {o.steps()};
    c.doubles[prefix + ".last_lr"] = {o.last_lr()};
  };
  save_opt("base_optimizer", *base_opt);
  save_opt("meta_optimizer", *meta_opt);
  c.ints["sampler.epoch"] = {sampler.epoch()};
  c.ints["sampler.position"] = {static_cast<std::int64_t>(sampler.position())};
  c.ints["meta_sampler.epoch"] = {meta_sampler.epoch()};
  c.ints["meta_sampler.position"] = {static_cast<std::int64_t>(meta_sampler.position())};
  c.ints["counters.meta_steps"] = {counters.meta_steps};
  c.ints["counters.nonfinite_total"] = {counters.nonfinite_total};
  c.ints["counters.nonfinite_run"] = {counters.nonfinite_run};
  c.ints["counters.first_window"] = {counters.first_window ? 1 : 0};
  const app::RunResult& r = result;
  const double results[] = {r.final_test_accuracy, r.best_test_accuracy, r.final_test_loss,  r.final_train_loss,
                            r.first_train_loss,    r.mean_weight_clean,  r.mean_weight_noisy, train_seconds};
  for (std::size_t k = 0; k < std::size(kResultNames); ++k) c.doubles[kResultNames[k]] = {results[k]};
  // The window sums differ per rank: gathered, so that a resume at the same rank count is bitwise.
  c.ints["window.steps"] = {window.steps};
  c.ints["window.meta_steps"] = {window.meta_steps};
  const LogWindow& w = window;
  const double mine[kWindowFields] = {w.base_loss,   w.meta_loss,         w.eps,
                                      w.w_clean_sum, double(w.w_clean_n), w.w_noisy_sum, double(w.w_noisy_n)};
  gather_per_rank(c, comm, mine, kWindowFields, kWindowNames, "MPI_Gather(checkpoint counters)");
  c.doubles["diagnostics.window_cosine"] = {diagnostics.window_cosine};
  c.doubles["diagnostics.window_ratio"] = {diagnostics.window_ratio};
  c.ints["diagnostics.window_count"] = {diagnostics.window_diagnoses};
  c.doubles["diagnostics.run_cosine"] = {diagnostics.run_cosine};
  c.doubles["diagnostics.run_ratio"] = {diagnostics.run_ratio};
  c.ints["diagnostics.run_count"] = {diagnostics.run_diagnoses};
  // The weight net's health: its window per rank (gathered like the sums above), the λ-gradient norms
  // (identical on every rank) and the step the collapse detector fired at.
  gather_per_rank(c, comm, health.window.data(), WeightNetHealth::kFields, kWeightWindowNames,
                  "MPI_Gather(checkpoint weight window)");
  c.doubles["weight_net.lambda_grad_norm_sum"] = {health.lambda_grad_norm_sum};
  c.ints["weight_net.lambda_grad_norms"] = {health.lambda_grad_norms};
  c.ints["weight_net.collapsed_at_step"] = {health.collapsed_at_step};
  c.ints["weight_net.weights_spread"] = {health.weights_spread ? 1 : 0};
}

void TrainState::load(const io::CheckpointData& c, const comm::Communicator& comm) {
  if (c.format < 2) {
    load(legacy_layout(c), comm);
    return;
  }
  const std::string& src = c.source;
  from_floats(c.f("theta"), theta, "theta", src);
  from_floats(c.f("lambda"), lambda, "lambda", src);
  if (model_buffers.extent(0) > 0) from_floats(c.f("model_buffers"), model_buffers, "model_buffers", src);
  auto load_opt = [&](const std::string& prefix, optim::Optimizer<real>& o) {
    for (const auto& [name, v] : o.state()) from_floats(c.f(prefix + "." + name), v, prefix + "." + name, src);
    o.set_steps(static_cast<long>(scalar_i(c, prefix + ".steps")));
    o.set_last_lr(scalar_d(c, prefix + ".last_lr"));
  };
  load_opt("base_optimizer", *base_opt);
  load_opt("meta_optimizer", *meta_opt);
  sampler.seek(scalar_i(c, "sampler.epoch"), static_cast<std::size_t>(scalar_i(c, "sampler.position")));
  meta_sampler.seek(scalar_i(c, "meta_sampler.epoch"), static_cast<std::size_t>(scalar_i(c, "meta_sampler.position")));
  counters.meta_steps = scalar_i(c, "counters.meta_steps");
  counters.nonfinite_total = scalar_i(c, "counters.nonfinite_total");
  counters.nonfinite_run = scalar_i(c, "counters.nonfinite_run");
  counters.first_window = scalar_i(c, "counters.first_window") != 0;
  app::RunResult& r = result;
  double* results[] = {&r.final_test_accuracy, &r.best_test_accuracy, &r.final_test_loss,  &r.final_train_loss,
                       &r.first_train_loss,    &r.mean_weight_clean,  &r.mean_weight_noisy, &train_seconds};
  for (std::size_t k = 0; k < std::size(kResultNames); ++k) *results[k] = scalar_d(c, kResultNames[k]);
  window.steps = scalar_i(c, "window.steps");
  window.meta_steps = scalar_i(c, "window.meta_steps");
  // Same rank count: each rank takes its own window sums back. Another rank count: rank 0 takes the
  // totals (the logged window means are then equal up to summation order).
  double mine[kWindowFields] = {};
  take_per_rank(c, comm, kWindowFields, kWindowNames, mine, [](std::size_t, double a, double b) { return a + b; });
  window.base_loss = mine[0];
  window.meta_loss = mine[1];
  window.eps = mine[2];
  window.w_clean_sum = mine[3];
  window.w_clean_n = static_cast<long>(mine[4]);
  window.w_noisy_sum = mine[5];
  window.w_noisy_n = static_cast<long>(mine[6]);
  if (c.doubles.count("diagnostics.run_cosine")) {  // (absent from checkpoints of older versions)
    diagnostics.window_cosine = scalar_d(c, "diagnostics.window_cosine");
    diagnostics.window_ratio = scalar_d(c, "diagnostics.window_ratio");
    diagnostics.window_diagnoses = scalar_i(c, "diagnostics.window_count");
    diagnostics.run_cosine = scalar_d(c, "diagnostics.run_cosine");
    diagnostics.run_ratio = scalar_d(c, "diagnostics.run_ratio");
    diagnostics.run_diagnoses = scalar_i(c, "diagnostics.run_count");
  }
  if (c.doubles.count("weight_net.lambda_grad_norm_sum")) {  // (absent from checkpoints of older versions)
    health.lambda_grad_norm_sum = scalar_d(c, "weight_net.lambda_grad_norm_sum");
    health.lambda_grad_norms = scalar_i(c, "weight_net.lambda_grad_norms");
    health.collapsed_at_step = scalar_i(c, "weight_net.collapsed_at_step");
    health.weights_spread = scalar_i(c, "weight_net.weights_spread") != 0;
    // Another rank count: rank 0 takes the totals, minima and maxima.
    health.window = WeightNetHealth::empty_window();
    take_per_rank(c, comm, WeightNetHealth::kFields, kWeightWindowNames, health.window.data(),
                  [](std::size_t f, double a, double b) {
                    return f == WeightNetHealth::kMin ? std::min(a, b) : f == WeightNetHealth::kMax ? std::max(a, b) : a + b;
                  });
  }
  start_step = c.step;
  result.resumed_from = c.step;
}

ThreadLayout thread_layout() {
  return {threads::applied().threads_per_rank, blas_threads(), ExecSpace().concurrency()};
}

void save_thread_layout(io::CheckpointData& c, const ThreadLayout& t) {
  c.ints["threads.per_rank"] = {t.threads_per_rank};
  c.ints["threads.blas"] = {t.blas_threads};
  c.ints["threads.kokkos_concurrency"] = {t.kokkos_concurrency};
}

std::optional<ThreadLayout> saved_thread_layout(const io::CheckpointData& c) {
  if (c.format < 2) {  // format 1: one positional array, absent from older checkpoints
    const auto t = c.ints.find("threads");
    if (t == c.ints.end() || t->second.size() != 3) return std::nullopt;
    return ThreadLayout{t->second[0], t->second[1], t->second[2]};
  }
  return ThreadLayout{scalar_i(c, "threads.per_rank"), scalar_i(c, "threads.blas"),
                      scalar_i(c, "threads.kokkos_concurrency")};
}

io::CheckpointData legacy_layout(const io::CheckpointData& old) {
  if (old.format >= 2) return old;
  io::CheckpointData c = old;
  c.format = 2;
  // Positional arrays of format 1, their element names in order (each size checked by c.i/c.d).
  auto split_ints = [&](const char* array, std::vector<const char*> names) {
    const auto v = old.i(array, names.size());
    for (std::size_t k = 0; k < names.size(); ++k) c.ints[names[k]] = {v[k]};
    c.ints.erase(array);
  };
  auto split_doubles = [&](const char* array, std::vector<const char*> names) {
    const auto v = old.d(array, names.size());
    for (std::size_t k = 0; k < names.size(); ++k) c.doubles[names[k]] = {v[k]};
    c.doubles.erase(array);
  };
  auto split_counts = [&](const char* array, std::vector<std::pair<const char*, bool>> names) {  // (name, integer)
    const auto v = old.d(array, names.size());
    for (std::size_t k = 0; k < names.size(); ++k) {
      if (names[k].second) c.ints[names[k].first] = {static_cast<std::int64_t>(v[k])};
      else c.doubles[names[k].first] = {v[k]};
    }
    c.doubles.erase(array);
  };
  // One row of `fields` values per rank (padded to `stride`) into one array per field.
  auto split_ranks = [&](const char* array, std::size_t stride, const char* const* names, std::size_t fields) {
    const auto ranks = static_cast<std::size_t>(old.ranks);
    const auto v = old.d(array, stride * ranks);
    for (std::size_t f = 0; f < fields; ++f) {
      std::vector<double>& out = c.doubles[names[f]];
      out.resize(ranks);
      for (std::size_t r = 0; r < ranks; ++r) out[r] = v[r * stride + f];
    }
    c.doubles.erase(array);
  };
  split_ints("sampler", {"sampler.epoch", "sampler.position", "meta_sampler.epoch", "meta_sampler.position"});
  split_ints("counters", {"counters.meta_steps", "counters.nonfinite_total", "counters.nonfinite_run",
                          "counters.first_window", "window.steps", "window.meta_steps"});
  split_doubles("results", {std::begin(kResultNames), std::end(kResultNames)});
  split_ranks("rank_windows", 9, kWindowNames, kWindowFields);  // (format 1 padded each rank's row to 9)
  if (old.doubles.count("hypergrad_diagnostics"))
    split_counts("hypergrad_diagnostics", {{"diagnostics.window_cosine", false}, {"diagnostics.window_ratio", false},
                                           {"diagnostics.window_count", true},   {"diagnostics.run_cosine", false},
                                           {"diagnostics.run_ratio", false},     {"diagnostics.run_count", true}});
  if (old.doubles.count("weight_net_health")) {
    split_counts("weight_net_health", {{"weight_net.lambda_grad_norm_sum", false}, {"weight_net.lambda_grad_norms", true},
                                       {"weight_net.collapsed_at_step", true},     {"weight_net.weights_spread", true}});
    split_ranks("rank_weight_windows", WeightNetHealth::kFields, kWeightWindowNames, WeightNetHealth::kFields);
  }
  if (old.ints.count("threads"))
    split_ints("threads", {"threads.per_rank", "threads.blas", "threads.kokkos_concurrency"});
  return c;
}

}  // namespace sama::training
