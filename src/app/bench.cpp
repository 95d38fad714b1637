// `sama bench`: per MLP size and method, samples/s, peak RSS, the GEMM FLOP rate the training step
// achieves, and the sgemm rate of the very same GEMM shapes replayed alone in the same run; per timed
// training step what Kokkos did (View allocations, deep copies, kernel launches), counted by its tool
// callbacks (sama/core/kokkos_counters.hpp). Runs on any number of ranks (the global batch of 128 is
// split between them) with the threads per rank that main() applied (threads.hpp), and records both.
#include "sama/app/commands.hpp"
#include "sama/app/deck.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/threads.hpp"
#include "sama/core/timer.hpp"
#include "sama/io/run_files.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <ostream>

namespace sama::app {
namespace {

struct Record {
  std::string model, method, hidden;  // hidden: the MLP's widths, or the ResNet's depth and width
  long batch = 0;
  double samples_per_s = 0, achieved_gflops = 0, sgemm_gflops = 0, peak_rss_mb = 0;
  StepCounts counts;  // per timed step (steps = 0: not counted)
  double gemm_fraction = 0;  // share of the training time spent inside GEMMs (measured)
};

/// Replays the recorded GEMM calls alone (same shapes, same transposes) and returns GFLOP/s.
double replay_gflops(const std::vector<GemmRecorder::Call>& calls) {
  if (calls.empty()) return 0;
  std::map<std::size_t, Mat<float>> pool;  // one buffer per size, reused
  auto buffer = [&](std::size_t rows, std::size_t cols, int which) {
    auto& m = pool[(rows * cols) * 4 + static_cast<std::size_t>(which)];
    if (m.extent(0) != rows || m.extent(1) != cols) {
      m = make_mat<float>("sama::bench::replay", rows, cols);
      Kokkos::deep_copy(m, 0.01f);
    }
    return MatU<float>(m.data(), rows, cols);
  };
  double flops = 0, seconds = 0;
  for (int rep = 0; rep < 100 && seconds < 1.0; ++rep) {
    Timer t;
    for (const auto& c : calls) {
      const auto a = c.op_a == Op::N ? buffer(c.m, c.k, 0) : buffer(c.k, c.m, 0);
      const auto b = c.op_b == Op::N ? buffer(c.k, c.n, 1) : buffer(c.n, c.k, 1);
      gemm<float>(c.op_a, c.op_b, 1.0f, a, b, 0.0f, buffer(c.m, c.n, 2));
      flops += 2.0 * double(c.m) * double(c.n) * double(c.k);
    }
    Kokkos::fence();
    seconds += t.seconds();
  }
  return flops / seconds * 1e-9;
}

/// "256,256" -> {256, 256}: the hidden widths of one MLP.
std::vector<long> parse_hidden(const std::string& text) {
  std::vector<long> widths;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const long w = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || end != item.c_str() + item.size() || w <= 0 || w > 1000000)
      fail("sama bench --hidden: '{}' is not a comma-separated list of positive widths", text);
    widths.push_back(w);
    pos = comma + 1;
  }
  return widths;
}

}  // namespace

int run_bench(const BenchArgs& args, const comm::Communicator& comm, std::ostream& out) {
  const bool resnet = args.model == "resnet";
  std::vector<std::vector<long>> sizes = {{256, 256}, {100}};
  if (resnet) sizes = {{args.resnet_depth, args.resnet_width}};
  if (!args.hidden.empty()) {
    if (resnet) fail("sama bench --hidden: widths of an MLP; the ResNet takes --resnet-width and --resnet-depth");
    sizes.clear();
    for (const auto& h : args.hidden) sizes.push_back(parse_hidden(h));
  }
  std::vector<std::string> methods = {"none", "sama"};
  if (resnet) methods = {"none", "sama", "cg", "unrolled"};
  if (!args.methods.empty()) methods = args.methods;
  for (const auto& m : methods)
    if (m != "none" && m != "sama" && !(resnet && (m == "cg" || m == "unrolled")))
      fail("sama bench --method: '{}' is not none or sama{} (see --hypergradients)", m,
           resnet ? ", cg or unrolled" : "");
  const bool root = comm.rank() == 0;
  const auto& plan = threads::applied();
  const int kokkos = ExecSpace().concurrency();
  const int blas = blas_threads();
  std::vector<Record> records;
  if (root) {
    if (resnet)
      out << fmt::format("sama bench: ResNet-{} width {} on 1x28x28 images (10 classes), batch 128 (global), synthetic "
                         "data, {} rank(s), {} timed steps after {}; cg and unrolled with K = 5\n",
                         args.resnet_depth, args.resnet_width, comm.size(), args.steps, args.warmup);
    else
      out << fmt::format("sama bench: MLP 784-H-10, batch 128 (global), synthetic data, {} rank(s), {} timed steps after {}\n",
                         comm.size(), args.steps, args.warmup);
    out << fmt::format("threads: {}\n", threads_report());
    out << fmt::format("{:<10} {:<8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>8}\n", "hidden", "method", "samples/s",
                       "GEMM GF/s", "sgemm GF/s", "ratio", "RSS MB", "GEMM %");
  }
  for (const auto& hidden : sizes) {
    for (const auto& method : methods) {
      Deck deck = parse_deck("", "bench");
      deck.data.source = "synthetic";
      deck.data.synthetic_features = 784;
      if (resnet) {
        deck.data.synthetic_shape = {1, 28, 28};
        deck.model.arch = "resnet";
        deck.model.depth = hidden[0];
        deck.model.width = hidden[1];
        deck.train.eval_batch = 128;  // (the arena is planned for the largest batch)
        if (method == "cg" || method == "unrolled") deck.meta.k = 5;
      }
      deck.data.synthetic_classes = 10;
      deck.data.synthetic_train = 8192;
      deck.data.synthetic_test = 256;
      deck.data.meta_size = 1000;
      if (!resnet) deck.model.hidden = hidden;
      deck.optimizer.cfg.name = "adam";
      deck.optimizer.lr = 1e-3;
      deck.train.batch_size = 128;
      deck.meta.batch_size = 128;
      deck.train.steps = args.warmup + args.steps;
      deck.train.log_interval = deck.train.steps;
      deck.train.eval_interval = deck.train.steps;
      deck.meta.method = method;
      malloc_trim(0);
      reset_peak_rss();
      RunOptions opt;
      opt.untimed_steps = args.warmup;
      opt.record_gemm_calls = true;
      opt.count_kokkos = args.counters;
      const RunResult r = train(deck, opt, comm);
      Record rec;
      rec.model = args.model;
      rec.method = method;
      rec.hidden = resnet ? fmt::format("{}x{}", hidden[0], hidden[1]) : fmt::format("{}", fmt::join(hidden, ","));
      rec.batch = 128;
      rec.samples_per_s = r.samples_per_second;
      // Per rank: the FLOPs of this rank's GEMMs (its share of the batch) over the training time.
      rec.achieved_gflops = r.gemm_flops / r.train_seconds * 1e-9;
      rec.sgemm_gflops = replay_gflops(r.gemm_calls);
      rec.peak_rss_mb = r.peak_rss_mb;
      rec.counts = per_step_counts(r, args.warmup);
      rec.gemm_fraction = r.gemm_seconds / r.train_seconds;
      records.push_back(rec);
      if (root)
        out << fmt::format("{:<10} {:<8} {:>12.0f} {:>12.2f} {:>12.2f} {:>10.3f} {:>10.1f} {:>8.1f}\n", rec.hidden,
                           rec.method, rec.samples_per_s, rec.achieved_gflops, rec.sgemm_gflops,
                           rec.achieved_gflops / rec.sgemm_gflops, rec.peak_rss_mb, 100 * rec.gemm_fraction);
    }
  }
  if (!root) return 0;
  const char* size_name = resnet ? "resnet" : "hidden";
  for (std::size_t i = 0; i < records.size(); ++i)
    for (std::size_t j = 0; j < records.size(); ++j) {
      const Record &a = records[i], &b = records[j];
      if (a.hidden != b.hidden) continue;
      if (a.method == "none" && b.method != "none")
        out << fmt::format("{} {}: {}/none peak RSS {:.3f}, {}/none samples/s {:.3f}\n", size_name, a.hidden, b.method,
                           b.peak_rss_mb / a.peak_rss_mb, b.method, b.samples_per_s / a.samples_per_s);
      if (a.method == "sama" && (b.method == "cg" || b.method == "unrolled"))
        out << fmt::format("{} {}: sama/{} iterations/s {:.3f} (K = 5)\n", size_name, a.hidden, b.method,
                           a.samples_per_s / b.samples_per_s);
    }
  if (args.counters) {
    out << "Kokkos per timed step (tool callbacks): View allocations in host / device memory (most in one step), "
           "deep copies host->device, device->host, within a space, aliased (no data moved), fills; kernel "
           "launches; profiling regions\n";
    out << fmt::format("{:<10} {:<8} {:>7} {:>7} {:>5} {:>7} {:>7} {:>7} {:>8} {:>7} {:>8} {:>8}\n", "hidden", "method",
                       "alloc H", "alloc D", "max", "H->D", "D->H", "same", "aliased", "fills", "kernels", "regions");
    for (const auto& r : records) {
      const StepCounts& c = r.counts;
      out << fmt::format("{:<10} {:<8} {:>7.2f} {:>7.2f} {:>5} {:>7.2f} {:>7.2f} {:>7.2f} {:>8.2f} {:>7.2f} {:>8.1f} {:>8.1f}\n",
                         r.hidden, r.method, c.host_allocations, c.device_allocations, c.max_allocations,
                         c.copies_host_to_device, c.copies_device_to_host, c.copies_same_space, c.copies_aliased,
                         c.fills, c.kernels, c.regions);
    }
  }
  if (!args.json.empty()) {
    std::ofstream js(args.json);
    if (!js) fail("cannot create '{}'", args.json);
    js << "[\n";
    for (std::size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      const StepCounts& c = r.counts;
      const std::string counts =
          args.counters
              ? fmt::format(
                    ", \"counted_steps\": {}, \"view_allocations_host_per_step\": {:.6g}, "
                    "\"view_allocations_device_per_step\": {:.6g}, \"view_allocations_max_in_a_step\": {}, "
                    "\"deep_copies_host_to_device_per_step\": {:.6g}, \"deep_copies_device_to_host_per_step\": {:.6g}, "
                    "\"deep_copies_same_space_per_step\": {:.6g}, \"deep_copies_aliased_per_step\": {:.6g}, "
                    "\"fills_per_step\": {:.6g}, \"kernel_launches_per_step\": {:.6g}, \"regions_per_step\": {:.6g}",
                    c.steps, c.host_allocations, c.device_allocations, c.max_allocations, c.copies_host_to_device,
                    c.copies_device_to_host, c.copies_same_space, c.copies_aliased, c.fills, c.kernels, c.regions)
              : std::string();
      js << fmt::format(
          "  {{\"model\": \"{}\", \"method\": \"{}\", \"hidden\": \"{}\", \"batch\": {}, \"samples_per_s\": {:.6g}, "
          "\"achieved_gflops\": {:.6g}, \"sgemm_gflops\": {:.6g}, \"ratio_to_sgemm\": {:.6g}, \"peak_rss_mb\": {:.6g}, "
          "\"ranks\": {}, \"threads_per_rank\": {}, \"threads_source\": {}, \"kokkos_space\": \"{}\", "
          "\"kokkos_concurrency\": {}, \"blas_threads\": {}, \"gemm_time_fraction\": {:.6g}{}}}{}\n",
          r.model, r.method, r.hidden, r.batch, r.samples_per_s, r.achieved_gflops, r.sgemm_gflops,
          r.achieved_gflops / r.sgemm_gflops, r.peak_rss_mb, comm.size(), plan.threads_per_rank,
          io::json_string(plan.source), ExecSpace::name(), kokkos, blas, r.gemm_fraction, counts,
          i + 1 < records.size() ? "," : "");
    }
    js << "]\n";
    if (!js) fail("cannot write '{}'", args.json);
  }
  return 0;
}

}  // namespace sama::app
