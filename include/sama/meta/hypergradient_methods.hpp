#pragma once
// The hypergradient family beyond SAMA's probe (docs/hypergradients.md has the formulas, what each
// method costs and what it all-reduces). Every method ends in the same Meta-Weight-Net backward:
//
//   ∇λ L_meta ≈ −∂/∂λ (1/B) Σ_i w_i(λ) δ_i,   δ_i = ∂ℓ_i/∂θ · w
//
// and they differ in the direction w that replaces the inverse-Hessian-vector product:
//
//   sama_jvp   w = D ⊙ v                          (SAMA's direction; δ_i exact by forward mode)
//   neumann    w = α Σ_{j=0..K} (I − αH)^j v      (truncated Neumann series for H⁻¹v)
//   cg         (H + μI) w = v, K conjugate-gradient iterations from w = 0
//   unrolled   reverse mode through the last K base steps (no single w: one adjoint per step)
//
// with v = ∂L_meta/∂θ and H = ∇²_θ Σ_i c_i ℓ_i(θ), the Hessian of the weighted base loss on the base
// batch at the current θ, the weights c_i = w_i/B held fixed (the Meta-Weight-Net's input is detached).
#include "sama/meta/hypergradient.hpp"
#include "sama/meta/meta_weight_net.hpp"
#include "sama/optim/optimizer.hpp"

#include <functional>
#include <string>
#include <vector>

namespace sama::meta {

/// How Hessian-vector products are formed: exactly by the R-operator, or by a central difference of
/// the gradient, (∇L(θ + εu) − ∇L(θ − εu)) / 2ε with ε = radius/‖u‖ (θ restored bitwise).
enum class HvpMode { exact, finite_difference };
/// "exact", "finite_difference"; anything else throws sama::Error.
HvpMode parse_hvp_mode(const std::string& name);
std::string to_string(HvpMode m);

/// A θ-sized in-place sum over ranks ("global" strategy); an empty function keeps vectors local.
template <class T>
using ReduceFn = std::function<void(VecU<T>)>;

/// One base batch with the per-sample coefficients c_i of its weighted loss Σ_i c_i ℓ_i.
template <class T>
struct WeightedBatch {
  MatU<const T> x;
  VecU<const int> y;
  VecU<const T> coef;
};

/// Products u ↦ H u with the Hessian of a weighted base loss at θ (bound by bind()), summed over
/// ranks by `reduce` when one is given. Exact products after the first at a point reuse its
/// linearisation (Classifier::hvp_again) as long as nothing else ran a forward pass on the model.
/// Its buffers are allocated once, in the constructor.
template <class T>
class HessianProduct {
 public:
  HessianProduct(nn::Classifier<T>& model, HvpMode mode, double fd_radius);
  /// θ may be modified during apply() in finite-difference mode, and is then restored bitwise.
  void bind(VecU<T> theta, const WeightedBatch<T>& batch, ReduceFn<T> reduce);
  /// out = H u. When dlosses is given (non-empty), also dlosses[i] = ∂ℓ_i/∂θ · u, exact and local
  /// (by forward mode in both modes). A zero or non-finite u in finite-difference mode throws.
  void apply(VecU<const T> u, VecU<T> out, VecU<T> dlosses = VecU<T>());
  /// Hessian-vector products formed so far (diagnostics and tests).
  long products() const { return products_; }
  HvpMode mode() const { return mode_; }

 private:
  nn::Classifier<T>& model_;
  HvpMode mode_;
  double fd_radius_;
  VecU<T> theta_;
  WeightedBatch<T> batch_;
  ReduceFn<T> reduce_;
  Vec<T> theta_saved_, grad_minus_, losses_;
  long products_ = 0;
  std::uint64_t point_ = 0;  // the model's forward count when it linearised at the bound point (0: not)
};

struct SolveInfo {
  int iterations = 0;       // Hessian-vector products used
  double residual = 0;      // CG: ‖v − (H + μI)w‖/‖v‖ by its recurrence (1 before any step);
                            // Neumann: ‖(I − αH)^K v‖/‖v‖, the size of the last term
  bool negative_curvature = false;  // CG stopped at a direction with pᵀ(H + μI)p ≤ 0
};

/// Vectors of the iterative solvers, allocated once.
template <class T>
struct SolverWorkspace {
  explicit SolverWorkspace(std::size_t n);
  Vec<T> p, r, hp;
};

/// w = α Σ_{j=0..K} (I − αH)^j v, the truncated Neumann series for H⁻¹v (K products with H).
template <class T>
SolveInfo neumann_solve(HessianProduct<T>& h, VecU<const T> v, long k, double alpha, SolverWorkspace<T>& ws,
                        VecU<T> w);

/// K conjugate-gradient iterations on (H + μI) w = v from w = 0 (K products with H); stops early at
/// a relative residual below `tolerance`. H + μI need not be positive definite: at a direction of
/// non-positive curvature CG stops with the iterate it has (w = v if that happens at once), as in
/// truncated Newton-CG, and reports it.
template <class T>
SolveInfo cg_solve(HessianProduct<T>& h, VecU<const T> v, long k, double damping, SolverWorkspace<T>& ws, VecU<T> w,
                   double tolerance = 0.0);

/// −∂/∂λ (1/B) Σ_i w_i(λ) δ_i with δ_i = ∂ℓ_i/∂θ·w by forward mode on (x, y) at θ, through the
/// Meta-Weight-Net's last forward (whose batch must be this one), summed over ranks by `sum`:
/// out = the λ-gradient. `delta` and `losses` are scratch of the batch size.
template <class T>
void lambda_gradient_along(nn::Classifier<T>& model, VecU<const T> theta, VecU<const T> w, MatU<const T> x,
                           VecU<const int> y, double global_batch, MetaWeightNet<T>& mwn, VecU<const T> lambda,
                           const SumFn& sum, VecU<T> losses, VecU<T> delta, VecU<T> out);

// ------------------------------------------------------------------------------------ unrolled

/// The state of one base step as its reverse needs it (the optimizer state after the step).
template <class T>
struct StepState {
  double lr = 0;      // learning rate of the step
  long steps = 0;     // the optimizer's step count after it (t of the bias corrections)
  std::vector<VecU<const T>> state;  // OptimizerAdjoint::needs(), in that order
};

/// The exact reverse of one base optimizer step θ_{t+1}, S_{t+1} = U(θ_t, S_t, g_t): given the
/// adjoints θ̄ of θ_{t+1} and S̄ of S_{t+1}, those of θ_t (through its direct dependence: weight
/// decay, the update's base point), of S_t, and ḡ of g_t.
///   SGD:  g' = g + wd·θ;  b' = μb + g' (b' = g' at the first step);  d = nesterov ? g' + μb' : (μ ? b' : g')
///         θ' = θ − lr·d
///   Adam: g' = g + wd·θ (AdamW: θ ← (1 − lr·wd)θ, g' = g);  m' = β1m + (1−β1)g';  v' = β2v + (1−β2)g'²
///         θ' = θ − (lr/bc1)·m'/(√v'/√bc2 + ε)
/// The adjoint state (b̄ or m̄, v̄) lives here between reverse() calls; reset() zeroes it.
template <class T>
class OptimizerAdjoint {
 public:
  /// SGD (momentum, Nesterov, weight decay), Adam and AdamW; any other optimizer throws sama::Error.
  OptimizerAdjoint(const optim::OptimizerConfig& cfg, std::size_t n);
  static bool supports(const std::string& optimizer);
  /// The optimizer state vectors (state() names) reverse() reads from after each step.
  const std::vector<std::string>& needs() const { return needs_; }
  void reset();
  /// theta_bar: in θ̄_{t+1}, out the direct part of θ̄_t (in place); grad_bar: out ḡ_t.
  void reverse(const StepState<T>& step, VecU<T> theta_bar, VecU<T> grad_bar);

 private:
  optim::OptimizerConfig cfg_;
  bool adam_ = false;
  std::size_t n_;
  std::vector<std::string> needs_;
  Vec<T> m_bar_, v_bar_;  // Adam: adjoints of the moments; SGD (momentum): m_bar_ is the buffer's
};

/// The last `capacity` base steps, oldest overwritten first: everything the reverse sweep needs to
/// redo each step's gradient and to reverse its update. Memory: capacity × (θ + the optimizer state
/// the adjoint needs + λ + the local batch's ids and losses).
template <class T>
class UnrollHistory {
 public:
  struct Entry {
    Vec<T> theta;                   // θ_t, before the step
    Vec<T> lambda;                  // λ_t, the Meta-Weight-Net's parameters at the step
    Vec<T> losses;                  // the Meta-Weight-Net's (detached) inputs ℓ_i(θ_t), local batch
    std::vector<Vec<T>> state;      // the optimizer state after the step (OptimizerAdjoint::needs())
    std::vector<std::int64_t> ids;  // this rank's sample ids of the batch
    double lr = 0;
    long epoch = 0;                 // the step's epoch (what its batch's augmentation was drawn from)
    long steps = 0;                 // the optimizer's step count after the step
  };
  UnrollHistory(std::size_t capacity, std::size_t num_params, std::size_t num_lambda, std::size_t max_batch,
                std::vector<std::string> state_names);
  std::size_t capacity() const { return slots_.size(); }
  /// Complete steps recorded (at most the capacity).
  std::size_t size() const { return filled_ - (pending_ ? 1 : 0); }
  const std::vector<std::string>& state_names() const { return state_names_; }
  /// Before the base optimizer's step t: θ_t, λ_t, the detached losses and the batch ids.
  void record(VecU<const T> theta, VecU<const T> lambda, VecU<const T> losses, const std::vector<std::int64_t>& ids,
              double lr, long epoch = 0);
  /// After that step: the optimizer's state (by name) and its step count complete the record.
  void record_state(const optim::Optimizer<T>& optimizer);
  /// age 0 = the newest complete step.
  Entry& entry(std::size_t age);
  const Entry& entry(std::size_t age) const;
  /// The slot of a new newest entry (overwriting the oldest when full), for the caller to fill
  /// completely (checkpoint restore).
  Entry& push();
  void clear() {
    filled_ = 0;
    pending_ = false;
  }

 private:
  std::vector<Entry> slots_;
  std::vector<std::string> state_names_;
  std::size_t newest_ = 0, filled_ = 0;
  bool pending_ = false;  // the newest slot has record() but not yet record_state()
};

/// Scratch of the reverse sweep.
template <class T>
struct UnrollWorkspace {
  UnrollWorkspace(std::size_t num_params, std::size_t num_lambda, std::size_t max_batch);
  Vec<T> theta_bar, grad_bar, hvp, weights, coef, delta, lambda_part;
  Vec<double> lambda_bar;  // λ̄ accumulated over the unrolled steps, in double on the device
};

/// Everything the reverse sweep touches besides the history.
template <class T>
struct UnrollProblem {
  nn::Classifier<T>* model = nullptr;
  MetaWeightNet<T>* mwn = nullptr;
  HessianProduct<T>* hessian = nullptr;
  OptimizerAdjoint<T>* adjoint = nullptr;
  /// The batch (x, y) of a history entry's ids in its epoch (its data, gathered and augmented as in that
  /// step by the caller).
  std::function<std::pair<MatU<const T>, VecU<const int>>(const std::vector<std::int64_t>&, long)> load;
  double global_batch = 0;   // B of g = (1/B) Σ_i w_i ∇ℓ_i
  double hessian_batch = 0;  // the normaliser of the Hessians' coefficients (B, or the local batch)
  SumFn sum;                 // λ-sized sums over ranks (Meta-Weight-Net)
  ReduceFn<T> reduce;        // θ-sized sums over ranks of each HVP ("global"), or none
};

struct UnrollInfo {
  int steps = 0;  // base steps reversed
  int hvps = 0;   // Hessian-vector products used
};

/// dL_meta(θ_T)/dλ by reverse mode through the newest min(k, size) steps of the history, v =
/// ∂L_meta/∂θ_T: θ̄ ← v; per step, newest first: ḡ from the optimizer's adjoint, δ_i = ∂ℓ_i/∂θ_t · ḡ
/// and θ̄ += H_t ḡ (one HVP, skipped for the oldest step), and the λ part ∂/∂λ (1/B) Σ_i w_i(λ_t) δ_i
/// through the Meta-Weight-Net at that step's λ_t and inputs. The Meta-Weight-Net's cached forward
/// is left at the newest step's (the base step's own), as before the call.
template <class T>
UnrollInfo unrolled_hypergradient(const UnrollProblem<T>& problem, UnrollHistory<T>& history, long k,
                                  VecU<const T> v, UnrollWorkspace<T>& ws, VecU<T> out);

}  // namespace sama::meta
