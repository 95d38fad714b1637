#include "sama/nn/models.hpp"

#include "sama/nn/layers/dense.hpp"

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

template std::unique_ptr<Sequential<float>> make_mlp<float>(Shape, const std::vector<std::size_t>&, ActivationKind,
                                                            std::optional<ActivationKind>);
template std::unique_ptr<Sequential<double>> make_mlp<double>(Shape, const std::vector<std::size_t>&, ActivationKind,
                                                              std::optional<ActivationKind>);

}  // namespace sama::nn
