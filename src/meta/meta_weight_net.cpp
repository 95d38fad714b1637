#include "sama/meta/meta_weight_net.hpp"

#include "sama/core/error.hpp"
#include "sama/core/vector_ops.hpp"

namespace sama::meta {

template <class T>
MetaWeightNet<T>::MetaWeightNet(std::size_t hidden, bool normalize, std::size_t max_batch)
    : mlp_({1, hidden, 1}, nn::ActivationKind::relu, nn::ActivationKind::sigmoid, max_batch),
      normalize_(normalize),
      input_(make_mat<T>("sama::MetaWeightNet::input", max_batch, 1)),
      dscore_(make_mat<T>("sama::MetaWeightNet::dscore", max_batch, 1)),
      score_(make_vec<T>("sama::MetaWeightNet::score", max_batch)) {}

template <class T>
void MetaWeightNet<T>::forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights) {
  batch_ = losses.extent(0);
  SAMA_REQUIRE(batch_ <= input_.extent(0) && weights.extent(0) == batch_,
               "MetaWeightNet::forward: batch {} (workspace {}), {} weights", batch_, input_.extent(0),
               weights.extent(0));
  MatU<T> in = rows_of(input_, batch_);
  ops::copy<T>(losses, VecU<T>(in.data(), batch_));
  MatU<const T> s = mlp_.forward(lambda, in);
  VecU<const T> score(s.data(), batch_);
  ops::copy<T>(score, slice<T>(score_, 0, batch_));
  if (!normalize_) {
    ops::copy<T>(score, weights);
    return;
  }
  const double total = ops::sum<T>(score);
  SAMA_REQUIRE(total > 0, "MetaWeightNet: all weights in the batch are zero; cannot normalise");
  ops::scale<T>(score, static_cast<T>(static_cast<double>(batch_) / total), weights);
}

template <class T>
void MetaWeightNet<T>::scores(VecU<const T> lambda, VecU<const T> losses, VecU<T> out) {
  const std::size_t n = losses.extent(0);
  SAMA_REQUIRE(n <= input_.extent(0) && out.extent(0) == n, "MetaWeightNet::scores: {} losses (workspace {})", n,
               input_.extent(0));
  MatU<T> in = rows_of(input_, n);
  ops::copy<T>(losses, VecU<T>(in.data(), n));
  MatU<const T> s = mlp_.forward(lambda, in);
  ops::copy<T>(VecU<const T>(s.data(), n), out);
  batch_ = 0;  // the cached forward is no longer a weighting forward: backward must not follow
}

template <class T>
void MetaWeightNet<T>::backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad) {
  SAMA_REQUIRE(dweights.extent(0) == batch_, "MetaWeightNet::backward: {} upstream values for a batch of {}",
               dweights.extent(0), batch_);
  VecU<T> ds(dscore_.data(), batch_);
  if (!normalize_) {
    ops::copy<T>(dweights, ds);
  } else {
    // w_i = B s_i / S  =>  ∂L/∂s_k = B/S · dw_k − B/S² · Σ_i dw_i s_i.
    VecU<const T> s(score_.data(), batch_);
    const double total = ops::sum<T>(s);
    const double cross = ops::dot<T>(dweights, s);
    const double b = static_cast<double>(batch_);
    const T a = static_cast<T>(b / total);
    const T c = static_cast<T>(b * cross / (total * total));
    Kokkos::parallel_for(
        "sama::MetaWeightNet::normalize_backward", Range(0, batch_),
        KOKKOS_LAMBDA(const std::size_t i) { ds(i) = a * dweights(i) - c; });
  }
  mlp_.backward(lambda, MatU<const T>(ds.data(), batch_, 1), grad);
}

template class MetaWeightNet<float>;
template class MetaWeightNet<double>;

}  // namespace sama::meta
