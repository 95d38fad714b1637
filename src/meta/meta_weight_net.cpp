#include "sama/meta/meta_weight_net.hpp"

#include "sama/core/error.hpp"
#include "sama/core/vector_ops.hpp"

#include <vector>

namespace sama::meta {

template <class T>
MetaWeightNet<T>::MetaWeightNet(std::size_t hidden, bool normalize, std::size_t max_batch)
    : mlp_({1, hidden, 1}, nn::ActivationKind::relu, nn::ActivationKind::sigmoid, max_batch),
      normalize_(normalize),
      input_(make_mat<T>("sama::MetaWeightNet::input", max_batch, 1)),
      dscore_(make_mat<T>("sama::MetaWeightNet::dscore", max_batch, 1)),
      score_(make_vec<T>("sama::MetaWeightNet::score", max_batch)),
      grad_ones_(make_vec<T>("sama::MetaWeightNet::grad_ones", mlp_.num_params())) {}

template <class T>
void MetaWeightNet<T>::forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights, const SumFn& sum) {
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
  double totals[2] = {ops::sum<T>(score), static_cast<double>(batch_)};
  if (sum) sum(totals, 2);
  global_sum_ = totals[0];
  global_batch_ = totals[1];
  SAMA_REQUIRE(global_sum_ > 0, "MetaWeightNet: all weights in the batch are zero; cannot normalise");
  ops::scale<T>(score, static_cast<T>(global_batch_ / global_sum_), weights);
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
void MetaWeightNet<T>::backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad, const SumFn& sum) {
  SAMA_REQUIRE(dweights.extent(0) == batch_ && batch_ > 0,
               "MetaWeightNet::backward: {} upstream values for a batch of {}", dweights.extent(0), batch_);
  const std::size_t np = num_params();
  VecU<T> ds(dscore_.data(), batch_);
  // Local parts: G1 = Σ_k dw_k ∂s_k/∂λ, and with normalisation also G2 = Σ_k ∂s_k/∂λ and
  // R = Σ_k dw_k s_k. With w_i = B s_i / S:  ∇λ = (B/S)·G1 − (B·R/S²)·G2, all sums global.
  ops::copy<T>(dweights, ds);
  mlp_.backward(lambda, MatU<const T>(ds.data(), batch_, 1), grad);
  const std::size_t parts = normalize_ ? 2 * np + 1 : np;
  std::vector<double> packed(parts);
  auto grad_h = Kokkos::create_mirror_view_and_copy(HostSpace(), grad);
  for (std::size_t i = 0; i < np; ++i) packed[i] = grad_h(i);
  if (normalize_) {
    ops::fill<T>(ds, T(1));
    mlp_.backward(lambda, MatU<const T>(ds.data(), batch_, 1), grad_ones_);
    auto ones_h = Kokkos::create_mirror_view_and_copy(HostSpace(), grad_ones_);
    for (std::size_t i = 0; i < np; ++i) packed[np + i] = ones_h(i);
    packed[2 * np] = ops::dot<T>(dweights, slice<const T>(score_, 0, batch_));
  }
  if (sum) sum(packed.data(), static_cast<int>(parts));
  if (normalize_) {
    const double a = global_batch_ / global_sum_;
    const double c = global_batch_ * packed[2 * np] / (global_sum_ * global_sum_);
    for (std::size_t i = 0; i < np; ++i) grad_h(i) = static_cast<T>(a * packed[i] - c * packed[np + i]);
  } else {
    for (std::size_t i = 0; i < np; ++i) grad_h(i) = static_cast<T>(packed[i]);
  }
  Kokkos::deep_copy(grad, grad_h);
}

template class MetaWeightNet<float>;
template class MetaWeightNet<double>;

}  // namespace sama::meta
