#include "sama/meta/meta_weight_net.hpp"

#include "sama/core/error.hpp"
#include "sama/core/kernel_math.hpp"
#include "sama/core/vector_ops.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sama::meta {

WeightNetKind parse_weight_net(const std::string& name) {
  if (name == "monotone") return WeightNetKind::monotone;
  if (name == "sigmoid") return WeightNetKind::sigmoid;
  if (name == "softmax") return WeightNetKind::softmax;
  fail("unknown weight net '{}' (expected softmax, monotone or sigmoid)", name);
}

std::string to_string(WeightNetKind k) {
  switch (k) {
    case WeightNetKind::monotone: return "monotone";
    case WeightNetKind::softmax: return "softmax";
    case WeightNetKind::sigmoid: break;
  }
  return "sigmoid";
}

namespace {
// The log-weight relative to a zero-loss sample is clamped to [−80, 80], so that exp stays a normal
// float (e^-80 ≈ 2e-35, e^80 ≈ 6e34) and a batch's Σ r_j can be neither 0 nor infinite. Beyond the
// clamp it is constant (zero gradient) and counted as saturated: such a sample weighs less than e^-80
// (more than e^80) times a zero-loss sample. (The monotone net's z ≤ 0 never reaches the upper one.)
constexpr double kLogFloor = -80.0, kLogCeiling = 80.0;
constexpr double kHuge = 1e300;  // +∞ for the envelope, kept finite for device code
// Initial a_k = softplus(q_k) and u_k = softplus(p_k); thresholds spread over the loss range.
constexpr double kInitSlope = 0.01, kInitThresholdLo = -1.0, kInitThresholdHi = 15.0;
}  // namespace

template <class T>
MetaWeightNet<T>::MetaWeightNet(WeightNetKind kind, std::size_t hidden, bool normalize, std::size_t max_batch)
    : kind_(kind),
      hidden_(hidden),
      mlp_(kind == WeightNetKind::monotone
               ? nullptr
               : std::make_unique<nn::Mlp<T>>(
                     std::vector<std::size_t>{1, hidden, 1}, nn::ActivationKind::relu,
                     kind == WeightNetKind::sigmoid ? std::optional<nn::ActivationKind>(nn::ActivationKind::sigmoid)
                                                    : std::nullopt,
                     max_batch + 1)),  // softmax: one more row, the reference ℓ = 0
      normalize_(normalize),
      input_(make_mat<T>("sama::MetaWeightNet::input", max_batch + 1, 1)),
      dscore_(make_mat<T>("sama::MetaWeightNet::dscore", max_batch + 1, 1)),
      score_(make_vec<T>("sama::MetaWeightNet::score", max_batch)),
      logit_(make_vec<T>("sama::MetaWeightNet::logit", max_batch)),
      grad_ones_(make_vec<T>("sama::MetaWeightNet::grad_ones", kind == WeightNetKind::softmax ? 0 : num_params())),
      active_rows_(make_vec<double>("sama::MetaWeightNet::active_rows", kind == WeightNetKind::softmax ? hidden : 0)),
      kinks_(make_vec<double>("sama::MetaWeightNet::kinks", kind == WeightNetKind::monotone ? 0 : 2 * hidden + 2)) {
  SAMA_REQUIRE(hidden > 0, "MetaWeightNet: hidden width must be positive");
  SAMA_REQUIRE(kind != WeightNetKind::softmax || normalize,
               "MetaWeightNet: the softmax weight net is defined by its normalisation (normalize must be true)");
  const std::size_t np = num_params();
  const bool softmax = kind == WeightNetKind::softmax;
  grad_host_ = HostVec<T>("sama::MetaWeightNet::grad_host", np);
  ones_host_ = HostVec<T>("sama::MetaWeightNet::ones_host", softmax ? 0 : np);
  active_host_ = HostVec<double>("sama::MetaWeightNet::active_host", softmax ? hidden : 0);
  logit_host_ = HostVec<T>("sama::MetaWeightNet::logit_host", max_batch);
  score_host_ = HostVec<T>("sama::MetaWeightNet::score_host", max_batch);
  packed_.assign(softmax ? np + hidden : 2 * np + 1, 0.0);
}

template <class T>
std::size_t MetaWeightNet<T>::num_params() const {
  return kind_ == WeightNetKind::monotone ? 3 * hidden_ : mlp_->num_params();
}

template <class T>
void MetaWeightNet<T>::init(VecU<T> lambda, Rng& rng) const {
  if (kind_ != WeightNetKind::monotone) {
    mlp_->init(lambda, rng);
    return;
  }
  // λ = [q (H) | p (H) | c (H)]: a_k = softplus(q_k) = kInitSlope, u_k = softplus(p_k) = 1, and the
  // kinks at ℓ = −c_k/u_k evenly spaced over [kInitThresholdLo, kInitThresholdHi) (those below 0 act
  // as linear units). Deterministic: the rng is not used.
  const std::size_t h = hidden_;
  SAMA_REQUIRE(lambda.extent(0) == 3 * h, "MetaWeightNet::init: {} parameters for {}", lambda.extent(0), 3 * h);
  auto host = Kokkos::create_mirror_view(lambda);
  const double q0 = std::log(std::expm1(kInitSlope)), p0 = std::log(std::expm1(1.0));
  for (std::size_t k = 0; k < h; ++k) {
    const double t = kInitThresholdLo + (kInitThresholdHi - kInitThresholdLo) * (double(k) + 0.5) / double(h);
    host(k) = static_cast<T>(q0);
    host(h + k) = static_cast<T>(p0);
    host(2 * h + k) = static_cast<T>(-t);
  }
  Kokkos::deep_copy(lambda, host);
}

template <class T>
void MetaWeightNet<T>::monotone_forward(VecU<const T> lambda, std::size_t n, VecU<T> out) {
  const std::size_t h = hidden_;
  const T* lam = lambda.data();
  const T* x = input_.data();
  T* z = logit_.data();
  T* r = out.data();
  Kokkos::parallel_for(
      "sama::MetaWeightNet::monotone_forward", Range(0, n), KOKKOS_LAMBDA(const std::size_t j) {
        const double l = static_cast<double>(x[j]);
        double acc = 0;
        for (std::size_t k = 0; k < h; ++k) {
          const double a = kmath::softplus(static_cast<double>(lam[k]));
          const double u = kmath::softplus(static_cast<double>(lam[h + k]));
          const double c = static_cast<double>(lam[2 * h + k]);
          const double pre = u * l + c;
          acc += a * ((pre > 0 ? pre : 0.0) - (c > 0 ? c : 0.0));
        }
        z[j] = static_cast<T>(-acc);  // the log-weight, not floored (a ranking score past the floor)
        r[j] = static_cast<T>(kmath::kk_exp(-acc > kLogFloor ? -acc : kLogFloor));
      });
}

template <class T>
void MetaWeightNet<T>::monotone_backward(VecU<const T> lambda, VecU<const T> dweights, VecU<const T> r, bool second,
                                         VecU<T> g1, VecU<T> g2) const {
  const std::size_t h = hidden_, n = dweights.extent(0);
  const T* lam = lambda.data();
  const T* x = input_.data();
  const T* z = logit_.data();
  const T* dw = dweights.data();
  const T* rp = r.data();
  T* o1 = g1.data();
  T* o2 = g2.data();
  // One thread per hidden unit, each summing its three partial derivatives over the batch in a fixed
  // order (deterministic, no atomics).
  Kokkos::parallel_for(
      "sama::MetaWeightNet::monotone_backward", Range(0, h), KOKKOS_LAMBDA(const std::size_t k) {
        const double q = static_cast<double>(lam[k]), p = static_cast<double>(lam[h + k]);
        const double a = kmath::softplus(q), u = kmath::softplus(p), c = static_cast<double>(lam[2 * h + k]);
        const double sq = kmath::logistic(q), sp = kmath::logistic(p);
        const double rc = c > 0 ? c : 0.0, hc = c > 0 ? 1.0 : 0.0;
        double dq1 = 0, dp1 = 0, dc1 = 0, dq2 = 0, dp2 = 0, dc2 = 0;
        for (std::size_t j = 0; j < n; ++j) {
          if (static_cast<double>(z[j]) <= kLogFloor) continue;  // floored: constant in λ
          const double l = static_cast<double>(x[j]);
          const double pre = u * l + c;
          const double act = pre > 0 ? 1.0 : 0.0;
          const double dq = -sq * ((pre > 0 ? pre : 0.0) - rc);  // ∂z/∂q_k
          const double dp = -a * act * l * sp;                   // ∂z/∂p_k
          const double dc = -a * (act - hc);                     // ∂z/∂c_k
          // ∂r_j/∂λ = r_j ∂z_j/∂λ: G1 sums dw_j r_j ∂z_j/∂λ, G2 sums r_j ∂z_j/∂λ.
          const double w2 = static_cast<double>(rp[j]);
          const double w1 = static_cast<double>(dw[j]) * w2;
          dq1 += w1 * dq;
          dp1 += w1 * dp;
          dc1 += w1 * dc;
          if (second) {
            dq2 += w2 * dq;
            dp2 += w2 * dp;
            dc2 += w2 * dc;
          }
        }
        o1[k] = static_cast<T>(dq1);
        o1[h + k] = static_cast<T>(dp1);
        o1[2 * h + k] = static_cast<T>(dc1);
        if (second) {
          o2[k] = static_cast<T>(dq2);
          o2[h + k] = static_cast<T>(dp2);
          o2[2 * h + k] = static_cast<T>(dc2);
        }
      });
}

template <class T>
void MetaWeightNet<T>::softmax_forward(VecU<const T> lambda, std::size_t n, VecU<T> out) {
  // z of the n inputs and of the reference ℓ = 0 in one pass (row n); r_j = exp(z_j − z(0)), clamped.
  Kokkos::deep_copy(Kokkos::subview(input_, n, 0), T(0));
  MatU<const T> zs = mlp_->forward(lambda, rows_of(input_, n + 1));
  const T* zp = zs.data();
  T* z = logit_.data();
  T* r = out.data();
  Kokkos::parallel_for(
      "sama::MetaWeightNet::softmax_forward", Range(0, n), KOKKOS_LAMBDA(const std::size_t j) {
        const double d = static_cast<double>(zp[j]) - static_cast<double>(zp[n]);
        z[j] = static_cast<T>(d);  // the log-weight, not clamped (a ranking score past the clamp)
        r[j] = static_cast<T>(kmath::kk_exp(d < kLogFloor ? kLogFloor : (d > kLogCeiling ? kLogCeiling : d)));
      });
}

template <class T>
void MetaWeightNet<T>::softmax_upstream(VecU<const T> dweights, VecU<const T> r, double scale, double mean,
                                        VecU<T> out) const {
  // With w_k = B r_k / S:  ∂/∂λ Σ_k dw_k w_k = (B/S) Σ_k (dw_k − R/S) ∂r_k/∂λ,  R = Σ_k dw_k r_k.
  // The upstream of z_k is (B/S)(dw_k − R/S) r_k inside the clamp (∂r_k/∂z_k = r_k), 0 outside; the
  // reference row gets 0 (every r_k carries the same factor e^(−z(0)), which the normalisation cancels).
  // Centring each sample in double before the backward, instead of subtracting two batch sums of
  // float gradients afterwards, keeps the cancellation out of the λ-gradient's rounding.
  const std::size_t n = r.extent(0);
  const T* dw = dweights.data();
  const T* rp = r.data();
  const T* z = logit_.data();
  T* o = out.data();
  Kokkos::parallel_for(
      "sama::MetaWeightNet::softmax_upstream", Range(0, n + 1), KOKKOS_LAMBDA(const std::size_t j) {
        if (j == n) {
          o[j] = T(0);
          return;
        }
        const double zj = static_cast<double>(z[j]);
        const bool inside = zj > kLogFloor && zj < kLogCeiling;
        o[j] = inside ? static_cast<T>(scale * (static_cast<double>(dw[j]) - mean) * static_cast<double>(rp[j]))
                      : T(0);
      });
}

template <class T>
void MetaWeightNet<T>::count_active_rows(std::size_t n) {
  MatU<const T> pre = mlp_->layer_output(0);  // the hidden pre-activations a_k ℓ_j + c_k, n + 1 rows
  double* count = active_rows_.data();
  Kokkos::parallel_for(
      "sama::MetaWeightNet::count_active_rows", Range(0, hidden_), KOKKOS_LAMBDA(const std::size_t k) {
        double c = 0;
        for (std::size_t j = 0; j < n; ++j) c += pre(j, k) > T(0) ? 1.0 : 0.0;
        count[k] = c;
      });
}

template <class T>
void MetaWeightNet<T>::softmax_backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad,
                                        const SumFn& sum) {
  VecU<const T> r = slice<const T>(score_, 0, batch_);
  double weighted = ops::dot<T>(dweights, r);  // R, then summed over the ranks that share the batch
  if (sum) sum(&weighted, 1);
  VecU<T> up(dscore_.data(), batch_ + 1);
  softmax_upstream(dweights, r, global_batch_ / global_sum_, weighted / global_sum_, up);
  count_active_rows(batch_);
  mlp_->backward(lambda, MatU<const T>(up.data(), batch_ + 1, 1), grad);
  const std::size_t np = num_params(), h = hidden_;
  const HostVec<T>& grad_h = grad_host_;
  const HostVec<double>& active_h = active_host_;
  Kokkos::deep_copy(grad_h, grad);
  Kokkos::deep_copy(active_h, active_rows_);
  std::vector<double>& packed = packed_;
  for (std::size_t i = 0; i < np; ++i) packed[i] = grad_h(i);
  for (std::size_t k = 0; k < h; ++k) packed[np + k] = active_h(k);
  if (sum) sum(packed.data(), static_cast<int>(np + h));
  // Gauge directions: the weights depend on λ only through z_j − z(0) and, after normalisation, not
  // on a shift common to all z_j. So the output bias (λ's last element) has gradient exactly zero, and
  // so has the hidden bias c_k (λ[h + k]) of a unit active on all or on none of the batch's rows
  // (∂(z_j − z(0))/∂c_k = W2_k (1[active_j] − 1[active_0]) is then the same for every j). Computed,
  // these gradients would be rounding, which Adam's normalised step turns into a random walk decided
  // by the summation order (P ranks would not follow one rank). Set them to their exact value, zero.
  packed[np - 1] = 0;
  for (std::size_t k = 0; k < h; ++k)
    if (packed[np + k] == 0 || packed[np + k] == global_batch_) packed[h + k] = 0;
  for (std::size_t i = 0; i < np; ++i) grad_h(i) = static_cast<T>(packed[i]);
  Kokkos::deep_copy(grad, grad_h);
}

template <class T>
void MetaWeightNet<T>::evaluate(VecU<const T> lambda, std::size_t n, VecU<T> out) {
  switch (kind_) {
    case WeightNetKind::monotone: return monotone_forward(lambda, n, out);
    case WeightNetKind::softmax: return softmax_forward(lambda, n, out);
    case WeightNetKind::sigmoid: break;
  }
  MatU<const T> s = mlp_->forward(lambda, rows_of(input_, n));
  ops::copy<T>(VecU<const T>(s.data(), n), out);
  // log σ(a) = −softplus(−a) from the pre-activation a (finite where σ(a) underflows).
  MatU<const T> a = mlp_->layer_output(mlp_->num_layers() - 2);
  T* z = logit_.data();
  Kokkos::parallel_for(
      "sama::MetaWeightNet::sigmoid_log_weight", Range(0, n),
      KOKKOS_LAMBDA(const std::size_t j) { z[j] = static_cast<T>(-kmath::softplus(-static_cast<double>(a(j, 0)))); });
}

template <class T>
void MetaWeightNet<T>::forward(VecU<const T> lambda, VecU<const T> losses, VecU<T> weights, const SumFn& sum) {
  batch_ = losses.extent(0);
  SAMA_REQUIRE(batch_ <= input_.extent(0) && weights.extent(0) == batch_,
               "MetaWeightNet::forward: batch {} (workspace {}), {} weights", batch_, input_.extent(0),
               weights.extent(0));
  ops::copy<T>(losses, VecU<T>(input_.data(), batch_));
  VecU<T> score = slice<T>(score_, 0, batch_);
  evaluate(lambda, batch_, score);
  evaluated_ = batch_;
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
  ops::copy<T>(losses, VecU<T>(input_.data(), n));
  evaluate(lambda, n, out);
  evaluated_ = n;
  batch_ = 0;  // the cached forward is no longer a weighting forward: backward must not follow
}

template <class T>
void MetaWeightNet<T>::log_weight_envelope(VecU<const T> lambda, VecU<T> out) {
  const std::size_t n = evaluated_;
  SAMA_REQUIRE(out.extent(0) == n, "MetaWeightNet::log_weight_envelope: {} outputs for {} evaluated losses",
               out.extent(0), n);
  if (kind_ == WeightNetKind::monotone) {  // z is non-increasing already: it is its own envelope
    ops::copy<T>(VecU<const T>(logit_.data(), n), out);
    return;
  }
  // a(ℓ) = b2 + Σ_k W2_k relu(u_k ℓ + c_k) is piecewise linear with kinks κ_k = −c_k/u_k, so its
  // supremum over [ℓ, ∞) is the largest of a(ℓ), a(κ_k) for κ_k > ℓ, and +∞ when the last slope
  // Σ_{u_k > 0} W2_k u_k is positive. λ = [u (H) | c (H) | W2 (H) | b2].
  const std::size_t h = hidden_;
  const T* lam = lambda.data();
  double* kk = kinks_.data();  // κ_k, a(κ_k) for k < H; then the last slope and a(0)
  const auto a_at = KOKKOS_LAMBDA(const double l) -> double {
    double acc = static_cast<double>(lam[3 * h]);
    for (std::size_t k = 0; k < h; ++k) {
      const double pre = static_cast<double>(lam[k]) * l + static_cast<double>(lam[h + k]);
      acc += static_cast<double>(lam[2 * h + k]) * (pre > 0 ? pre : 0.0);
    }
    return acc;
  };
  Kokkos::parallel_for(
      "sama::MetaWeightNet::envelope_kinks", Range(0, h + 1), KOKKOS_LAMBDA(const std::size_t k) {
        if (k < h) {
          const double u = static_cast<double>(lam[k]);
          const double kappa = u != 0 ? -static_cast<double>(lam[h + k]) / u : -kHuge;
          kk[k] = kappa;
          kk[h + k] = u != 0 ? a_at(kappa) : -kHuge;
          return;
        }
        double slope = 0;
        for (std::size_t j = 0; j < h; ++j)
          if (lam[j] > T(0)) slope += static_cast<double>(lam[2 * h + j]) * static_cast<double>(lam[j]);
        kk[2 * h] = slope;
        kk[2 * h + 1] = a_at(0.0);
      });
  const T* x = input_.data();
  T* o = out.data();
  const bool softmax = kind_ == WeightNetKind::softmax;
  Kokkos::parallel_for(
      "sama::MetaWeightNet::envelope", Range(0, n), KOKKOS_LAMBDA(const std::size_t i) {
        const double l = static_cast<double>(x[i]);
        double best = kk[2 * h] > 0 ? kHuge : a_at(l);
        for (std::size_t k = 0; k < h; ++k)
          if (kk[k] > l && kk[h + k] > best) best = kk[h + k];
        // softmax: the gauge z(0) as for the weight; sigmoid: log σ, monotone in a.
        const double v = softmax ? best - kk[2 * h + 1] : -kmath::softplus(-best);
        o[i] = static_cast<T>(v > kLogCeiling ? kLogCeiling : v);
      });
}

template <class T>
LogitStats MetaWeightNet<T>::last_logit_stats() const {
  LogitStats st;
  if (batch_ == 0) return st;
  const bool sigmoid = kind_ == WeightNetKind::sigmoid;
  // The sigmoid net's logit is its last Linear layer's output (before the sigmoid).
  VecU<const T> z = sigmoid ? VecU<const T>(mlp_->layer_output(mlp_->num_layers() - 2).data(), batch_)
                            : VecU<const T>(logit_.data(), batch_);
  const auto rows = std::make_pair(std::size_t(0), batch_);
  const auto zh = Kokkos::subview(logit_host_, rows), sh = Kokkos::subview(score_host_, rows);
  Kokkos::deep_copy(zh, z);
  Kokkos::deep_copy(sh, slice<const T>(score_, 0, batch_));
  st.min = std::numeric_limits<double>::infinity();
  st.max = -st.min;
  for (std::size_t i = 0; i < batch_; ++i) {
    const double v = static_cast<double>(zh(i)), s = static_cast<double>(sh(i));
    st.min = std::min(st.min, v);
    st.max = std::max(st.max, v);
    st.sum += v;
    st.sum_sq += v * v;
    if (sigmoid) st.saturated += (s > 1 - 1e-3 || (!normalize_ && s < 1e-3)) ? 1 : 0;
    else st.saturated += (v <= kLogFloor || v >= kLogCeiling) ? 1 : 0;
  }
  st.count = static_cast<double>(batch_);
  return st;
}

template <class T>
void MetaWeightNet<T>::backward(VecU<const T> lambda, VecU<const T> dweights, VecU<T> grad, const SumFn& sum) {
  SAMA_REQUIRE(dweights.extent(0) == batch_ && batch_ > 0,
               "MetaWeightNet::backward: {} upstream values for a batch of {}", dweights.extent(0), batch_);
  const std::size_t np = num_params();
  const bool monotone = kind_ == WeightNetKind::monotone;
  VecU<T> ds(dscore_.data(), batch_);
  VecU<const T> score = slice<const T>(score_, 0, batch_);
  // Local parts: G1 = Σ_k dw_k ∂s_k/∂λ, and with normalisation also G2 = Σ_k ∂s_k/∂λ and
  // R = Σ_k dw_k s_k. With w_i = B s_i / S:  ∇λ = (B/S)·G1 − (B·R/S²)·G2, all sums global.
  // (Monotone: s = r = exp z, so ∂s_k/∂λ = r_k ∂z_k/∂λ.)
  const bool softmax = kind_ == WeightNetKind::softmax;
  if (monotone) {
    monotone_backward(lambda, dweights, score, normalize_, grad, grad_ones_);
  } else if (softmax) {  // the Mlp's last forward covered batch_ + 1 rows (the reference last)
    return softmax_backward(lambda, dweights, grad, sum);
  } else {
    ops::copy<T>(dweights, ds);
    mlp_->backward(lambda, MatU<const T>(ds.data(), batch_, 1), grad);
  }
  const std::size_t parts = normalize_ ? 2 * np + 1 : np;
  std::vector<double>& packed = packed_;
  const HostVec<T>& grad_h = grad_host_;
  Kokkos::deep_copy(grad_h, grad);
  for (std::size_t i = 0; i < np; ++i) packed[i] = grad_h(i);
  if (normalize_) {
    if (!monotone) {
      ops::fill<T>(ds, T(1));
      mlp_->backward(lambda, MatU<const T>(ds.data(), batch_, 1), grad_ones_);
    }
    const HostVec<T>& ones_h = ones_host_;
    Kokkos::deep_copy(ones_h, grad_ones_);
    for (std::size_t i = 0; i < np; ++i) packed[np + i] = ones_h(i);
    packed[2 * np] = ops::dot<T>(dweights, score);
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
