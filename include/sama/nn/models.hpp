#pragma once
// Architectures as layer graphs.
#include "sama/nn/activation.hpp"
#include "sama/nn/graph.hpp"

#include <memory>
#include <optional>
#include <vector>

namespace sama::nn {

/// widths = {in, h1, ..., out}: Linear, `hidden`, ..., Linear[, `output`] — the MLP, module for module.
template <class T>
std::unique_ptr<Sequential<T>> make_mlp(Shape in, const std::vector<std::size_t>& widths, ActivationKind hidden,
                                        std::optional<ActivationKind> output = std::nullopt);

}  // namespace sama::nn
