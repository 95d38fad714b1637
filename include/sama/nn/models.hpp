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

namespace sama::nn {

struct ConvNetConfig {
  std::vector<std::size_t> channels;  // cnn: per stage: conv3x3 (+ batch norm) + activation + max pool 2
  std::vector<std::size_t> hidden;    // cnn: fully connected widths after the convolutions
  std::vector<std::size_t> blocks;    // resnet: basic blocks per stage (the first of stage s > 0 has stride 2)
  std::size_t width = 16;             // resnet: the stem's and the first stage's channels
  double width_multiplier = 1.0;      // resnet: scales every stage's channels
  bool batchnorm = true;              // cnn (a resnet always normalises)
  ActivationKind activation = ActivationKind::relu;
  double bn_eps = 1e-5, bn_momentum = 0.1;
};

/// A plain convolutional network: per stage conv3x3 (pad 1; a bias only without batch norm), batch
/// norm, activation, max pool 2×2; then flatten, the hidden fully connected layers and the classifier.
template <class T>
std::unique_ptr<Sequential<T>> make_cnn(Shape in, std::size_t classes, const ConvNetConfig& cfg);

/// A CIFAR-style ResNet (He et al. 2016, §4.2): conv3x3 stem, batch norm, activation; stages of basic
/// blocks (conv3x3, BN, activation, conv3x3, BN, plus the identity or, where the shape changes, a
/// 1×1 convolution with BN; the activation after the sum) with the channels doubling and the image
/// halving from stage to stage; global average pooling and a linear classifier. Depth 6n + 2 is
/// blocks = {n, n, n}: ResNet-8, 14, 20, ...
template <class T>
std::unique_ptr<Sequential<T>> make_resnet(Shape in, std::size_t classes, const ConvNetConfig& cfg);

/// The blocks per stage of a depth-(6n + 2) ResNet: {n, n, n}.
std::vector<std::size_t> resnet_blocks_for_depth(std::size_t depth);

}  // namespace sama::nn
