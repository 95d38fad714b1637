#pragma once
// Every place where the trainer looks inside the model (its MLP's layers): the widths, the layers'
// parameter ranges (LAMB's groups, the gradient reducer's buckets), the initialisation and the
// per-sample gradient norms. A new model changes these functions, not the training loop.
#include "sama/app/deck.hpp"
#include "sama/core/rng.hpp"
#include "sama/core/types.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/train/data.hpp"

#include <memory>

#include <string>
#include <utility>
#include <vector>

namespace sama::training {

using real = float;
using Model = nn::Classifier<real>;

/// The layer widths the deck asks for: input features, model.hidden, classes.
std::vector<std::size_t> model_widths(const app::Deck& deck, std::size_t features, std::size_t classes);

/// The model's input shape: the data's per-sample shape ([H, W] is one channel) for an image model, its
/// features for an MLP; an image model on flat data is an error naming the deck.
nn::Shape input_shape(const app::Deck& deck, const std::vector<std::size_t>& sample_shape);

/// The deck's architecture (model.arch: mlp, cnn or resnet) as a layer graph (modules only, no storage).
std::unique_ptr<nn::Sequential<real>> make_graph(const app::Deck& deck, const std::vector<std::size_t>& sample_shape,
                                                 std::size_t classes);

/// The model for the deck, with a workspace for batches of up to `workspace` samples.
Model make_model(const app::Deck& deck, const std::vector<std::size_t>& sample_shape, std::size_t classes,
                 std::size_t workspace);

ModelFootprint model_footprint(const app::Deck& deck, const std::vector<std::size_t>& sample_shape,
                               std::size_t classes, std::size_t workspace);

/// (offset, count) in θ of every layer that has parameters (a Linear's weights and bias together), in
/// layer order.
std::vector<std::pair<std::size_t, std::size_t>> layer_param_ranges(const Model& model);

/// The deck's base optimizer with one parameter group per layer that has parameters: LAMB's trust
/// ratio is per group; the other optimizers ignore groups.
optim::OptimizerConfig base_optimizer_config(const app::Deck& deck, const Model& model);

/// Buckets of the flat gradient in the order backward completes the layers (last layer first).
std::vector<std::pair<std::size_t, std::size_t>> gradient_buckets(const Model& model);

/// θ's initial values.
void init_parameters(Model& model, Vec<real> theta, Rng& rng);

/// Backward accumulates each sample's squared gradient norm into `sq_norms` (GraNd) until called
/// with an empty view.
void collect_sample_grad_norms(Model& model, VecU<real> sq_norms);

/// "in-h1-...-out" for an MLP, the architecture and its modules otherwise, for the run's header line.
std::string model_description(const app::Deck& deck, const Model& model);

}  // namespace sama::training
