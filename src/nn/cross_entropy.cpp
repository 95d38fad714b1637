#include "sama/nn/cross_entropy.hpp"

#include "sama/core/error.hpp"

#include <cmath>

namespace sama::nn {
using std::exp;
using std::log;
using std::sqrt;

template <class T>
SoftmaxCrossEntropy<T>::SoftmaxCrossEntropy(std::size_t max_batch, std::size_t classes)
    : classes_(classes), probs_(make_mat<T>("sama::SoftmaxCrossEntropy::probs", max_batch, classes)) {}

template <class T>
void SoftmaxCrossEntropy<T>::forward(MatU<const T> logits, VecU<const int> labels, VecU<T> losses) {
  batch_ = logits.extent(0);
  SAMA_REQUIRE(batch_ <= probs_.extent(0) && logits.extent(1) == classes_ && labels.extent(0) == batch_ &&
                   losses.extent(0) == batch_,
               "SoftmaxCrossEntropy::forward: shape mismatch (logits {}x{}, {} labels, {} losses, {} classes)",
               logits.extent(0), logits.extent(1), labels.extent(0), losses.extent(0), classes_);
  const std::size_t c = classes_;
  auto probs = probs_;
  Kokkos::parallel_for(
      "sama::SoftmaxCrossEntropy::forward", Range(0, batch_), KOKKOS_LAMBDA(const std::size_t i) {
        T zmax = logits(i, 0);
        for (std::size_t j = 1; j < c; ++j) zmax = logits(i, j) > zmax ? logits(i, j) : zmax;
        T sum = 0;
        for (std::size_t j = 0; j < c; ++j) {
          const T e = exp(logits(i, j) - zmax);
          probs(i, j) = e;
          sum += e;
        }
        const T inv = T(1) / sum;
        for (std::size_t j = 0; j < c; ++j) probs(i, j) *= inv;
        losses(i) = log(sum) + zmax - logits(i, labels(i));
      });
}

template <class T>
void SoftmaxCrossEntropy<T>::backward(VecU<const T> coef, VecU<const int> labels, MatU<T> dlogits) const {
  SAMA_REQUIRE(coef.extent(0) == batch_ && dlogits.extent(0) == batch_ && dlogits.extent(1) == classes_,
               "SoftmaxCrossEntropy::backward: shape mismatch");
  const std::size_t c = classes_;
  auto probs = probs_;
  Kokkos::parallel_for(
      "sama::SoftmaxCrossEntropy::backward", Range(0, batch_), KOKKOS_LAMBDA(const std::size_t i) {
        const T ci = coef(i);
        const int y = labels(i);
        for (std::size_t j = 0; j < c; ++j)
          dlogits(i, j) = ci * (probs(i, j) - (static_cast<int>(j) == y ? T(1) : T(0)));
      });
}

template <class T>
std::size_t SoftmaxCrossEntropy<T>::count_correct(MatU<const T> logits, VecU<const int> labels) {
  const std::size_t c = logits.extent(1);
  std::size_t correct = 0;
  Kokkos::parallel_reduce(
      "sama::SoftmaxCrossEntropy::count_correct", Range(0, logits.extent(0)),
      KOKKOS_LAMBDA(const std::size_t i, std::size_t& acc) {
        std::size_t best = 0;
        for (std::size_t j = 1; j < c; ++j)
          if (logits(i, j) > logits(i, best)) best = j;
        acc += static_cast<int>(best) == labels(i) ? 1 : 0;
      },
      correct);
  return correct;
}

template <class T>
void SoftmaxCrossEntropy<T>::sample_errors(VecU<const int> labels, VecU<T> el2n, VecU<int> correct) const {
  SAMA_REQUIRE(labels.extent(0) == batch_ && el2n.extent(0) == batch_ && correct.extent(0) == batch_,
               "SoftmaxCrossEntropy::sample_errors: {} labels, {} and {} outputs for a batch of {}", labels.extent(0),
               el2n.extent(0), correct.extent(0), batch_);
  const std::size_t c = classes_;
  auto probs = probs_;
  Kokkos::parallel_for(
      "sama::SoftmaxCrossEntropy::sample_errors", Range(0, batch_), KOKKOS_LAMBDA(const std::size_t i) {
        const int y = labels(i);
        std::size_t best = 0;
        T sq = 0;
        for (std::size_t j = 0; j < c; ++j) {
          const T e = probs(i, j) - (static_cast<int>(j) == y ? T(1) : T(0));
          sq += e * e;
          if (probs(i, j) > probs(i, best)) best = j;
        }
        el2n(i) = sqrt(sq);
        correct(i) = static_cast<int>(best) == y ? 1 : 0;
      });
}

template <class T>
void SoftmaxCrossEntropy<T>::forward_tangent(MatU<const T> logits_dot, VecU<const int> labels,
                                             VecU<T> dlosses) const {
  SAMA_REQUIRE(logits_dot.extent(0) == batch_ && logits_dot.extent(1) == classes_ && labels.extent(0) == batch_ &&
                   dlosses.extent(0) == batch_,
               "SoftmaxCrossEntropy::forward_tangent: shape mismatch (tangents {}x{}, {} labels, {} outputs, batch "
               "{} of {} classes)",
               logits_dot.extent(0), logits_dot.extent(1), labels.extent(0), dlosses.extent(0), batch_, classes_);
  const std::size_t c = classes_;
  auto probs = probs_;
  Kokkos::parallel_for(
      "sama::SoftmaxCrossEntropy::forward_tangent", Range(0, batch_), KOKKOS_LAMBDA(const std::size_t i) {
        T pz = 0;
        for (std::size_t j = 0; j < c; ++j) pz += probs(i, j) * logits_dot(i, j);
        dlosses(i) = pz - logits_dot(i, labels(i));
      });
}

template <class T>
void SoftmaxCrossEntropy<T>::backward_tangent(VecU<const T> coef, MatU<const T> logits_dot,
                                              MatU<T> dlogits_dot) const {
  SAMA_REQUIRE(coef.extent(0) == batch_ && logits_dot.extent(0) == batch_ && logits_dot.extent(1) == classes_ &&
                   dlogits_dot.extent(0) == batch_ && dlogits_dot.extent(1) == classes_,
               "SoftmaxCrossEntropy::backward_tangent: shape mismatch");
  const std::size_t c = classes_;
  auto probs = probs_;
  Kokkos::parallel_for(
      "sama::SoftmaxCrossEntropy::backward_tangent", Range(0, batch_), KOKKOS_LAMBDA(const std::size_t i) {
        T pz = 0;
        for (std::size_t j = 0; j < c; ++j) pz += probs(i, j) * logits_dot(i, j);
        const T ci = coef(i);
        for (std::size_t j = 0; j < c; ++j) dlogits_dot(i, j) = ci * probs(i, j) * (logits_dot(i, j) - pz);
      });
}

template class SoftmaxCrossEntropy<float>;
template class SoftmaxCrossEntropy<double>;

}  // namespace sama::nn
