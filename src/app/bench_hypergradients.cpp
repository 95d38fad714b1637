// `sama bench --hypergradients`: every hypergradient method side by side on the same model and data:
// iterations/s, peak RSS (both also relative to `none` in the same run), the cosine of each method's
// λ-gradient to a reference (CG with many iterations) on the same batches, SAMA's meta step against
// its FLOP-count prediction, and `unrolled`'s memory against K.
#include "sama/app/commands.hpp"
#include "sama/app/deck.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/core/timer.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <cmath>
#include <fstream>
#include <ostream>

namespace sama::app {
namespace {

struct Config {
  std::string method;
  long k = 0;  // 0: the method has no K
};

struct HgRecord {
  Config cfg;
  std::string hidden;
  long batch = 0;
  double iterations_per_s = 0, samples_per_s = 0, peak_rss_mb = 0, cosine = NAN, norm_ratio = NAN;
  double gemm_flops_per_iteration = 0;
  StepCounts counts;  // Kokkos per timed iteration (steps = 0: not counted)
};

Deck bench_deck(const std::vector<long>& hidden, const Config& c, long steps) {
  std::vector<std::string> sets = {"data.source=synthetic", "data.synthetic_features=784", "data.synthetic_classes=10",
                                   "data.synthetic_train=8192", "data.synthetic_test=256", "data.meta_size=1000",
                                   "optimizer.name=adam", "optimizer.lr=1e-3", "train.batch_size=128",
                                   "meta.batch_size=128", "meta.method=" + c.method, "scores.enabled=false"};
  if (c.k > 0) sets.push_back(fmt::format("meta.k={}", c.k));
  Deck d = parse_deck("", "bench", sets);
  d.model.hidden = hidden;
  d.train.steps = steps;
  d.train.log_interval = steps;
  d.train.eval_interval = steps;
  return d;
}

}  // namespace

int run_bench_hypergradients(const BenchArgs& args, const comm::Communicator& comm, std::ostream& out) {
  if (comm.size() != 1) fail("sama bench runs on one rank (started on {})", comm.size());
  const std::vector<std::vector<long>> sizes = {{100}, {256, 256}};
  const std::vector<Config> configs = {{"none", 0},     {"sama", 0},   {"sama_jvp", 0}, {"finite_difference", 0},
                                       {"neumann", 1},  {"neumann", 5}, {"cg", 1},      {"cg", 5},
                                       {"unrolled", 1}, {"unrolled", 5}};
  const long reference_k = 50;  // the reference: CG with this many iterations, on the same batches
  std::vector<HgRecord> records;
  out << fmt::format(
      "sama bench --hypergradients: MLP 784-H-10, Adam, batch 128 (meta batch 128), synthetic data, one core, {} "
      "timed iterations after {}; cosine and norm ratio to cg K={} on the same batches, every 5th meta step of a "
      "separate run\n",
      args.steps, args.warmup, reference_k);
  out << fmt::format("{:<8} {:<18} {:>3} {:>10} {:>9} {:>8} {:>8} {:>7} {:>8} {:>10} {:>7} {:>8}\n", "hidden", "method",
                     "K", "iter/s", "vs none", "RSS MB", "vs none", "cosine", "|g|/|ref|", "GFLOP/iter", "allocs",
                     "kernels");
  for (const auto& hidden : sizes) {
    const std::size_t first = records.size();
    for (const auto& c : configs) {
      malloc_trim(0);
      reset_peak_rss();
      RunOptions opt;
      opt.untimed_steps = args.warmup;
      opt.count_kokkos = args.counters;
      const RunResult r = train(bench_deck(hidden, c, args.warmup + args.steps), opt, comm);
      HgRecord rec;
      rec.cfg = c;
      rec.hidden = fmt::format("{}", fmt::join(hidden, ","));
      rec.batch = 128;
      rec.samples_per_s = r.samples_per_second;
      rec.iterations_per_s = r.samples_per_second / 128.0;
      rec.peak_rss_mb = r.peak_rss_mb;
      rec.gemm_flops_per_iteration = r.gemm_flops / double(args.steps);
      rec.counts = per_step_counts(r, args.warmup);
      if (c.method != "none") {  // quality: a separate, untimed run with the diagnostic on
        Deck d = bench_deck(hidden, c, args.warmup + 50);
        d.meta.diagnose_every = 5;
        d.meta.diagnose_reference = "cg";
        d.meta.diagnose_k = reference_k;
        const RunResult q = train(d, RunOptions{}, comm);
        rec.cosine = q.mean_hypergrad_cosine;
        rec.norm_ratio = q.mean_hypergrad_norm_ratio;
      }
      records.push_back(rec);
      const HgRecord& none = records[first];
      const bool counted = rec.counts.steps > 0;
      out << fmt::format("{:<8} {:<18} {:>3} {:>10.1f} {:>9.3f} {:>8.1f} {:>8.3f} {:>7.4f} {:>8.3f} {:>10.4f} {:>7} {:>8}\n",
                         rec.hidden, c.method, c.k > 0 ? std::to_string(c.k) : "-", rec.iterations_per_s,
                         rec.iterations_per_s / none.iterations_per_s, rec.peak_rss_mb,
                         rec.peak_rss_mb / none.peak_rss_mb, rec.cosine, rec.norm_ratio,
                         rec.gemm_flops_per_iteration * 1e-9,
                         counted ? fmt::format("{:.2f}", rec.counts.host_allocations + rec.counts.device_allocations) : "-",
                         counted ? fmt::format("{:.1f}", rec.counts.kernels) : "-");
    }
    // SAMA's meta step against its FLOP-count prediction: the extra time per iteration over `none`,
    // against none's time per iteration scaled by the extra GEMM FLOPs (one meta forward and backward,
    // two base forwards), both measured in this run.
    const HgRecord& none = records[first];
    for (std::size_t i = first; i < records.size(); ++i) {
      const HgRecord& s = records[i];
      if (s.cfg.method != "sama" && s.cfg.method != "sama_jvp") continue;
      const double t_none = 1.0 / none.iterations_per_s, t_meta = 1.0 / s.iterations_per_s - t_none;
      const double predicted =
          t_none * (s.gemm_flops_per_iteration - none.gemm_flops_per_iteration) / none.gemm_flops_per_iteration;
      out << fmt::format("hidden {}: {} meta step {:.3f} ms, FLOP-count prediction {:.3f} ms: ratio {:.3f}\n",
                         s.hidden, s.cfg.method, 1e3 * t_meta, 1e3 * predicted, t_meta / predicted);
    }
    for (std::size_t i = first; i < records.size(); ++i) {
      const HgRecord& s = records[i];
      if (s.cfg.method != "sama") continue;
      for (const auto& o : records)
        if (o.hidden == s.hidden && (o.cfg.method == "cg" || o.cfg.method == "unrolled") && o.cfg.k == 5)
          out << fmt::format("hidden {}: sama / {} K=5 iterations/s {:.2f}\n", s.hidden, o.cfg.method,
                             s.iterations_per_s / o.iterations_per_s);
      out << fmt::format("hidden {}: sama / none peak RSS {:.3f}\n", s.hidden, s.peak_rss_mb / none.peak_rss_mb);
    }
  }
  // unrolled keeps K states: peak RSS against K on the larger model, with a least-squares line.
  std::vector<double> ks, rss;
  for (long k : {1L, 2L, 4L, 8L, 16L}) {
    malloc_trim(0);
    reset_peak_rss();
    RunOptions opt;
    opt.untimed_steps = args.warmup;
    const RunResult r = train(bench_deck({256, 256}, {"unrolled", k}, args.warmup + std::max(20L, 2 * k)), opt, comm);
    ks.push_back(double(k));
    rss.push_back(r.peak_rss_mb);
  }
  double mk = 0, mr = 0;
  for (std::size_t i = 0; i < ks.size(); ++i) mk += ks[i] / ks.size(), mr += rss[i] / ks.size();
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < ks.size(); ++i) {
    sxy += (ks[i] - mk) * (rss[i] - mr);
    sxx += (ks[i] - mk) * (ks[i] - mk);
    syy += (rss[i] - mr) * (rss[i] - mr);
  }
  const double slope = sxy / sxx, r2 = sxy * sxy / (sxx * syy);
  out << "unrolled, hidden 256,256: peak RSS MB by K:";
  for (std::size_t i = 0; i < ks.size(); ++i) out << fmt::format(" K={}: {:.1f}", ks[i], rss[i]);
  out << fmt::format("\nunrolled memory: {:.2f} MB per K (least squares, R^2 = {:.4f})\n", slope, r2);
  if (!args.json.empty()) {
    std::ofstream js(args.json);
    if (!js) fail("cannot create '{}'", args.json);
    js << "[\n";
    for (std::size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      const HgRecord* none = nullptr;
      for (const auto& o : records)
        if (o.hidden == r.hidden && o.cfg.method == "none") none = &o;
      const auto num = [](double x) { return std::isfinite(x) ? fmt::format("{:.6g}", x) : std::string("null"); };
      js << fmt::format(
          "  {{\"method\": \"{}\", \"k\": {}, \"hidden\": \"{}\", \"batch\": {}, \"iterations_per_s\": {}, "
          "\"samples_per_s\": {}, \"peak_rss_mb\": {}, \"iterations_per_s_vs_none\": {}, \"peak_rss_vs_none\": {}, "
          "\"cosine_to_reference\": {}, \"norm_ratio_to_reference\": {}, \"gemm_gflop_per_iteration\": {}{}}},\n",
          r.cfg.method, r.cfg.k, r.hidden, r.batch, num(r.iterations_per_s), num(r.samples_per_s),
          num(r.peak_rss_mb), num(r.iterations_per_s / none->iterations_per_s), num(r.peak_rss_mb / none->peak_rss_mb),
          num(r.cosine), num(r.norm_ratio), num(r.gemm_flops_per_iteration * 1e-9),
          r.counts.steps > 0
              ? fmt::format(", \"view_allocations_host_per_step\": {:.6g}, \"view_allocations_device_per_step\": {:.6g}, "
                            "\"view_allocations_max_in_a_step\": {}, \"deep_copies_host_to_device_per_step\": {:.6g}, "
                            "\"deep_copies_device_to_host_per_step\": {:.6g}, \"kernel_launches_per_step\": {:.6g}",
                            r.counts.host_allocations, r.counts.device_allocations, r.counts.max_allocations,
                            r.counts.copies_host_to_device, r.counts.copies_device_to_host, r.counts.kernels)
              : std::string());
    }
    for (std::size_t i = 0; i < ks.size(); ++i)
      js << fmt::format("  {{\"method\": \"unrolled_memory\", \"k\": {}, \"hidden\": \"256,256\", \"batch\": 128, "
                        "\"peak_rss_mb\": {:.6g}}}{}\n",
                        ks[i], rss[i], i + 1 < ks.size() ? "," : "");
    js << "]\n";
    if (!js) fail("cannot write '{}'", args.json);
  }
  return 0;
}

}  // namespace sama::app
