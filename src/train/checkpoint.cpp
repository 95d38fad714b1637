// Checkpoints: the run's complete state (the train state by name, the thread layout, the per-sample
// scores, the unroll history), written atomically by rank 0 once every rank is there; and the replica
// check that θ and λ are the same on every rank.
#include "sama/train/trainer.hpp"

#include "sama/core/error.hpp"
#include "sama/core/timer.hpp"
#include "sama/io/safe_file.hpp"

#include <mpi.h>

#include <string>
#include <utility>

namespace sama::training {

io::CheckpointData Trainer::snapshot(long step) {
  io::CheckpointData c;
  c.step = step;
  c.ranks = comm_.size();
  c.deck = app::to_toml(deck_);
  state_.save(c, comm_);  // collective
  // Threads per rank decide the order of threaded GEMM and reduction sums: a resume with others is
  // correct but not bitwise (noted when resuming).
  save_thread_layout(c, thread_layout());
  if (scores_) scores_->save(c, comm_);  // totals over ranks (exact: fixed point)
  if (history_) save_history(c);
  return c;
}

void Trainer::restore(const io::CheckpointData& c) {
  state_.load(c, comm_);
  if (scores_) scores_->restore(c, comm_);
  if (history_) restore_history(c);
}

// The unroll history, oldest step first: θ_t, λ_t and the optimizer state (replicated), the step's
// learning rate and count, and the batch's ids and Meta-Weight-Net inputs gathered over ranks in rank
// order, i.e. as the global batch. A resume at another rank count takes its own slice of each.
void Trainer::save_history(io::CheckpointData& c) {
  const std::size_t count = history_->size(), lb = local_batch_;
  c.ints["unroll.count"] = {static_cast<std::int64_t>(count)};
  for (std::size_t j = 0; j < count; ++j) {
    const auto& e = history_->entry(count - 1 - j);
    const std::string key = "unroll." + std::to_string(j) + ".";
    c.floats[key + "theta"] = to_floats(e.theta);
    c.floats[key + "lambda"] = to_floats(e.lambda);
    for (std::size_t s = 0; s < e.state.size(); ++s)
      c.floats[key + "state." + history_->state_names()[s]] = to_floats(e.state[s]);
    c.doubles[key + "lr"] = {e.lr};
    c.ints[key + "epoch"] = {e.epoch};
    c.ints[key + "steps"] = {e.steps};
    std::vector<std::int64_t> ids(lb * static_cast<std::size_t>(comm_.size()));
    std::vector<float> losses(ids.size());
    const auto mine = to_floats(Kokkos::subview(e.losses, std::make_pair(std::size_t(0), lb)));
    comm::check_mpi(MPI_Gather(e.ids.data(), static_cast<int>(lb), MPI_INT64_T, ids.data(), static_cast<int>(lb),
                               MPI_INT64_T, 0, comm_.get()),
                    "MPI_Gather(unroll history ids)", comm_.get());
    comm::check_mpi(MPI_Gather(mine.data(), static_cast<int>(lb), MPI_FLOAT, losses.data(), static_cast<int>(lb),
                               MPI_FLOAT, 0, comm_.get()),
                    "MPI_Gather(unroll history losses)", comm_.get());
    c.ints[key + "ids"] = ids;
    c.floats[key + "losses"] = losses;
  }
}

void Trainer::restore_history(const io::CheckpointData& c) {
  const std::string& src = c.source;
  history_->clear();
  const std::size_t count = static_cast<std::size_t>(c.i("unroll.count", 1)[0]), lb = local_batch_;
  const std::size_t first = lb * static_cast<std::size_t>(comm_.rank());
  for (std::size_t j = 0; j < count; ++j) {
    auto& e = history_->push();
    const std::string key = "unroll." + std::to_string(j) + ".";
    from_floats(c.f(key + "theta"), e.theta, key + "theta", src);
    from_floats(c.f(key + "lambda"), e.lambda, key + "lambda", src);
    for (std::size_t s = 0; s < e.state.size(); ++s) {
      const std::string name = key + "state." + history_->state_names()[s];
      from_floats(c.f(name), e.state[s], name, src);
    }
    e.lr = c.d(key + "lr", 1)[0];
    e.epoch = c.ints.count(key + "epoch") ? static_cast<long>(c.i(key + "epoch", 1)[0]) : 0;  // (older: none)
    e.steps = static_cast<long>(c.i(key + "steps", 1)[0]);
    const auto& ids = c.i(key + "ids", static_cast<std::size_t>(batch_size_));
    const auto& losses = c.f(key + "losses", static_cast<std::size_t>(batch_size_));
    e.ids.assign(ids.begin() + static_cast<long>(first), ids.begin() + static_cast<long>(first + lb));
    from_floats(std::vector<float>(losses.begin() + static_cast<long>(first), losses.begin() + static_cast<long>(first + lb)),
                Kokkos::subview(e.losses, std::make_pair(std::size_t(0), lb)), key + "losses", src);
  }
}

void Trainer::write_checkpoint(long step, const char* why) {
  Timer t;
  io::CheckpointData c = snapshot(step);  // collective
  std::string path;
  if (comm_.rank() == 0)
    path = io::write_checkpoint(io::checkpoint_dir(opt_.out_dir), c, static_cast<int>(deck_.checkpoint.keep));
  // No rank goes on before the checkpoint is committed (a failure on rank 0 aborts the job).
  comm_.barrier();
  say("checkpoint at step {} ({}): {} in {:.2f} s", step, why, path, t.seconds());
}

void Trainer::check_replicas(long step) {
  // FNV-1a over the bits of θ and λ; every rank must hold the same value.
  auto hash = [](const Vec<real>& v, std::uint64_t h) {
    auto host = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    return io::fnv1a64(host.data(), host.extent(0) * sizeof(real), h);
  };
  const std::uint64_t h = hash(state_.lambda, hash(state_.theta, io::kFnvOffset));
  unsigned long long lo = h, hi = h;
  comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm_.get()),
                  "MPI_Allreduce(replica check)", comm_.get());
  comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm_.get()),
                  "MPI_Allreduce(replica check)", comm_.get());
  if (lo != hi) fail("replica check at step {}: θ/λ differ between ranks (hash {:016x} on this rank)", step, h);
}

}  // namespace sama::training
