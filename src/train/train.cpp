// The public entry (train.hpp): the deck checked against the data and the memory, the run directory
// checked, locked and prepared, a checkpoint resumed (or a completed run extended), the trainer run,
// and summary.json written at completion.
#include "sama/train/train.hpp"

#include "sama/core/blas_core.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/threads.hpp"
#include "sama/io/checkpoint.hpp"
#include "sama/io/run_files.hpp"
#include "sama/train/data.hpp"
#include "sama/train/model_adapter.hpp"
#include "sama/train/state.hpp"
#include "sama/train/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>

namespace sama::app {

StepCounts per_step_counts(const RunResult& r, long first) {
  StepCounts m;
  KokkosCounts sum;
  for (std::size_t i = static_cast<std::size_t>(std::max(first, 0L)); i < r.kokkos_steps.size(); ++i) {
    const KokkosCounts& c = r.kokkos_steps[i];
    sum += c;
    m.max_allocations = std::max(m.max_allocations, c.allocations());
    ++m.steps;
  }
  if (m.steps == 0) return m;
  const double n = double(m.steps);
  m.host_allocations = double(sum.host_allocations) / n;
  m.device_allocations = double(sum.device_allocations) / n;
  m.copies_host_to_device = double(sum.copies_host_to_device) / n;
  m.copies_device_to_host = double(sum.copies_device_to_host) / n;
  m.copies_same_space = double(sum.copies_host_to_host + sum.copies_device_to_device) / n;
  m.copies_aliased = double(sum.copies_aliased) / n;
  m.fills = double(sum.fills) / n;
  m.kernels = double(sum.kernels()) / n;
  m.regions = double(sum.regions) / n;
  return m;
}

RunResult train(const Deck& deck, const RunOptions& options, const comm::Communicator& comm) {
  namespace fs = std::filesystem;
  // Everything that can be rejected is checked before the run directory is touched.
  if (deck.train.batch_size % comm.size() != 0)
    fail("{}: train.batch_size = {} does not divide over {} ranks", deck.file, deck.train.batch_size, comm.size());
  if (deck.meta.batch_size % comm.size() != 0)
    fail("{}: meta.batch_size = {} does not divide over {} ranks", deck.file, deck.meta.batch_size, comm.size());
  training::Data data = training::load_data(deck);
  if (data.kept.size() < static_cast<std::size_t>(deck.train.batch_size))
    fail("{}: train.batch_size = {} exceeds the {} training samples{}", deck.file, deck.train.batch_size,
         data.kept.size(), deck.data.keep_mask.empty() ? " left after the meta set" : " the keep mask keeps");
  if (data.split.meta_ids.size() < static_cast<std::size_t>(deck.meta.batch_size))
    fail("{}: meta.batch_size = {} exceeds the meta set of {} samples", deck.file, deck.meta.batch_size,
         data.split.meta_ids.size());
  const auto train_samples = static_cast<long>(data.kept.size());
  const std::string train_checksum = data.train.checksum, test_checksum = data.test.checksum;
  // Refuses a run that cannot fit, before allocating it.
  const auto classes = static_cast<std::size_t>(data.train.num_classes);
  const std::size_t workspace = static_cast<std::size_t>(
      std::max({deck.train.batch_size, deck.meta.batch_size, deck.train.eval_batch}));
  const double memory_mb = training::check_memory(
      deck, data,
      deck.model.arch == "mlp" ? training::model_widths(deck, data.train.features(), classes)
                               : std::vector<std::size_t>(),
      training::model_footprint(deck, data.train.shape, classes, workspace), options.ranks_per_node, options.log,
      comm);
  const bool want_resume = options.resume || options.resume_if_present;
  // The run directory: checked (a fresh run never silently replaces a completed or interrupted run),
  // created and locked by rank 0 before any rank reads a checkpoint from it; the lock is held until
  // this function returns (or the process dies).
  io::RunDirLock lock;
  std::string extended_summary;  // a completed run being extended: where its summary.json was moved
  if (!options.out_dir.empty()) {
    if (comm.rank() == 0) {
      io::check_run_dir(options.out_dir, {deck.file, deck.data.train_file, deck.data.test_file, deck.data.keep_mask},
                        want_resume, options.overwrite);
      lock = io::RunDirLock(options.out_dir);
      for (const auto& f : io::remove_stale_temporaries(options.out_dir))
        if (options.log) *options.log << "sama: removed the leftover of a failed or killed write: " << f << "\n";
    }
    comm.barrier();  // the directory is ours before any rank reads its checkpoints
  }
  training::Trainer trainer(deck, options, comm, std::move(data));
  bool resuming = false;
  if (want_resume) {
    if (options.out_dir.empty()) fail("resuming needs the run directory (--out)");
    const bool completed = fs::exists(fs::path(options.out_dir) / "summary.json");
    // Every rank reads the checkpoint itself (read-only) and takes the same decision.
    const auto found = io::find_checkpoint(io::checkpoint_dir(options.out_dir));
    if (completed && found) {
      // Extending a completed run starts from its final checkpoint, never from an earlier one.
      std::ifstream in(fs::path(options.out_dir) / "summary.json");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto at = text.find("\"steps\": ");
      const long steps = at == std::string::npos ? -1 : std::atol(text.c_str() + at + 9);
      if (steps != found->data.step)
        fail("run directory '{}' holds a completed run of {} steps whose newest good checkpoint is at step {}: it "
             "has no final checkpoint (written by an older sama, or damaged), so it cannot be extended",
             options.out_dir, steps, found->data.step);
    }
    if (completed && (!found || found->data.step >= trainer.total_steps()))
      fail("run directory '{}' holds a completed run (summary.json){}: nothing to resume. To train it longer, "
           "resume it with a larger train.epochs or train.steps (--set train.steps=N)",
           options.out_dir,
           found ? fmt::format(" of {} steps; this deck asks for {}", found->data.step, trainer.total_steps())
                 : std::string(" without a final checkpoint"));
    if (found) {
      for (const auto& problem : found->rejected)
        if (comm.rank() == 0 && options.log) *options.log << "sama: skipping damaged checkpoint: " << problem << "\n";
      for (const auto& note : found->notes)
        if (comm.rank() == 0 && options.log) *options.log << "sama: note: " << note << "\n";
      const std::string why = resume_incompatibility(found->data.deck, deck);
      if (!why.empty())
        fail("checkpoint '{}' does not match deck '{}': {}", found->data.source, deck.file, why);
      if (found->data.step > trainer.total_steps())
        fail("checkpoint '{}' is at step {}, past the {} steps this deck asks for: raise train.epochs/train.steps",
             found->data.source, found->data.step, trainer.total_steps());
      trainer.restore(found->data);
      resuming = true;
      if (comm.rank() == 0 && options.log)
        *options.log << fmt::format("sama: resuming from {} (step {}, written by {} rank(s)){}\n", found->data.source,
                                    found->data.step, found->data.ranks,
                                    completed ? fmt::format("; extending the completed run to {} steps",
                                                            trainer.total_steps())
                                              : std::string());
      const auto threads_then = training::saved_thread_layout(found->data);  // absent in older checkpoints
      const training::ThreadLayout threads_now = training::thread_layout();
      if (threads_then &&
          (threads_then->blas_threads != threads_now.blas_threads ||
           threads_then->kokkos_concurrency != threads_now.kokkos_concurrency) &&
          comm.rank() == 0 && options.log)
        *options.log << fmt::format(
            "sama: note: the checkpoint was written with {} BLAS thread(s) and Kokkos concurrency {} per rank, this "
            "run has {} and {}: it continues correctly, but not to the bit of a run without the change (threaded "
            "sums run in another order)\n",
            threads_then->blas_threads, threads_then->kokkos_concurrency, threads_now.blas_threads,
            threads_now.kokkos_concurrency);
      if (completed && comm.rank() == 0) {
        // The run is incomplete again until the extension ends: its summary is kept aside (atomically
        // renamed) and replaced by the new one at the end.
        extended_summary =
            (fs::path(options.out_dir) / fmt::format("summary.step_{}.json", found->data.step)).string();
        io::commit_file((fs::path(options.out_dir) / "summary.json").string(), extended_summary);
      }
    } else if (options.resume) {
      fail("no checkpoint to resume from in '{}'", io::checkpoint_dir(options.out_dir));
    }
  }
  if (!options.out_dir.empty() && comm.rank() == 0) {
    io::prepare_run_dir(options.out_dir, resuming);
    io::write_file_atomic((fs::path(options.out_dir) / "deck.resolved.toml").string(), to_toml(deck));
  }
  comm.barrier();  // the run directory exists before any rank writes a checkpoint
  RunResult r = trainer.run();
  r.memory_estimate_mb = memory_mb;
  if (r.preempted) return r;  // a checkpoint, no summary: the run is not complete
  if (!options.out_dir.empty() && comm.rank() == 0) {
    io::JsonObject j;
    j.set("final_test_accuracy", r.final_test_accuracy);
    j.set("best_test_accuracy", r.best_test_accuracy);
    j.set("final_test_loss", r.final_test_loss);
    j.set("final_train_loss", r.final_train_loss);
    j.set("steps", r.steps);
    j.set("meta_steps", r.meta_steps);
    j.set("ranks", static_cast<long>(r.ranks));
    j.set("method", r.method);
    j.set("samples_per_second", r.samples_per_second);
    j.set("train_seconds", r.train_seconds);
    j.set("peak_rss_mb", r.peak_rss_mb);
    j.set("mean_weight_clean", r.mean_weight_clean);
    j.set("mean_weight_noisy", r.mean_weight_noisy);
    if (r.method != "none") {
      j.set("weight_net", deck.meta.weight_net);
      if (r.meta_weight_collapsed_at_step >= 0) j.set("meta_weight_collapsed_at_step", r.meta_weight_collapsed_at_step);
      else j.set_null("meta_weight_collapsed_at_step");
    }
    j.set("seed", deck.train.seed);
    j.set("blas_core", blas::running_core());
    j.set("blas_core_detail", blas::blas_core_report());
    j.set("threads_per_rank", static_cast<long>(threads::applied().threads_per_rank));
    j.set("threads_source", threads::applied().source);
    j.set("kokkos_concurrency", static_cast<long>(ExecSpace().concurrency()));
    j.set("blas_threads", static_cast<long>(blas_threads()));
    j.set("comm_hidden_fraction", r.comm_hidden_fraction);
    j.set("comm_exposed_seconds", r.comm_exposed_seconds);
    j.set("nonfinite_steps", r.nonfinite_steps);
    if (r.hypergrad_diagnoses > 0) {
      j.set("hypergrad_diagnoses", r.hypergrad_diagnoses);
      j.set("mean_hypergrad_cosine", r.mean_hypergrad_cosine);
      j.set("mean_hypergrad_norm_ratio", r.mean_hypergrad_norm_ratio);
    }
    j.set("resumed_from_step", r.resumed_from);
    j.set("deck", deck.file);
    j.set("train_samples", train_samples);
    j.set("keep_mask", deck.data.keep_mask);
    // Provenance of the data read (FNV-1a 64 of the files' bytes; empty for synthetic data).
    j.set("train_data_checksum", train_checksum);
    j.set("test_data_checksum", test_checksum);
    j.set("memory_estimate_mb", r.memory_estimate_mb);
    if (!extended_summary.empty()) j.set("extended_from", fs::path(extended_summary).filename().string());
    io::write_file_atomic((fs::path(options.out_dir) / "summary.json").string(), j.str());
  }
  return r;
}

}  // namespace sama::app
