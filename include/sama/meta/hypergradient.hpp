#pragma once
// Hypergradient methods (DESIGN.md §2). With g = ∂L_base/∂θ, the base update θ ← θ − u(g) and its
// adaptation D = ∂u/∂g:
//
//   dL_meta/dλ ≈ ∂L_meta/∂λ − (∂²L_base/∂λ∂θ) · w,     w = D ⊙ v,   v = ∂L_meta/∂θ
//
//   sama               w = D ⊙ v (the base optimizer's exact adaptation)
//   finite_difference  w = v     (D = I: the same probe without the optimizer's adaptation)
//   none               no meta step: plain training (every weight 1)
//   sama_jvp, neumann, cg, unrolled: δ_i exact by forward mode; see hypergradient_methods.hpp
//
// For a per-sample weighting L_base = (1/B) Σ_i w_i(λ) ℓ_i(θ) with the weight net's input detached,
// (∂²L_base/∂λ∂θ)·w = ∂/∂λ [(1/B) Σ_i w_i(λ) δ_i] with δ_i = ∂ℓ_i/∂θ · w, the directional derivative of
// each sample's loss along w. SAMA estimates δ_i with two forward passes at θ ± εw, ε = α/‖w‖:
// (g⁺ − g⁻)/2ε of the DESIGN notes, computed per sample before the (linear) weight-net backward, so one
// tiny backward serves both probes.
#include "sama/nn/classifier.hpp"

#include <string>

namespace sama::meta {

enum class Method { none, sama, finite_difference, sama_jvp, neumann, cg, unrolled };
/// "none", "sama", "finite_difference", "sama_jvp", "neumann", "cg", "unrolled"; anything else throws
/// sama::Error.
Method parse_method(const std::string& name);
std::string to_string(Method m);

/// Scratch buffers of the probe: a saved θ and the per-sample losses at θ ± εw.
template <class T>
struct ProbeWorkspace {
  ProbeWorkspace(std::size_t num_params, std::size_t max_batch);
  Vec<T> theta_saved;
  Vec<T> loss_plus;
  Vec<T> loss_minus;
};

struct ProbeInfo {
  double epsilon = 0;  // ε = α/‖w‖
  double w_norm = 0;   // ‖w‖₂
};

/// delta[i] = (ℓ_i(θ + εw) − ℓ_i(θ − εw)) / (2ε) on the batch (x, y), ε = alpha/‖w‖.
/// θ is restored bitwise from a saved copy afterwards. A zero or non-finite w throws sama::Error.
template <class T>
ProbeInfo directional_loss_derivative(nn::Classifier<T>& model, VecU<T> theta, VecU<const T> w, double alpha,
                                      MatU<const T> x, VecU<const int> y, ProbeWorkspace<T>& ws, VecU<T> delta);

}  // namespace sama::meta
