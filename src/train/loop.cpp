// The training loop. It reads like the algorithm (DESIGN.md §2): every step a base step on a training
// batch weighted by the Meta-Weight-Net; every `meta.interval` steps a SAMA meta step:
//
//   v  = ∂L_meta/∂θ                     (meta batch, clean labels)
//   w  = D ⊙ v                          (the base optimizer's adaptation; D = I for finite_difference)
//   δ_i = (ℓ_i(θ+εw) − ℓ_i(θ−εw)) / 2ε  (same base batch, ε = α/‖w‖, θ restored bitwise)
//   ∇λ = ∂L_meta/∂λ − ∂/∂λ (1/B) Σ δ_i w_i(λ)      (for Meta-Weight-Net, ∂L_meta/∂λ = 0)
//   λ ← meta optimizer step (Adam)
//
// The other meta methods replace w (sama_jvp: D ⊙ v; neumann, cg: ≈ H⁻¹v) and take δ_i exactly by
// forward mode, or reverse the last K base steps (unrolled): docs/hypergradients.md. Between steps:
// progress lines and evaluation (reporting.cpp), checkpoints and stops on request (run_control.hpp).
#include "sama/train/trainer.hpp"

#include "sama/data/augment.hpp"

#include "sama/app/preemption.hpp"
#include "sama/core/error.hpp"
#include "sama/core/kokkos_counters.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/timer.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/optim/schedule.hpp"
#include "sama/train/run_control.hpp"

#include <algorithm>
#include <cmath>

namespace sama::training {
namespace {

optim::OptimizerConfig meta_optimizer_config(const app::Deck& d) {
  optim::OptimizerConfig c;
  c.name = "adam";
  c.weight_decay = d.meta.weight_decay;
  c.beta1 = d.meta.beta1;
  c.beta2 = d.meta.beta2;
  c.eps = d.meta.eps;
  return c;
}

}  // namespace

Trainer::Trainer(const app::Deck& deck, const app::RunOptions& opt, const comm::Communicator& comm, Data data)
    : deck_(deck),
      opt_(opt),
      comm_(comm),
      data_(std::move(data)),
      method_(meta::parse_method(deck.meta.method)),
      batch_size_(static_cast<std::size_t>(deck.train.batch_size)),
      meta_batch_size_(static_cast<std::size_t>(deck.meta.batch_size)),
      eval_batch_(static_cast<std::size_t>(deck.train.eval_batch)),
      workspace_(std::max({batch_size_, meta_batch_size_, eval_batch_})),
      model_(make_model(deck, data_.train.shape, static_cast<std::size_t>(data_.train.num_classes), workspace_)),
      mwn_(meta::parse_weight_net(deck.meta.weight_net), static_cast<std::size_t>(deck.meta.hidden),
           deck.meta.normalize, workspace_),
      state_(make_vec<real>("sama::theta", model_.num_params()), make_vec<real>("sama::lambda", mwn_.num_params()),
             optim::make_optimizer<real>(base_optimizer_config(deck, model_), model_.num_params()),
             optim::make_optimizer<real>(meta_optimizer_config(deck), mwn_.num_params()),
             data::EpochSampler(data_.kept, batch_size_, seed(), static_cast<std::uint64_t>(Stream::sampler),
                                comm.rank(), comm.size()),
             data::EpochSampler(data_.split.meta_ids, meta_batch_size_, seed(),
                                static_cast<std::uint64_t>(Stream::meta_sampler), comm.rank(), comm.size())),
      grad_(make_vec<real>("sama::grad", model_.num_params())),
      lambda_grad_(make_vec<real>("sama::lambda_grad", mwn_.num_params())),
      probe_(model_.num_params(), workspace_),
      base_(workspace_, data_.train.features()),
      meta_(workspace_, data_.train.features()),
      losses_(make_vec<real>("sama::losses", workspace_)),
      weights_(make_vec<real>("sama::weights", workspace_)),
      coef_(make_vec<real>("sama::coef", workspace_)),
      delta_(make_vec<real>("sama::delta", workspace_)) {
  local_batch_ = state_.sampler.local_batch();
  sum_ = [this](double* x, int n) { comm_.allreduce_sum(x, n); };
  const auto buckets = gradient_buckets(model_);
  reducer_ = deck.parallel.backend == "nccl"
                 ? comm::make_nccl_reducer(comm_, grad_.data(), grad_.extent(0), buckets, deck.parallel.bucket_mb * 1e6)
                 : comm::make_mpi_reducer(comm_, grad_.data(), grad_.extent(0), buckets, deck.parallel.bucket_mb * 1e6,
                                          comm::default_mpi_buffer(deck.parallel.gpu_aware_mpi));
  const long batches_per_epoch = static_cast<long>(state_.sampler.batches_per_epoch());
  total_steps_ = deck.train.steps > 0 ? deck.train.steps : deck.train.epochs * batches_per_epoch;
  schedule_ = deck.schedule;
  schedule_.total_steps = total_steps_;
  eval_interval_ = deck.train.eval_interval > 0 ? deck.train.eval_interval : batches_per_epoch;
  Rng init_rng(seed(), Stream::init);
  init_parameters(model_, state_.theta, init_rng);
  init_batch_statistics();
  if (deck.data.augment == "crop_flip") {
    const nn::Shape in = model_.net().in_shape();
    data::CropFlip cf;
    cf.padding = static_cast<std::size_t>(deck.data.augment_padding);
    cf.fill = data_.norm.shift;  // a raw 0 (black), normalised
    const data::ImageShape shape{in.c, in.h, in.w};
    augment_ = [this, cf, shape](real* x, const std::int64_t* ids, std::size_t count) {
      data::crop_flip(x, count, shape, cf, seed(), epoch_, ids);
    };
  }
  Rng meta_rng(seed(), Stream::meta_init);
  mwn_.init(state_.lambda, meta_rng);
  weights_host_ = Kokkos::create_mirror_view(weights_);
  losses_host_ = Kokkos::create_mirror_view(losses_);
  if (deck.scores.enabled) init_scores();
  init_hypergradients();
}

app::RunResult Trainer::run() {
  TrainState& s = state_;
  s.result.method = deck_.meta.method;
  s.result.ranks = comm_.size();
  io::MetricsWriter metrics = open_metrics();
  say_header();

  GemmRecorder gemm_count;
  gemm_count.keep_calls(opt_.record_gemm_calls);
  if (opt_.count_kokkos) kokkos_counters::install();
  KokkosCounts counted = kokkos_counters::read();  // (all zero unless installed)
  // What Kokkos did since `counted`, added to `into` (with RunOptions::count_kokkos).
  const auto count_into = [&](KokkosCounts& into) {
    if (!opt_.count_kokkos) return;
    const KokkosCounts now = kokkos_counters::read();
    into += now - counted;
    counted = now;
  };
  Timer train_timer, window_timer;
  long timed_steps = 0;  // steps since window_timer started (this process's, unlike the checkpointed window)
  RunControl control(deck_, comm_);
  const auto& ck = deck_.checkpoint;
  const bool checkpoints = !opt_.out_dir.empty();
  for (long step = s.start_step; step < total_steps_; ++step) {
    if (step == opt_.untimed_steps && step > 0) {  // the timed part starts here
      gemm_count.reset();
      s.train_seconds = 0;
      train_timer.reset();
    }
    const double lr = optim::learning_rate(schedule_, deck_.optimizer.lr, step);
    const char* phase = "base step";
    const long done = step + 1;
    Control agreed;
    count_into(s.result.kokkos_between_steps);
    ScopedRegion step_region("sama::step");
    try {
      control.inject_failure(step);
      epoch_ = step / static_cast<long>(s.sampler.batches_per_epoch());
      base_ids_ = &s.sampler.next();
      {
        ScopedRegion region("sama::gather");
        base_.load(data_.train, data_.norm, data_.labels.observed, base_ids_->data(), base_ids_->size(), augment_);
      }
      const double loss_sum = control.inject_nan(step, base_gradient());
      // Every rank learns whether any rank saw a non-finite loss or gradient, and whether a stop or a
      // timed checkpoint is due (decided on rank 0's clock), in one small all-reduce.
      ScopedRegion control_region("sama::control");
      const bool bad = !std::isfinite(loss_sum) || !ops::all_finite<real>(grad_);
      agreed = control.agree(step, bad);
      control_region.end();
      if (agreed.orphaned) control.exit_orphaned(step);
      if (agreed.nonfinite) {
        reject_model_buffers();
        ++s.counters.nonfinite_total;
        ++s.counters.nonfinite_run;
        say("step {}: non-finite loss or gradient on some rank: step skipped ({} in a row, {} in total)", step,
            s.counters.nonfinite_run, s.counters.nonfinite_total);
        if (s.counters.nonfinite_run >= deck_.train.max_nonfinite)
          fail("{} consecutive steps with a non-finite loss or gradient (train.max_nonfinite = {}); stopping",
               s.counters.nonfinite_run, deck_.train.max_nonfinite);
      } else {
        s.counters.nonfinite_run = 0;
        base_update(lr, loss_sum);
        if (meta_due(step)) {
          phase = "meta step";
          meta_step();
        }
      }
      if (deck_.parallel.check_replicas > 0 && done % deck_.parallel.check_replicas == 0) {
        phase = "replica check";
        ScopedRegion region("sama::replica_check");
        check_replicas(done);
      }
    } catch (const std::exception& e) {
      fail("step {} ({}): {}", step, phase, e.what());
    }
    step_region.end();
    if (opt_.count_kokkos) count_into(s.result.kokkos_steps.emplace_back());

    const bool log_now = done % deck_.train.log_interval == 0 || done == total_steps_;
    const bool eval_now = done % eval_interval_ == 0 || done == total_steps_;
    ++timed_steps;
    if (log_now || eval_now) {
      s.train_seconds += train_timer.seconds();
      ScopedRegion region("sama::logging");
      log_and_evaluate(done, lr, log_now, eval_now, timed_steps, window_timer.seconds(), control.elapsed_seconds(),
                       metrics);
      window_timer.reset();
      timed_steps = 0;
      train_timer.reset();
    }
    // Checkpoints: on a stop request (then exit asking for a requeue), every N steps, every M minutes.
    const bool stop_now = agreed.stop_reason != 0 && done < total_steps_;
    // A final checkpoint at completion: the state a later extension (more epochs) continues from.
    const bool final = done == total_steps_;
    if (checkpoints && (stop_now || agreed.time_due || final || (ck.every_steps > 0 && done % ck.every_steps == 0))) {
      s.train_seconds += train_timer.seconds();
      ScopedRegion region("sama::checkpoint");
      write_checkpoint(done, stop_now ? "stop requested" : final ? "final" : "scheduled");
      control.checkpoint_written();
      train_timer.reset();
    }
    if (stop_now) {
      s.result.preempted = true;
      s.result.steps = done;
      s.result.stop_reason = agreed.stop_reason;
      say("{}", control.stop_message(done, agreed.stop_reason));
      s.result.stop_to_checkpoint_seconds = app::seconds_since_stop_signal();
      return s.result;
    }
  }
  count_into(s.result.kokkos_between_steps);
  return finish(gemm_count);
}

}  // namespace sama::training
