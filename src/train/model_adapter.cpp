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

Model make_model(const app::Deck& deck, std::size_t features, std::size_t classes, std::size_t workspace) {
  return Model(model_widths(deck, features, classes), nn::parse_activation(deck.model.activation), workspace);
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

std::string model_description(const app::Deck& deck, const Model& model) {
  return fmt::format("{}", fmt::join(model_widths(deck, model.net().in(), model.net().out()), "-"));
}

}  // namespace sama::training
