// Hessian-vector products, the Neumann and conjugate-gradient solves, the λ-gradient along a
// direction, and reverse mode through recorded base steps (the unrolled hypergradient).
#include "sama/meta/hypergradient_methods.hpp"

#include "sama/core/error.hpp"
#include "sama/core/kernel_math.hpp"
#include "sama/core/vector_ops.hpp"

#include <algorithm>
#include <cmath>

namespace sama::meta {

HvpMode parse_hvp_mode(const std::string& name) {
  if (name == "exact") return HvpMode::exact;
  if (name == "finite_difference") return HvpMode::finite_difference;
  fail("unknown Hessian-vector product mode '{}' (expected exact or finite_difference)", name);
}

std::string to_string(HvpMode m) { return m == HvpMode::exact ? "exact" : "finite_difference"; }

// ------------------------------------------------------------------------------------ H·u

template <class T>
HessianProduct<T>::HessianProduct(nn::Classifier<T>& model, HvpMode mode, double fd_radius)
    : model_(model), mode_(mode), fd_radius_(fd_radius) {
  SAMA_REQUIRE(mode != HvpMode::finite_difference || (fd_radius > 0 && std::isfinite(fd_radius)),
               "finite-difference Hessian-vector products need a finite radius > 0, got {}", fd_radius);
  const std::size_t n = model.num_params(), b = model.net().max_batch();
  losses_ = make_vec<T>("sama::HessianProduct::losses", b);
  if (mode == HvpMode::finite_difference) {
    theta_saved_ = make_vec<T>("sama::HessianProduct::theta_saved", n);
    grad_minus_ = make_vec<T>("sama::HessianProduct::grad_minus", n);
  }
}

template <class T>
void HessianProduct<T>::bind(VecU<T> theta, const WeightedBatch<T>& batch, ReduceFn<T> reduce) {
  SAMA_REQUIRE(theta.extent(0) == model_.num_params() && batch.coef.extent(0) == batch.x.extent(0) &&
                   batch.y.extent(0) == batch.x.extent(0),
               "HessianProduct::bind: θ of {} (model {}), batch of {} with {} labels and {} coefficients",
               theta.extent(0), model_.num_params(), batch.x.extent(0), batch.y.extent(0), batch.coef.extent(0));
  theta_ = theta;
  batch_ = batch;
  reduce_ = std::move(reduce);
  point_ = 0;  // the next exact product linearises at this point
}

template <class T>
void HessianProduct<T>::apply(VecU<const T> u, VecU<T> out, VecU<T> dlosses) {
  SAMA_REQUIRE(theta_.data() != nullptr, "HessianProduct::apply before bind()");
  const std::size_t b = batch_.x.extent(0);
  if (mode_ == HvpMode::exact) {
    // The first product at a point linearises there (forward and backward); later ones, while no other
    // forward pass ran on the model, cost only the two tangent passes.
    if (point_ != 0 && point_ == model_.forwards()) {
      model_.hvp_again(theta_, batch_.coef, batch_.y, u, out, dlosses);
    } else {
      model_.hvp(theta_, batch_.coef, batch_.x, batch_.y, u, out, VecU<T>(), dlosses);
      point_ = model_.forwards();
    }
  } else {
    // (∇L(θ + εu) − ∇L(θ − εu)) / 2ε, ε = radius/‖u‖; θ restored from a copy, bitwise.
    const double un = ops::norm2<T>(u);
    if (!(un > 0) || !std::isfinite(un))
      fail("finite-difference Hessian-vector product along a vector of norm {} (zero or non-finite)", un);
    const T eps = static_cast<T>(fd_radius_ / un);
    VecU<T> saved = theta_saved_, lb = slice<T>(losses_, 0, b);
    ops::save_and_add_scaled<T>(theta_, eps, u, saved);
    model_.losses(theta_, batch_.x, batch_.y, lb);
    model_.backward(theta_, batch_.coef, batch_.y, out);
    ops::add_scaled<T>(saved, -eps, u, theta_);
    model_.losses(theta_, batch_.x, batch_.y, lb);
    model_.backward(theta_, batch_.coef, batch_.y, grad_minus_);
    ops::copy<T>(saved, theta_);
    ops::scaled_difference<T>(out, grad_minus_, static_cast<T>(1.0 / (2.0 * static_cast<double>(eps))), out);
    if (dlosses.data() != nullptr) model_.loss_jvp(theta_, u, batch_.x, batch_.y, lb, dlosses);
  }
  if (reduce_) reduce_(out);
  ++products_;
}

// ------------------------------------------------------------------------------------ solvers

template <class T>
SolverWorkspace<T>::SolverWorkspace(std::size_t n)
    : p(make_vec<T>("sama::Solver::p", n)), r(make_vec<T>("sama::Solver::r", n)), hp(make_vec<T>("sama::Solver::hp", n)) {}

template <class T>
SolveInfo neumann_solve(HessianProduct<T>& h, VecU<const T> v, long k, double alpha, SolverWorkspace<T>& ws,
                        VecU<T> w) {
  SAMA_REQUIRE(k >= 0 && alpha > 0, "Neumann series: K = {} must be >= 0 and α = {} > 0", k, alpha);
  // p_0 = v, p_{j+1} = (I − αH) p_j;  w = α Σ_j p_j.
  SolveInfo info;
  VecU<T> p = ws.p, hp = ws.hp;
  ops::copy<T>(v, p);
  ops::copy<T>(v, w);
  const T a = static_cast<T>(alpha);
  for (long j = 0; j < k; ++j) {
    h.apply(p, hp);
    ops::add_scaled<T>(p, -a, hp, p);
    ops::add_scaled<T>(w, T(1), p, w);
    ++info.iterations;
  }
  ops::scale<T>(w, a, w);
  const double vn = ops::norm2<T>(v);
  info.residual = vn > 0 ? ops::norm2<T>(p) / vn : 0.0;
  return info;
}

template <class T>
SolveInfo cg_solve(HessianProduct<T>& h, VecU<const T> v, long k, double damping, SolverWorkspace<T>& ws, VecU<T> w,
                   double tolerance) {
  SAMA_REQUIRE(k >= 1 && damping >= 0, "conjugate gradient: K = {} must be >= 1 and μ = {} >= 0", k, damping);
  // A = H + μI; x_0 = 0, r_0 = p_0 = v;  α = rᵀr / pᵀAp;  x += αp;  r −= αAp;  p = r + (r'ᵀr'/rᵀr) p.
  SolveInfo info;
  info.residual = 1.0;  // ‖v − A·0‖/‖v‖
  VecU<T> p = ws.p, r = ws.r, ap = ws.hp;
  ops::fill<T>(w, T(0));
  ops::copy<T>(v, r);
  ops::copy<T>(v, p);
  const double vv = ops::dot<T>(v, v);
  double rr = vv;
  if (!(vv > 0)) {  // v = 0: w = 0 solves it
    info.residual = 0;
    return info;
  }
  const T mu = static_cast<T>(damping);
  for (long j = 0; j < k; ++j) {
    h.apply(p, ap);
    ++info.iterations;
    if (damping > 0) ops::add_scaled<T>(ap, mu, p, ap);
    const double pap = ops::dot<T>(p, ap);
    if (!(pap > 0)) {  // non-positive curvature (or NaN): keep what we have
      info.negative_curvature = true;
      if (j == 0) ops::copy<T>(v, w);
      break;
    }
    const double step = rr / pap;
    ops::add_scaled<T>(w, static_cast<T>(step), p, w);
    ops::add_scaled<T>(r, static_cast<T>(-step), ap, r);
    const double rr_new = ops::dot<T>(r, r);
    info.residual = std::sqrt(rr_new / vv);
    if (info.residual <= tolerance) break;
    ops::add_scaled<T>(r, static_cast<T>(rr_new / rr), p, p);
    rr = rr_new;
  }
  return info;
}

template <class T>
void lambda_gradient_along(nn::Classifier<T>& model, VecU<const T> theta, VecU<const T> w, MatU<const T> x,
                           VecU<const int> y, double global_batch, MetaWeightNet<T>& mwn, VecU<const T> lambda,
                           const SumFn& sum, VecU<T> losses, VecU<T> delta, VecU<T> out) {
  model.loss_jvp(theta, w, x, y, losses, delta);  // δ_i = ∂ℓ_i/∂θ · w, exact
  ops::scale<T>(delta, static_cast<T>(-1.0 / global_batch), delta);
  mwn.backward(lambda, delta, out, sum);  // −∂/∂λ (1/B) Σ_i w_i(λ) δ_i over the global batch
}

// ------------------------------------------------------------------------------------ optimizer adjoint

template <class T>
bool OptimizerAdjoint<T>::supports(const std::string& optimizer) {
  return optimizer == "sgd" || optimizer == "adam" || optimizer == "adamw";
}

template <class T>
OptimizerAdjoint<T>::OptimizerAdjoint(const optim::OptimizerConfig& cfg, std::size_t n)
    : cfg_(cfg), adam_(cfg.name == "adam" || cfg.name == "adamw"), n_(n) {
  if (!supports(cfg.name))
    fail("the unrolled hypergradient reverses sgd, adam and adamw updates exactly; optimizer '{}' has no reverse",
         cfg.name);
  if (adam_) {
    needs_ = {"exp_avg", "exp_avg_sq", "last_grad"};
    m_bar_ = Vec<T>("sama::OptimizerAdjoint::m_bar", n);
    v_bar_ = Vec<T>("sama::OptimizerAdjoint::v_bar", n);
  } else if (cfg.momentum > 0) {
    m_bar_ = Vec<T>("sama::OptimizerAdjoint::buf_bar", n);
  }
}

template <class T>
void OptimizerAdjoint<T>::reset() {
  if (m_bar_.extent(0) > 0) Kokkos::deep_copy(m_bar_, T(0));
  if (v_bar_.extent(0) > 0) Kokkos::deep_copy(v_bar_, T(0));
}

template <class T>
void OptimizerAdjoint<T>::reverse(const StepState<T>& step, VecU<T> theta_bar, VecU<T> grad_bar) {
  SAMA_REQUIRE(theta_bar.extent(0) == n_ && grad_bar.extent(0) == n_ && step.state.size() == needs_.size() &&
                   step.steps >= 1,
               "OptimizerAdjoint::reverse: {} and {} adjoints for {} parameters, {} state vectors (need {}), step {}",
               theta_bar.extent(0), grad_bar.extent(0), n_, step.state.size(), needs_.size(), step.steps);
  const double lr = step.lr, wd = cfg_.weight_decay;
  if (!adam_) {
    const T lr_t = static_cast<T>(lr), wd_t = static_cast<T>(wd), mu = static_cast<T>(cfg_.momentum);
    const bool momentum = cfg_.momentum > 0, nesterov = cfg_.nesterov, first = step.steps == 1;
    auto b_bar = m_bar_;
    Kokkos::parallel_for(
        "sama::OptimizerAdjoint::reverse_sgd", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
          const T tb = theta_bar(i);
          const T d_bar = -lr_t * tb;  // θ' = θ − lr·d
          T g_bar = d_bar;             // d = g' (no momentum) or g' + μb' (Nesterov)
          if (momentum) {
            T bb = b_bar(i);           // adjoint of b' = μb + g' (b' = g' at the first step)
            if (nesterov) {
              bb += mu * d_bar;
            } else {
              bb += d_bar;  // d = b'
              g_bar = T(0);
            }
            g_bar += bb;
            b_bar(i) = first ? T(0) : mu * bb;
          }
          grad_bar(i) = g_bar;                // g' = g + wd·θ
          theta_bar(i) = tb + wd_t * g_bar;
        });
    return;
  }
  const double t = static_cast<double>(step.steps);
  const double bc1 = 1.0 - std::pow(cfg_.beta1, t), bc2 = 1.0 - std::pow(cfg_.beta2, t);
  const T s = static_cast<T>(lr / bc1), isb = static_cast<T>(1.0 / std::sqrt(bc2)), eps = static_cast<T>(cfg_.eps);
  const T b1 = static_cast<T>(cfg_.beta1), b2 = static_cast<T>(cfg_.beta2);
  const T omb1 = static_cast<T>(1.0 - cfg_.beta1), omb2 = static_cast<T>(1.0 - cfg_.beta2);
  const bool decoupled = cfg_.name == "adamw";
  const T wd_t = static_cast<T>(wd), shrink = static_cast<T>(1.0 - lr * wd);
  VecU<const T> m = step.state[0], v = step.state[1], g = step.state[2];
  auto m_bar = m_bar_, v_bar = v_bar_;
  Kokkos::parallel_for(
      "sama::OptimizerAdjoint::reverse_adam", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T tb = theta_bar(i);
        const T rv = v(i) > T(0) ? kmath::kk_sqrt(v(i)) : T(0);  // √v'
        const T denom = rv * isb + eps;                         // √v̂ + ε
        // θ' = θ̃ − s m'/denom:  ∂/∂m' = −s/denom,  ∂/∂v' = s m' isb / (2√v' denom²) (0 where v' = 0).
        const T mt = m_bar(i) - s * tb / denom;
        const T vt = v_bar(i) + (rv > T(0) ? tb * (s * isb / T(2)) * (m(i) / denom) / (rv * denom) : T(0));
        // m' = β1m + (1−β1)g',  v' = β2v + (1−β2)g'².
        const T gb = omb1 * mt + T(2) * omb2 * g(i) * vt;
        m_bar(i) = b1 * mt;
        v_bar(i) = b2 * vt;
        grad_bar(i) = gb;
        theta_bar(i) = decoupled ? shrink * tb : tb + wd_t * gb;  // AdamW: θ̃ = (1 − lr·wd)θ; Adam: g' = g + wd·θ
      });
}

// ------------------------------------------------------------------------------------ history

template <class T>
UnrollHistory<T>::UnrollHistory(std::size_t capacity, std::size_t num_params, std::size_t num_lambda,
                                std::size_t max_batch, std::vector<std::string> state_names)
    : slots_(capacity), state_names_(std::move(state_names)) {
  SAMA_REQUIRE(capacity >= 1, "an unroll history needs room for at least one step");
  for (auto& e : slots_) {
    e.theta = make_vec<T>("sama::UnrollHistory::theta", num_params);
    e.lambda = make_vec<T>("sama::UnrollHistory::lambda", num_lambda);
    e.losses = make_vec<T>("sama::UnrollHistory::losses", max_batch);
    for (std::size_t s = 0; s < state_names_.size(); ++s)
      e.state.push_back(make_vec<T>("sama::UnrollHistory::state", num_params));
    e.ids.reserve(max_batch);
  }
}

template <class T>
typename UnrollHistory<T>::Entry& UnrollHistory<T>::push() {
  if (pending_) return slots_[newest_];  // a record whose step never came: overwrite it
  newest_ = filled_ == 0 ? 0 : (newest_ + 1) % slots_.size();
  filled_ = std::min(filled_ + 1, slots_.size());
  return slots_[newest_];
}

template <class T>
void UnrollHistory<T>::record(VecU<const T> theta, VecU<const T> lambda, VecU<const T> losses,
                              const std::vector<std::int64_t>& ids, double lr, long epoch) {
  SAMA_REQUIRE(losses.extent(0) == ids.size() && ids.size() <= slots_[0].losses.extent(0),
               "UnrollHistory::record: {} losses for {} ids (room for {})", losses.extent(0), ids.size(),
               slots_[0].losses.extent(0));
  Entry& e = push();
  ops::copy<T>(theta, e.theta);
  ops::copy<T>(lambda, e.lambda);
  ops::copy<T>(losses, slice<T>(e.losses, 0, ids.size()));
  e.ids = ids;
  e.lr = lr;
  e.epoch = epoch;
  pending_ = true;
}

template <class T>
void UnrollHistory<T>::record_state(const optim::Optimizer<T>& optimizer) {
  SAMA_REQUIRE(pending_, "UnrollHistory::record_state without a record() before the step");
  Entry& e = slots_[newest_];
  const auto state = optimizer.state();
  for (std::size_t s = 0; s < state_names_.size(); ++s) {
    const auto it = std::find_if(state.begin(), state.end(), [&](const auto& kv) { return kv.first == state_names_[s]; });
    SAMA_REQUIRE(it != state.end(), "optimizer '{}' has no state '{}' for the unroll history", optimizer.name(),
                 state_names_[s]);
    ops::copy<T>(it->second, e.state[s]);
  }
  e.steps = optimizer.steps();
  pending_ = false;
}

template <class T>
typename UnrollHistory<T>::Entry& UnrollHistory<T>::entry(std::size_t age) {
  SAMA_REQUIRE(age < size(), "UnrollHistory: step {} back, but {} steps are recorded", age, size());
  const std::size_t back = age + (pending_ ? 1 : 0);
  return slots_[(newest_ + slots_.size() - back) % slots_.size()];
}

template <class T>
const typename UnrollHistory<T>::Entry& UnrollHistory<T>::entry(std::size_t age) const {
  return const_cast<UnrollHistory<T>*>(this)->entry(age);
}

// ------------------------------------------------------------------------------------ reverse sweep

template <class T>
UnrollWorkspace<T>::UnrollWorkspace(std::size_t num_params, std::size_t num_lambda, std::size_t max_batch)
    : theta_bar(make_vec<T>("sama::Unroll::theta_bar", num_params)),
      grad_bar(make_vec<T>("sama::Unroll::grad_bar", num_params)),
      hvp(make_vec<T>("sama::Unroll::hvp", num_params)),
      weights(make_vec<T>("sama::Unroll::weights", max_batch)),
      coef(make_vec<T>("sama::Unroll::coef", max_batch)),
      delta(make_vec<T>("sama::Unroll::delta", max_batch)),
      lambda_part(make_vec<T>("sama::Unroll::lambda_part", num_lambda)),
      lambda_bar(make_vec<double>("sama::Unroll::lambda_bar", num_lambda)) {}

template <class T>
UnrollInfo unrolled_hypergradient(const UnrollProblem<T>& pb, UnrollHistory<T>& history, long k, VecU<const T> v,
                                  UnrollWorkspace<T>& ws, VecU<T> out) {
  const std::size_t complete = history.size();
  SAMA_REQUIRE(k >= 1 && complete >= 1, "unrolled hypergradient: K = {} with {} recorded steps", k, complete);
  const std::size_t steps = std::min<std::size_t>(static_cast<std::size_t>(k), complete);
  const std::size_t nl = out.extent(0);
  SAMA_REQUIRE(ws.lambda_bar.extent(0) == nl && ws.lambda_part.extent(0) == nl,
               "unrolled hypergradient: workspace for {} meta parameters, the output has {}", ws.lambda_bar.extent(0), nl);
  Vec<double> lambda_bar = ws.lambda_bar;
  Kokkos::deep_copy(lambda_bar, 0.0);
  VecU<T> theta_bar = ws.theta_bar, grad_bar = ws.grad_bar, hvp = ws.hvp;
  ops::copy<T>(v, theta_bar);  // θ̄_T = ∂L_meta/∂θ_T
  pb.adjoint->reset();
  UnrollInfo info;
  StepState<T> st;
  for (std::size_t age = 0; age < steps; ++age) {
    auto& e = history.entry(age);
    const std::size_t b = e.ids.size();
    const auto [x, y] = pb.load(e.ids, e.epoch);
    VecU<T> weights = slice<T>(ws.weights, 0, b), coef = slice<T>(ws.coef, 0, b), delta = slice<T>(ws.delta, 0, b);
    // The step's weights w_i(λ_t) from its recorded (detached) inputs; the forward is also what the
    // Meta-Weight-Net backward below differentiates.
    pb.mwn->forward(e.lambda, slice<const T>(e.losses, 0, b), weights, pb.sum);
    // ḡ_t from the update's reverse; θ̄ keeps its direct part.
    st.lr = e.lr;
    st.steps = e.steps;
    st.state.assign(e.state.begin(), e.state.end());
    pb.adjoint->reverse(st, theta_bar, grad_bar);
    if (age + 1 < steps) {
      // θ̄_t += H_t ḡ_t (g_t = ∇_θ Σ c_i ℓ_i with c_i = w_i/B held fixed), with δ_i = ∂ℓ_i/∂θ·ḡ_t.
      ops::scale<T>(weights, static_cast<T>(1.0 / pb.hessian_batch), coef);
      pb.hessian->bind(e.theta, WeightedBatch<T>{x, y, coef}, pb.reduce);
      pb.hessian->apply(grad_bar, hvp, delta);
      ops::add_scaled<T>(theta_bar, T(1), hvp, theta_bar);
      ++info.hvps;
    } else {  // the oldest step: θ̄_t is not needed, only δ
      pb.model->loss_jvp(e.theta, grad_bar, x, y, coef, delta);
    }
    // λ̄ += ∂/∂λ ḡ_t · g_t = ∂/∂λ (1/B) Σ_i w_i(λ_t) δ_i.
    ops::scale<T>(delta, static_cast<T>(1.0 / pb.global_batch), delta);
    pb.mwn->backward(e.lambda, delta, ws.lambda_part, pb.sum);
    Vec<T> part = ws.lambda_part;
    Kokkos::parallel_for(
        "sama::Unroll::accumulate_lambda", Range(0, nl),
        KOKKOS_LAMBDA(const std::size_t i) { lambda_bar(i) += static_cast<double>(part(i)); });
    ++info.steps;
  }
  Kokkos::parallel_for(
      "sama::Unroll::lambda_out", Range(0, nl),
      KOKKOS_LAMBDA(const std::size_t i) { out(i) = static_cast<T>(lambda_bar(i)); });
  // Leave the Meta-Weight-Net's cached forward at the newest step's inputs, as the base step left it.
  auto& newest = history.entry(0);
  const std::size_t b = newest.ids.size();
  pb.mwn->forward(newest.lambda, slice<const T>(newest.losses, 0, b), slice<T>(ws.weights, 0, b), pb.sum);
  return info;
}

#define SAMA_INSTANTIATE(T)                                                                                      \
  template class HessianProduct<T>;                                                                              \
  template struct SolverWorkspace<T>;                                                                            \
  template SolveInfo neumann_solve<T>(HessianProduct<T>&, VecU<const T>, long, double, SolverWorkspace<T>&,      \
                                      VecU<T>);                                                                  \
  template SolveInfo cg_solve<T>(HessianProduct<T>&, VecU<const T>, long, double, SolverWorkspace<T>&, VecU<T>,  \
                                 double);                                                                        \
  template void lambda_gradient_along<T>(nn::Classifier<T>&, VecU<const T>, VecU<const T>, MatU<const T>,        \
                                         VecU<const int>, double, MetaWeightNet<T>&, VecU<const T>, const SumFn&, \
                                         VecU<T>, VecU<T>, VecU<T>);                                             \
  template class OptimizerAdjoint<T>;                                                                            \
  template class UnrollHistory<T>;                                                                               \
  template struct UnrollWorkspace<T>;                                                                            \
  template UnrollInfo unrolled_hypergradient<T>(const UnrollProblem<T>&, UnrollHistory<T>&, long, VecU<const T>, \
                                                UnrollWorkspace<T>&, VecU<T>);
SAMA_INSTANTIATE(float)
SAMA_INSTANTIATE(double)
#undef SAMA_INSTANTIATE

}  // namespace sama::meta
