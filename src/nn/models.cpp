#include "sama/nn/models.hpp"

#include "sama/nn/layers/batch_norm.hpp"
#include "sama/nn/layers/conv2d.hpp"
#include "sama/nn/layers/dense.hpp"
#include "sama/nn/layers/flatten.hpp"
#include "sama/nn/layers/pool.hpp"

#include <cmath>

namespace sama::nn {

template <class T>
std::unique_ptr<Sequential<T>> make_mlp(Shape in, const std::vector<std::size_t>& widths, ActivationKind hidden,
                                        std::optional<ActivationKind> output) {
  SAMA_REQUIRE(widths.size() >= 2, "an MLP needs at least an input and an output width");
  for (auto w : widths) SAMA_REQUIRE(w > 0, "MLP widths must be positive");
  SAMA_REQUIRE(in.size() == widths.front(), "MLP: input of {} features for a first width of {}", in.size(),
               widths.front());
  auto net = std::make_unique<Sequential<T>>(in);
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    net->template emplace<DenseLayer<T>>(widths[l + 1]);
    const bool last = l + 2 == widths.size();
    if (!last) net->template emplace<ActivationLayer<T>>(hidden);
    if (last && output) net->template emplace<ActivationLayer<T>>(*output);
  }
  return net;
}

std::vector<std::size_t> resnet_blocks_for_depth(std::size_t depth) {
  SAMA_REQUIRE(depth >= 8 && (depth - 2) % 6 == 0, "ResNet depth {} is not 6n + 2 (8, 14, 20, ...)", depth);
  const std::size_t n = (depth - 2) / 6;
  return {n, n, n};
}

template <class T>
std::unique_ptr<Sequential<T>> make_cnn(Shape in, std::size_t classes, const ConvNetConfig& cfg) {
  SAMA_REQUIRE(!cfg.channels.empty(), "CNN: no convolution stages");
  auto net = std::make_unique<Sequential<T>>(in);
  for (std::size_t c : cfg.channels) {
    SAMA_REQUIRE(c > 0, "CNN: a stage with 0 channels");
    net->template emplace<Conv2d<T>>(c, 3, 3, 1, 1, !cfg.batchnorm);
    if (cfg.batchnorm) net->template emplace<BatchNorm<T>>(cfg.bn_eps, cfg.bn_momentum);
    net->template emplace<ActivationLayer<T>>(cfg.activation);
    const Shape s = net->out_shape();
    SAMA_REQUIRE(s.h >= 2 && s.w >= 2, "CNN: stage {} of {} would pool a {}x{} image below 1x1", c,
                 cfg.channels.size(), s.h, s.w);
    net->template emplace<MaxPool2d<T>>(2, 2, 0);
  }
  net->template emplace<Flatten<T>>();  // (a copy, so that the log shows where the image ends)
  for (std::size_t h : cfg.hidden) {
    net->template emplace<DenseLayer<T>>(h);
    net->template emplace<ActivationLayer<T>>(cfg.activation);
  }
  net->template emplace<DenseLayer<T>>(classes);
  return net;
}

namespace {
/// conv3x3(stride) BN act conv3x3 BN, plus the identity or conv1x1(stride) BN; then the activation.
template <class T>
void add_basic_block(Sequential<T>& net, std::size_t channels, std::size_t stride, const ConvNetConfig& cfg) {
  const Shape in = net.out_shape();
  auto body = std::make_unique<Sequential<T>>(in);
  body->template emplace<Conv2d<T>>(channels, 3, 3, stride, 1, false);
  body->template emplace<BatchNorm<T>>(cfg.bn_eps, cfg.bn_momentum);
  body->template emplace<ActivationLayer<T>>(cfg.activation);
  body->template emplace<Conv2d<T>>(channels, 3, 3, 1, 1, false);
  body->template emplace<BatchNorm<T>>(cfg.bn_eps, cfg.bn_momentum);
  std::unique_ptr<Sequential<T>> shortcut;
  if (body->out_shape() != in) {
    shortcut = std::make_unique<Sequential<T>>(in);
    shortcut->template emplace<Conv2d<T>>(channels, 1, 1, stride, 0, false);
    shortcut->template emplace<BatchNorm<T>>(cfg.bn_eps, cfg.bn_momentum);
  }
  net.add(std::make_unique<Residual<T>>(std::move(body), std::move(shortcut)));
  net.template emplace<ActivationLayer<T>>(cfg.activation);
}
}  // namespace

template <class T>
std::unique_ptr<Sequential<T>> make_resnet(Shape in, std::size_t classes, const ConvNetConfig& cfg) {
  SAMA_REQUIRE(!cfg.blocks.empty(), "ResNet: no stages");
  SAMA_REQUIRE(cfg.width > 0 && cfg.width_multiplier > 0, "ResNet: width {} and multiplier {} must be positive",
               cfg.width, cfg.width_multiplier);
  auto channels = [&](std::size_t stage) {
    const double c = std::round(static_cast<double>(cfg.width << stage) * cfg.width_multiplier);
    return std::max<std::size_t>(1, static_cast<std::size_t>(c));
  };
  auto net = std::make_unique<Sequential<T>>(in);
  net->template emplace<Conv2d<T>>(channels(0), 3, 3, 1, 1, false);
  net->template emplace<BatchNorm<T>>(cfg.bn_eps, cfg.bn_momentum);
  net->template emplace<ActivationLayer<T>>(cfg.activation);
  for (std::size_t s = 0; s < cfg.blocks.size(); ++s) {
    SAMA_REQUIRE(cfg.blocks[s] > 0, "ResNet: stage {} has no blocks", s + 1);
    for (std::size_t b = 0; b < cfg.blocks[s]; ++b) {
      const std::size_t stride = s > 0 && b == 0 ? 2 : 1;
      const Shape cur = net->out_shape();
      SAMA_REQUIRE(stride == 1 || (cur.h >= 2 && cur.w >= 2), "ResNet: stage {} would halve a {}x{} image", s + 1,
                   cur.h, cur.w);
      add_basic_block(*net, channels(s), stride, cfg);
    }
  }
  net->template emplace<GlobalAvgPool<T>>();  // [C, 1, 1]: the classifier reads it as C features
  net->template emplace<DenseLayer<T>>(classes);
  return net;
}

template std::unique_ptr<Sequential<float>> make_cnn<float>(Shape, std::size_t, const ConvNetConfig&);
template std::unique_ptr<Sequential<double>> make_cnn<double>(Shape, std::size_t, const ConvNetConfig&);
template std::unique_ptr<Sequential<float>> make_resnet<float>(Shape, std::size_t, const ConvNetConfig&);
template std::unique_ptr<Sequential<double>> make_resnet<double>(Shape, std::size_t, const ConvNetConfig&);
template std::unique_ptr<Sequential<float>> make_mlp<float>(Shape, const std::vector<std::size_t>&, ActivationKind,
                                                            std::optional<ActivationKind>);
template std::unique_ptr<Sequential<double>> make_mlp<double>(Shape, const std::vector<std::size_t>&, ActivationKind,
                                                              std::optional<ActivationKind>);

}  // namespace sama::nn
