#include "sama/app/deck.hpp"

#include "sama/core/error.hpp"
#include "sama/io/safe_file.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace sama::app {
namespace {


/// Reads every field from a table (checking type, range and choices) or writes every field into one.
/// The list of fields is written once, in describe(), and serves both directions.
class Binder {
 public:
  enum class Mode { read, write };
  Binder(toml::table& table, Mode mode, std::string file) : table_(table), mode_(mode), file_(std::move(file)) {}

  void field(const std::string& key, long& v, double lo, double hi) {
    known_.insert(key);
    if (mode_ == Mode::write) return put(key, toml::value<int64_t>(v));
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_integer()) type_error(key, *n, "an integer");
    const auto x = n->as_integer()->get();
    check_range(key, *n, static_cast<double>(x), lo, hi);
    v = static_cast<long>(x);
  }
  void field(const std::string& key, double& v, double lo, double hi, bool open_lo = false) {
    known_.insert(key);
    if (mode_ == Mode::write) return put(key, toml::value<double>(v));
    const toml::node* n = find(key);
    if (!n) return;
    double x;
    if (n->is_floating_point()) x = n->as_floating_point()->get();
    else if (n->is_integer()) x = static_cast<double>(n->as_integer()->get());
    else type_error(key, *n, "a number");
    if (!std::isfinite(x)) fail("{}: key '{}': value must be finite", where(*n), key);
    if (open_lo && x <= lo) fail("{}: key '{}' = {} must be greater than {}", where(*n), key, x, lo);
    check_range(key, *n, x, lo, hi);
    v = x;
  }
  void field(const std::string& key, bool& v) {
    known_.insert(key);
    if (mode_ == Mode::write) return put(key, toml::value<bool>(v));
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_boolean()) type_error(key, *n, "a boolean (true or false)");
    v = n->as_boolean()->get();
  }
  void field(const std::string& key, std::string& v, const std::vector<std::string>& choices = {}) {
    known_.insert(key);
    if (mode_ == Mode::write) return put(key, toml::value<std::string>(v));
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_string()) type_error(key, *n, "a string");
    const std::string x = n->as_string()->get();
    if (!choices.empty() && std::find(choices.begin(), choices.end(), x) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      fail("{}: key '{}' = \"{}\" is not one of: {}", where(*n), key, x, list);
    }
    v = x;
  }
  void field(const std::string& key, std::vector<long>& v, double lo, double hi) {
    known_.insert(key);
    if (mode_ == Mode::write) {
      toml::array a;
      for (long x : v) a.push_back(static_cast<int64_t>(x));
      return put(key, std::move(a));
    }
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_array()) type_error(key, *n, "an array of integers");
    std::vector<long> out;
    for (const auto& e : *n->as_array()) {
      if (!e.is_integer()) type_error(key, e, "an array of integers");
      const auto x = e.as_integer()->get();
      check_range(key, e, static_cast<double>(x), lo, hi);
      out.push_back(static_cast<long>(x));
    }
    v = out;
  }

  /// Every key present in the table must be one of the fields.
  void reject_unknown() const { walk(table_, ""); }

 private:
  const toml::node* find(const std::string& key) const {
    const auto dot = key.find('.');
    const auto* section = table_.get(key.substr(0, dot));
    if (!section) return nullptr;
    if (!section->is_table()) fail("{}: '{}' must be a table ([{}])", where(*section), key.substr(0, dot), key.substr(0, dot));
    return section->as_table()->get(key.substr(dot + 1));
  }
  template <class V>
  void put(const std::string& key, V&& value) {
    const auto dot = key.find('.');
    const std::string sec = key.substr(0, dot);
    if (!table_.contains(sec)) table_.insert(sec, toml::table{});
    table_.get(sec)->as_table()->insert_or_assign(key.substr(dot + 1), std::forward<V>(value));
  }
  std::string where(const toml::node& n) const {
    const auto& src = n.source();
    if (src.begin.line == 0) return file_ + " (--set)";
    return fmt::format("{}:{}", file_, src.begin.line);
  }
  [[noreturn]] void type_error(const std::string& key, const toml::node& n, const char* expected) const {
    static const char* names[] = {"nothing", "a table", "an array", "a string", "an integer", "a float",
                                  "a boolean", "a date", "a time", "a date-time"};
    fail("{}: key '{}' must be {}, got {}", where(n), key, expected, names[static_cast<int>(n.type())]);
  }
  void check_range(const std::string& key, const toml::node& n, double x, double lo, double hi) const {
    if (x < lo || x > hi) {
      const std::string lo_s = std::isinf(lo) ? "-inf" : fmt::format("{}", lo);
      const std::string hi_s = std::isinf(hi) ? "inf" : fmt::format("{}", hi);
      fail("{}: key '{}' = {} is out of range [{}, {}]", where(n), key, x, lo_s, hi_s);
    }
  }
  void walk(const toml::table& t, const std::string& prefix) const {
    for (const auto& [k, node] : t) {
      const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (node.is_table() && prefix.empty()) {
        walk(*node.as_table(), key);
        continue;
      }
      if (!known_.count(key)) fail("{}: unknown key '{}'", where(node), key);
    }
  }

  toml::table& table_;
  Mode mode_;
  std::string file_;
  std::set<std::string> known_;
};

void describe(Binder& b, Deck& d) {
  auto& da = d.data;
  b.field("data.source", da.source, {"fashion_mnist", "hdf5", "synthetic"});
  b.field("data.path", da.path);
  b.field("data.train_file", da.train_file);
  b.field("data.test_file", da.test_file);
  b.field("data.meta_size", da.meta_size, 1, 1e9);
  b.field("data.noise_type", da.noise_type, {"none", "uniform", "pair"});
  b.field("data.noise_rate", da.noise_rate, 0.0, 1.0);
  b.field("data.synthetic_train", da.synthetic_train, 16, 1e8);
  b.field("data.synthetic_test", da.synthetic_test, 1, 1e8);
  b.field("data.synthetic_features", da.synthetic_features, 1, 1e6);
  b.field("data.synthetic_classes", da.synthetic_classes, 2, 1000);
  b.field("data.synthetic_separation", da.synthetic_separation, 0.0, 1e3, true);
  b.field("data.synthetic_shape", da.synthetic_shape, 1, 1e5);
  b.field("data.seed", da.seed, 0, 9.2e18);
  b.field("data.keep_mask", da.keep_mask);
  b.field("data.augment", da.augment, {"none", "crop_flip"});
  b.field("data.augment_padding", da.augment_padding, 0, 64);

  auto& mo = d.model;
  b.field("model.arch", mo.arch, {"mlp", "cnn", "resnet"});
  b.field("model.hidden", mo.hidden, 1, 1e6);
  b.field("model.activation", mo.activation, {"relu", "gelu", "tanh"});
  b.field("model.channels", mo.channels, 1, 1e5);
  b.field("model.depth", mo.depth, 8, 1000);
  b.field("model.blocks", mo.blocks, 1, 1000);
  b.field("model.width", mo.width, 1, 1e5);
  b.field("model.width_multiplier", mo.width_multiplier, 0.0, 64.0, true);
  b.field("model.batchnorm", mo.batchnorm);
  b.field("model.sync_batchnorm", mo.sync_batchnorm);
  b.field("model.bn_momentum", mo.bn_momentum, 0.0, 1.0);
  b.field("model.bn_eps", mo.bn_eps, 0.0, 1.0, true);

  auto& o = d.optimizer;
  b.field("optimizer.name", o.cfg.name, {"sgd", "adam", "adamw", "adagrad", "rmsprop", "lion", "lamb"});
  b.field("optimizer.lr", o.lr, 0.0, 1e3, true);
  b.field("optimizer.momentum", o.cfg.momentum, 0.0, 0.999999);
  b.field("optimizer.nesterov", o.cfg.nesterov);
  b.field("optimizer.weight_decay", o.cfg.weight_decay, 0.0, 1e3);
  b.field("optimizer.beta1", o.cfg.beta1, 0.0, 0.999999);
  b.field("optimizer.beta2", o.cfg.beta2, 0.0, 0.999999);
  b.field("optimizer.eps", o.cfg.eps, 0.0, 1.0, true);
  b.field("optimizer.alpha", o.cfg.alpha, 0.0, 0.999999);
  b.field("optimizer.centered", o.cfg.centered);
  b.field("optimizer.initial_accumulator", o.cfg.initial_accumulator, 0.0, 1e6);
  b.field("optimizer.lion_surrogate", o.cfg.lion_surrogate, {"tanh", "identity", "zero"});
  b.field("optimizer.lion_temperature", o.cfg.lion_temperature, 0.0, 1e6, true);

  auto& s = d.schedule;
  b.field("schedule.name", s.name, {"constant", "step", "cosine"});
  b.field("schedule.warmup_steps", s.warmup_steps, 0, 1e12);
  b.field("schedule.step_size", s.step_size, 1, 1e12);
  b.field("schedule.gamma", s.gamma, 0.0, 1.0, true);
  b.field("schedule.min_lr_ratio", s.min_lr_ratio, 0.0, 1.0);

  auto& t = d.train;
  b.field("train.seed", t.seed, 0, 9.2e18);
  b.field("train.epochs", t.epochs, 1, 1e9);
  b.field("train.steps", t.steps, 0, 1e12);
  b.field("train.batch_size", t.batch_size, 1, 1e7);
  b.field("train.log_interval", t.log_interval, 1, 1e12);
  b.field("train.eval_interval", t.eval_interval, 0, 1e12);
  b.field("train.eval_batch", t.eval_batch, 1, 1e7);
  b.field("train.max_nonfinite", t.max_nonfinite, 1, 1e9);

  auto& m = d.meta;
  b.field("meta.method", m.method, {"none", "sama", "finite_difference", "sama_jvp", "neumann", "cg", "unrolled"});
  b.field("meta.interval", m.interval, 1, 1e9);
  b.field("meta.warmup", m.warmup, 0, 1e12);
  b.field("meta.alpha", m.alpha, 0.0, 1e6, true);
  b.field("meta.lr", m.lr, 0.0, 1e3, true);
  b.field("meta.weight_decay", m.weight_decay, 0.0, 1e3);
  b.field("meta.beta1", m.beta1, 0.0, 0.999999);
  b.field("meta.beta2", m.beta2, 0.0, 0.999999);
  b.field("meta.eps", m.eps, 0.0, 1.0, true);
  b.field("meta.batch_size", m.batch_size, 1, 1e7);
  b.field("meta.hidden", m.hidden, 1, 1e6);
  b.field("meta.normalize", m.normalize);
  b.field("meta.weight_net", m.weight_net, {"softmax", "monotone", "sigmoid"});
  b.field("meta.collapse_spread", m.collapse_spread, 0.0, 1e3);
  b.field("meta.strategy", m.strategy, {"local", "global"});
  b.field("meta.k", m.k, 1, 1e5);
  b.field("meta.neumann_alpha", m.neumann_alpha, 0.0, 1e6, true);
  b.field("meta.cg_damping", m.cg_damping, 0.0, 1e9);
  b.field("meta.hvp", m.hvp, {"exact", "finite_difference"});
  b.field("meta.hvp_radius", m.hvp_radius, 0.0, 1e6, true);
  b.field("meta.diagnose_every", m.diagnose_every, 0, 1e12);
  b.field("meta.diagnose_reference", m.diagnose_reference, {"cg", "unrolled"});
  b.field("meta.diagnose_k", m.diagnose_k, 1, 1e5);

  b.field("scores.enabled", d.scores.enabled);
  b.field("scores.early_epochs", d.scores.early_epochs, -1, 1e9);
  b.field("scores.meta_weight_epochs", d.scores.meta_weight_epochs, -1, 1e9);
  b.field("scores.detection_epochs", d.scores.detection_epochs, -1, 1e9);

  b.field("parallel.backend", d.parallel.backend, {"mpi", "nccl"});
  b.field("parallel.bucket_mb", d.parallel.bucket_mb, -1.0, 1e6);
  b.field("parallel.check_replicas", d.parallel.check_replicas, 0, 1e12);
  b.field("parallel.gpu_aware_mpi", d.parallel.gpu_aware_mpi);

  b.field("checkpoint.every_steps", d.checkpoint.every_steps, 0, 1e12);
  b.field("checkpoint.every_minutes", d.checkpoint.every_minutes, 0.0, 1e9);
  b.field("checkpoint.keep", d.checkpoint.keep, 1, 1e6);
  b.field("checkpoint.wall_time_minutes", d.checkpoint.wall_time_minutes, 0.0, 1e9);

  b.field("debug.fail_step", d.debug.fail_step, -1, 1e12);
  b.field("debug.fail_rank", d.debug.fail_rank, -1, 1e7);
  b.field("debug.nan_step", d.debug.nan_step, -1, 1e12);
  b.field("debug.nan_rank", d.debug.nan_rank, -1, 1e7);
  b.field("debug.nan_count", d.debug.nan_count, 1, 1e12);
  b.field("debug.preempt_step", d.debug.preempt_step, -1, 1e12);
}

/// toml++ recurses once per level of table nesting but limits only inline arrays and tables (256
/// levels): a key or table header with some 50,000 dotted parts overflows the stack inside
/// toml::parse. A deck needs a handful of dots; refuse a text with more than kMaxDots of them outside
/// strings and comments before parsing it.
constexpr long kMaxDots = 4096;
void check_dots(const std::string& text, const std::string& where) {
  long line = 1, dots = 0;
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == '#') {  // a comment, to the end of the line
      while (i < n && text[i] != '\n') ++i;
    } else if (c == '"' || c == '\'') {  // a string, one-line or multi-line ("""/'''), skipped
      const std::string close(text.compare(i, 3, std::string(3, c)) == 0 ? 3 : 1, c);
      for (i += close.size(); i < n; ++i) {
        if (text[i] == '\n' && close.size() == 1) break;  // unterminated: toml++ reports it
        if (text[i] == '\n') ++line;
        if (text[i] == '\\' && c == '"' && i + 1 < n) {
          if (text[++i] == '\n') ++line;
        } else if (text.compare(i, close.size(), close) == 0) {
          i += close.size();
          break;
        }
      }
    } else {
      if (c == '\n') ++line;
      if (c == '.' && ++dots > kMaxDots)
        fail("{}:{}: more than {} dots outside strings (keys or tables nested that deeply are not a sama deck)",
             where, line, kMaxDots);
      ++i;
    }
  }
}

void apply_override(toml::table& table, const std::string& file, const std::string& spec) {
  const auto eq = spec.find('=');
  const auto dot = spec.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
    fail("{}: --set '{}' must look like section.key=value", file, spec);
  const std::string section = spec.substr(0, dot);
  const std::string key = spec.substr(dot + 1, eq - dot - 1);
  const std::string value = spec.substr(eq + 1);
  toml::table holder;
  check_dots(value, file + " (--set " + spec.substr(0, eq) + ")");
  try {
    holder = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    holder = toml::table{};
    holder.insert("v", value);  // a bare word: take it as a string
  }
  toml::node* v = holder.get("v");
  if (!table.contains(section)) table.insert(section, toml::table{});
  auto* sec = table.get(section)->as_table();
  if (!sec) fail("{}: --set '{}': '{}' is not a table", file, spec, section);
  // Copy without source positions so messages say "(--set)".
  v->visit([&](auto&& node) {
    using N = std::decay_t<decltype(node)>;
    if constexpr (toml::is_value<N>) {
      sec->insert_or_assign(key, N(node.get()));
    } else if constexpr (std::is_same_v<N, toml::array>) {
      toml::array a;
      for (auto& e : node) e.visit([&](auto&& x) {
          using E = std::decay_t<decltype(x)>;
          if constexpr (toml::is_value<E>) a.push_back(E(x.get()));
        });
      sec->insert_or_assign(key, std::move(a));
    } else {
      fail("{}: --set '{}': tables cannot be set from the command line", file, spec);
    }
  });
}

/// The hypergradient keys: each set away from its default must be used by the method or the
/// diagnostic; `unrolled` needs an optimizer it can reverse.
void validate_meta(const Deck& d) {
  if (d.meta.weight_net == "softmax" && !d.meta.normalize)
    fail("{}: meta.weight_net = \"softmax\" is a softmax over the batch and needs meta.normalize = true (for "
         "un-normalised weights use \"monotone\", in (0, 1], or \"sigmoid\")",
         d.file);
  const std::string& f = d.file;
  const MetaConfig& m = d.meta;
  const MetaConfig def;
  const std::string& opt = d.optimizer.cfg.name;
  const bool diagnose = m.diagnose_every > 0;
  auto reversible = [](const std::string& o) { return o == "sgd" || o == "adam" || o == "adamw"; };
  if (m.method == "unrolled" && !reversible(opt))
    fail("{}: meta.method = \"unrolled\" reverses sgd, adam and adamw steps exactly; optimizer.name is \"{}\" "
         "(use another meta.method, e.g. \"cg\" or \"sama_jvp\")",
         f, opt);
  if (diagnose && m.method == "none")
    fail("{}: meta.diagnose_every = {} compares a meta method's hypergradient with a reference, but meta.method is "
         "\"none\"",
         f, m.diagnose_every);
  if (diagnose && m.diagnose_reference == "unrolled" && !reversible(opt))
    fail("{}: meta.diagnose_reference = \"unrolled\" reverses sgd, adam and adamw steps exactly; optimizer.name is "
         "\"{}\" (use \"cg\")",
         f, opt);
  if (!diagnose && m.diagnose_reference != def.diagnose_reference)
    fail("{}: meta.diagnose_reference = \"{}\" applies only with meta.diagnose_every > 0", f, m.diagnose_reference);
  if (!diagnose && m.diagnose_k != def.diagnose_k)
    fail("{}: meta.diagnose_k = {} applies only with meta.diagnose_every > 0", f, m.diagnose_k);
  const bool iterative = m.method == "neumann" || m.method == "cg" || m.method == "unrolled";
  if (m.k != def.k && !iterative)
    fail("{}: meta.k = {} applies to meta.method \"neumann\", \"cg\" and \"unrolled\"; meta.method is \"{}\"", f,
         m.k, m.method);
  if (m.neumann_alpha != def.neumann_alpha && m.method != "neumann")
    fail("{}: meta.neumann_alpha = {} applies to meta.method = \"neumann\" only; meta.method is \"{}\"", f,
         m.neumann_alpha, m.method);
  const bool cg_reference = diagnose && m.diagnose_reference == "cg";
  if (m.cg_damping != def.cg_damping && m.method != "cg" && !cg_reference)
    fail("{}: meta.cg_damping = {} applies to meta.method = \"cg\" or meta.diagnose_reference = \"cg\"; meta.method "
         "is \"{}\"",
         f, m.cg_damping, m.method);
  if (m.hvp != def.hvp && !iterative && !diagnose)
    fail("{}: meta.hvp = \"{}\" applies to methods that form Hessian-vector products (neumann, cg, unrolled) or to "
         "the diagnostic; meta.method is \"{}\"",
         f, m.hvp, m.method);
  if (m.hvp_radius != def.hvp_radius && m.hvp != "finite_difference")
    fail("{}: meta.hvp_radius = {} applies to meta.hvp = \"finite_difference\" only; meta.hvp is \"{}\"", f,
         m.hvp_radius, m.hvp);
}

void validate(const Deck& d) {
  const std::string& f = d.file;
  if (d.data.source == "hdf5" && (d.data.train_file.empty() || d.data.test_file.empty()))
    fail("{}: data.source = \"hdf5\" needs data.train_file and data.test_file", f);
  if (d.data.noise_type == "none" && d.data.noise_rate != 0.0)
    fail("{}: data.noise_rate = {} contradicts data.noise_type = \"none\" (set the rate to 0 or choose a type)", f,
         d.data.noise_rate);
  const std::pair<const char*, const std::vector<long>*> windows[] = {
      {"scores.early_epochs", &d.scores.early_epochs}, {"scores.meta_weight_epochs", &d.scores.meta_weight_epochs},
      {"scores.detection_epochs", &d.scores.detection_epochs}};
  for (const auto& [key, w] : windows) {
    if (w->size() != 2) fail("{}: {} must be [first, last] (two epochs, last excluded), got {} values", f, key, w->size());
    const bool dflt = (*w)[0] == -1 && (*w)[1] == -1;
    if (!dflt && ((*w)[0] < 0 || (*w)[1] <= (*w)[0]))
      fail("{}: {} = [{}, {}] must satisfy 0 <= first < last (or be [-1, -1] for the default)", f, key, (*w)[0],
           (*w)[1]);
  }
  if (!d.data.synthetic_shape.empty() && d.data.synthetic_shape.size() != 2 && d.data.synthetic_shape.size() != 3)
    fail("{}: data.synthetic_shape must be [H, W] or [C, H, W], got {} values", f, d.data.synthetic_shape.size());
  if (d.model.arch == "mlp" && d.model.hidden.empty())
    fail("{}: model.hidden must list at least one hidden width", f);
  if (d.model.arch == "cnn" && d.model.channels.empty())
    fail("{}: model.channels must list at least one convolution stage", f);
  if (d.model.arch == "resnet" && d.model.blocks.empty() && (d.model.depth - 2) % 6 != 0)
    fail("{}: model.depth = {} is not 6n + 2 (8, 14, 20, 26, 32, ...); or give model.blocks per stage", f,
         d.model.depth);
  if (d.model.arch == "resnet" && !d.model.blocks.empty() && d.model.blocks.size() > 6)
    fail("{}: model.blocks lists {} stages; at most 6 (each halves the image)", f, d.model.blocks.size());
  if (d.data.augment != "none" && d.model.arch == "mlp")
    fail("{}: data.augment = \"{}\" needs an image model (model.arch = \"cnn\" or \"resnet\")", f, d.data.augment);
  if (d.optimizer.cfg.nesterov && d.optimizer.cfg.momentum <= 0)
    fail("{}: optimizer.nesterov = true needs optimizer.momentum > 0", f);
  // Options of one optimizer set (away from their defaults) for another are contradictions.
  const optim::OptimizerConfig& oc = d.optimizer.cfg;
  const optim::OptimizerConfig od;
  const std::string& on = oc.name;
  if (oc.nesterov && on != "sgd")
    fail("{}: optimizer.nesterov applies to \"sgd\" only; optimizer.name is \"{}\"", f, on);
  if (oc.momentum != 0 && on != "sgd" && on != "rmsprop")
    fail("{}: optimizer.momentum = {} applies to \"sgd\" and \"rmsprop\" only; optimizer.name is \"{}\"", f,
         oc.momentum, on);
  if (oc.centered && on != "rmsprop")
    fail("{}: optimizer.centered = true applies to \"rmsprop\" only; optimizer.name is \"{}\"", f, on);
  if (oc.alpha != od.alpha && on != "rmsprop")
    fail("{}: optimizer.alpha = {} applies to \"rmsprop\" only; optimizer.name is \"{}\"", f, oc.alpha, on);
  if (oc.initial_accumulator != od.initial_accumulator && on != "adagrad")
    fail("{}: optimizer.initial_accumulator = {} applies to \"adagrad\" only; optimizer.name is \"{}\"", f,
         oc.initial_accumulator, on);
  if (oc.lion_surrogate != od.lion_surrogate && on != "lion")
    fail("{}: optimizer.lion_surrogate = \"{}\" applies to \"lion\" only; optimizer.name is \"{}\"", f,
         oc.lion_surrogate, on);
  if (oc.lion_temperature != od.lion_temperature && on != "lion")
    fail("{}: optimizer.lion_temperature = {} applies to \"lion\" only; optimizer.name is \"{}\"", f,
         oc.lion_temperature, on);
  if (oc.lion_surrogate != "tanh" && oc.lion_temperature != od.lion_temperature)
    fail("{}: optimizer.lion_temperature = {} applies to optimizer.lion_surrogate = \"tanh\" only, not \"{}\"", f,
         oc.lion_temperature, oc.lion_surrogate);
  validate_meta(d);
}

Deck parse_table(toml::table& table, const std::string& name, const std::vector<std::string>& overrides) {
  std::vector<std::string> notes;
  if (table.empty())
    notes.push_back(fmt::format("deck '{}' sets no key: every key takes its default (e.g. {} epochs on {})", name,
                                TrainConfig{}.epochs, DataConfig{}.source));
  std::map<std::string, std::string> seen;  // --set key -> its earlier value
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    std::string key = o.substr(0, eq);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    while (!key.empty() && key.front() == ' ') key.erase(0, 1);
    if (eq != std::string::npos) {
      auto it = seen.find(key);
      if (it != seen.end())
        notes.push_back(fmt::format("--set {} is given more than once: '{}' replaces '{}' (the last one wins)", key,
                                    o.substr(eq + 1), it->second));
      seen[key] = o.substr(eq + 1);
    }
    apply_override(table, name, o);
  }
  Deck d;
  d.notes = notes;
  d.file = name;
  Binder b(table, Binder::Mode::read, name);
  describe(b, d);
  b.reject_unknown();
  validate(d);
  return d;
}

}  // namespace

Deck parse_deck(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  toml::table table;
  check_dots(text, name);
  try {
    table = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    fail("{}:{}: TOML syntax error: {}", name, e.source().begin.line, e.description());
  }
  return parse_table(table, name, overrides);
}

Deck load_deck(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("cannot read input deck '{}': it is a directory", path);
  // A regular file of at most 1 MiB: /dev/zero or a FIFO is refused instead of read forever.
  return parse_deck(io::read_regular_file(path, "input deck", 1 << 20).bytes, path, overrides);
}

std::string to_toml(const Deck& deck) {
  toml::table table;
  Deck copy = deck;
  Binder b(table, Binder::Mode::write, deck.file);
  describe(b, copy);
  std::ostringstream os;
  os << "# Resolved input deck written by sama: every key, defaults filled in.\n";
  os << "# Read from: " << deck.file << "\n\n";
  os << toml::toml_formatter(table, toml::toml_formatter::default_flags & ~toml::format_flags::indentation);
  os << "\n";
  return os.str();
}

std::string resume_incompatibility(const std::string& saved_toml, const Deck& current) {
  Deck saved;
  try {
    saved = parse_deck(saved_toml, "checkpoint deck");
  } catch (const Error& e) {
    return std::string("its deck does not parse: ") + e.what();
  }
  auto neutral = [](Deck d) {
    d.file.clear();
    d.checkpoint = CheckpointConfig{};
    d.debug = DebugConfig{};
    d.parallel = ParallelConfig{};
    d.train.log_interval = TrainConfig{}.log_interval;
    d.train.eval_interval = TrainConfig{}.eval_interval;
    d.train.max_nonfinite = TrainConfig{}.max_nonfinite;
    // The run's length may change on resume (extending a run): the learning-rate schedule then
    // follows the new length from the resume step on (docs: README "Resume").
    d.train.epochs = TrainConfig{}.epochs;
    d.train.steps = TrainConfig{}.steps;
    return to_toml(d);
  };
  const std::string a = neutral(saved), b = neutral(current);
  if (a == b) return "";
  // Name the first differing key, by section.
  std::istringstream sa(a), sb(b);
  std::string la, lb, section;
  while (std::getline(sa, la) && std::getline(sb, lb)) {
    if (!la.empty() && la[0] == '[') section = la;
    if (la != lb) return fmt::format("in {} the checkpoint has '{}', the deck has '{}'", section, la, lb);
  }
  return "the decks differ";
}

}  // namespace sama::app
