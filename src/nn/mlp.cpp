#include "sama/nn/mlp.hpp"

#include "sama/core/error.hpp"
#include "sama/nn/layers/dense.hpp"
#include "sama/nn/linear.hpp"

#include <algorithm>

namespace sama::nn {

template <class T>
Mlp<T>::Mlp(std::vector<std::size_t> widths, ActivationKind hidden, std::optional<ActivationKind> output,
            std::size_t max_batch)
    : widths_(std::move(widths)), max_batch_(max_batch) {
  SAMA_REQUIRE(widths_.size() >= 2, "an MLP needs at least an input and an output width");
  for (auto w : widths_) SAMA_REQUIRE(w > 0, "MLP widths must be positive");
  SAMA_REQUIRE(max_batch_ > 0, "MLP max batch must be positive");
  for (std::size_t l = 0; l + 1 < widths_.size(); ++l) {
    layers_.push_back(std::make_unique<Linear<T>>(widths_[l], widths_[l + 1]));
    const bool last = l + 2 == widths_.size();
    if (!last) layers_.push_back(std::make_unique<Activation<T>>(hidden, widths_[l + 1]));
    if (last && output) layers_.push_back(std::make_unique<Activation<T>>(*output, widths_[l + 1]));
  }
  std::size_t widest = 0;
  for (const auto& layer : layers_) {
    offsets_.push_back(num_params_);
    num_params_ += layer->num_params();
    acts_.push_back(make_mat<T>("sama::Mlp::activation", max_batch_, layer->out()));
    widest = std::max({widest, layer->in(), layer->out()});
  }
  delta_a_ = make_mat<T>("sama::Mlp::delta_a", max_batch_, widest);
  delta_b_ = make_mat<T>("sama::Mlp::delta_b", max_batch_, widest);
}

template <class T>
void Mlp<T>::init(VecU<T> theta, Rng& rng) const {
  SAMA_REQUIRE(theta.extent(0) == num_params_, "MLP init: θ has {} entries, the model needs {}", theta.extent(0),
               num_params_);
  for (std::size_t i = 0; i < layers_.size(); ++i)
    layers_[i]->init(slice<T>(theta, offsets_[i], layers_[i]->num_params()), rng);
}

template <class T>
MatU<const T> Mlp<T>::forward(VecU<const T> theta, MatU<const T> x) {
  batch_ = x.extent(0);
  tangent_batch_ = linear_batch_ = 0;  // the tangents and linearisation of an earlier forward no longer apply
  SAMA_REQUIRE(batch_ <= max_batch_, "MLP forward: batch {} exceeds the workspace's {}", batch_, max_batch_);
  SAMA_REQUIRE(x.extent(1) == in(), "MLP forward: input has {} features, the model expects {}", x.extent(1), in());
  input_ = x;
  MatU<const T> cur = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    MatU<T> y = rows_of(acts_[i], batch_);
    layers_[i]->forward(slice<const T>(theta, offsets_[i], layers_[i]->num_params()), cur, y);
    cur = y;
  }
  return cur;
}


template <class T>
void Mlp<T>::backward(VecU<const T> theta, MatU<const T> dy, VecU<T> grad, MatU<T> dx, const GradReady& on_ready) {
  SAMA_REQUIRE(dy.extent(0) == batch_ && dy.extent(1) == out(), "MLP backward: dy is {}x{}, expected {}x{}",
               dy.extent(0), dy.extent(1), batch_, out());
  SAMA_REQUIRE(grad.extent(0) == num_params_, "MLP backward: gradient has {} entries, expected {}",
               grad.extent(0), num_params_);
  MatU<const T> upstream = dy;
  bool use_a = true;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const auto& layer = *layers_[i];
    MatU<const T> x = i == 0 ? input_ : MatU<const T>(rows_of(acts_[i - 1], batch_));
    MatU<const T> y = rows_of(acts_[i], batch_);
    MatU<T> down;
    if (i > 0) {
      Mat<T>& buf = use_a ? delta_a_ : delta_b_;
      down = MatU<T>(buf.data(), batch_, layer.in());
      use_a = !use_a;
    } else {
      down = dx;
    }
    const std::size_t np = layer.num_params();
    if (np > 0 && sample_sq_norms_.data() != nullptr) add_linear_sample_sq_norms(x, upstream, sample_sq_norms_);
    layer.backward(slice<const T>(theta, offsets_[i], np), x, y, upstream, down, slice<T>(grad, offsets_[i], np));
    if (np > 0 && on_ready) on_ready(offsets_[i], np);
    upstream = down;
  }
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace sama::nn
