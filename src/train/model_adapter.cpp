// The trainer's view of the model (model_adapter.hpp): everything that looks inside the MLP.
#include "sama/train/model_adapter.hpp"

#include <fmt/format.h>

namespace sama::training {

std::vector<std::size_t> model_widths(const app::Deck& deck, std::size_t features, std::size_t classes) {
  std::vector<std::size_t> w{features};
  for (long h : deck.model.hidden) w.push_back(static_cast<std::size_t>(h));
  w.push_back(classes);
  return w;
}

nn::Shape input_shape(const app::Deck& deck, const std::vector<std::size_t>& sample_shape) {
  std::size_t features = 1;
  for (std::size_t d : sample_shape) features *= d;
  if (deck.model.arch == "mlp") return nn::Shape{features, 1, 1};
  if (sample_shape.size() == 2) return nn::Shape{1, sample_shape[0], sample_shape[1]};
  if (sample_shape.size() == 3) return nn::Shape{sample_shape[0], sample_shape[1], sample_shape[2]};
  fail("{}: model.arch = \"{}\" needs images ([N, H, W] or [N, C, H, W] samples), but the data's samples have {} "
       "dimension(s) ({} features){}",
       deck.file, deck.model.arch, sample_shape.size(), features,
       deck.data.source == "synthetic" ? ": data.source = \"synthetic\" makes flat feature vectors" : "");
}

std::unique_ptr<nn::Sequential<real>> make_graph(const app::Deck& deck, const std::vector<std::size_t>& sample_shape,
                                                 std::size_t classes) {
  const nn::Shape in = input_shape(deck, sample_shape);
  const auto& m = deck.model;
  if (m.arch == "mlp")
    return nn::make_mlp<real>(in, model_widths(deck, in.size(), classes), nn::parse_activation(m.activation));
  nn::ConvNetConfig c;
  for (long x : m.channels) c.channels.push_back(static_cast<std::size_t>(x));
  for (long x : m.hidden) c.hidden.push_back(static_cast<std::size_t>(x));
  for (long x : m.blocks) c.blocks.push_back(static_cast<std::size_t>(x));
  c.width = static_cast<std::size_t>(m.width);
  c.width_multiplier = m.width_multiplier;
  c.batchnorm = m.batchnorm;
  c.activation = nn::parse_activation(m.activation);
  c.bn_eps = m.bn_eps;
  c.bn_momentum = m.bn_momentum;
  try {
    if (m.arch == "cnn") return nn::make_cnn<real>(in, classes, c);
    if (c.blocks.empty()) c.blocks = nn::resnet_blocks_for_depth(static_cast<std::size_t>(m.depth));
    return nn::make_resnet<real>(in, classes, c);
  } catch (const Error& e) {
    fail("{}: the model ([model], arch \"{}\") cannot be built for {} inputs: {}", deck.file, m.arch,
         nn::to_string(in), e.what());
  }
}

Model make_model(const app::Deck& deck, const std::vector<std::size_t>& sample_shape, std::size_t classes,
                 std::size_t workspace) {
  return Model(make_graph(deck, sample_shape, classes), workspace);
}

ModelFootprint model_footprint(const app::Deck& deck, const std::vector<std::size_t>& sample_shape,
                               std::size_t classes, std::size_t workspace) {
  const auto graph = make_graph(deck, sample_shape, classes);  // modules only: nothing is allocated
  const nn::ModuleSizes s = graph->sizes(workspace);
  ModelFootprint f;
  f.params = static_cast<double>(graph->num_params());
  f.buffers = static_cast<double>(graph->num_buffers());
  f.workspace_bytes = sizeof(real) * (static_cast<double>(s.saved + s.scratch + s.tangent + s.upstream) +
                                      3.0 * static_cast<double>(workspace * graph->out()));
  return f;
}

std::string model_description(const app::Deck& deck, const Model& model) {
  if (deck.model.arch == "mlp")
    return fmt::format("{}", fmt::join(model_widths(deck, model.net().in(), model.net().out()), "-"));
  return fmt::format("{} {}", deck.model.arch, model.net().describe());
}

std::vector<std::pair<std::size_t, std::size_t>> layer_param_ranges(const Model& model) {
  return model.net().param_groups();
}

optim::OptimizerConfig base_optimizer_config(const app::Deck& deck, const Model& model) {
  optim::OptimizerConfig c = deck.optimizer.cfg;
  c.groups.clear();
  for (const auto& range : layer_param_ranges(model)) c.groups.emplace_back(range.first, range.second);
  return c;
}

std::vector<std::pair<std::size_t, std::size_t>> gradient_buckets(const Model& model) {
  return model.net().ready_groups();
}

void init_parameters(Model& model, Vec<real> theta, Rng& rng) { model.init(theta, rng); }

void collect_sample_grad_norms(Model& model, VecU<real> sq_norms) { model.net().set_sample_grad_norms(sq_norms); }



}  // namespace sama::training
