#pragma once
// Base-level and meta-level optimizers over one flat parameter buffer.
//
// Every optimizer applies an update θ ← θ − u(g) and can report its adaptation D = ∂u/∂g: the exact
// derivative of the update it just applied with respect to the gradient it was given (learning rate,
// bias correction, ε, momentum, Nesterov included). SAMA needs the vector-Jacobian product Dᵀv
// (dL_meta/dλ = −(∂g/∂λ)ᵀ Dᵀ v); for every optimizer but LAMB, D is diagonal and Dᵀv = D ⊙ v.
// Lion's D is zero almost everywhere: it reports D of a documented surrogate (lion.hpp).
// docs/optimizers.md lists the updates and their D.
#include "sama/core/types.hpp"
#include "sama/optim/optimizer_config.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sama::optim {

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  /// θ ← θ − u(g) at learning rate lr; records what adaptation() needs (e.g. the gradient).
  virtual void step(VecU<T> theta, VecU<const T> grad, double lr) = 0;
  /// out = Dᵀv where D = ∂u/∂g of the last step (D ⊙ v for the element-wise optimizers). out may
  /// alias v. Throws sama::Error if no step has been taken yet (D is undefined, SAMA must skip).
  virtual void apply_adaptation(VecU<const T> v, VecU<T> out) const = 0;
  /// Number of steps taken.
  virtual long steps() const = 0;
  /// Named state vectors (moments, the stored gradient), for checkpoints and tests. The views share
  /// storage with the optimizer: read them to save, deep_copy into them to restore (then call
  /// set_steps and set_last_lr). SGD: "momentum_buffer" (only when momentum > 0);
  /// Adam/AdamW: "exp_avg", "exp_avg_sq", "last_grad"; Adagrad: "sum", "last_grad"; RMSprop:
  /// "square_avg", "grad_avg" (centered), "momentum_buffer" (momentum > 0), "last_grad"; Lion:
  /// "exp_avg", "last_interp"; LAMB: "exp_avg", "exp_avg_sq", "last_grad", "last_update",
  /// "param_norm". Every vector has the parameter count except LAMB's "param_norm" (one per group).
  virtual std::vector<std::pair<std::string, Vec<T>>> state() const = 0;
  virtual void set_steps(long t) = 0;
  /// Learning rate of the last step; D depends on it, so a checkpoint must save and restore it.
  virtual double last_lr() const = 0;
  virtual void set_last_lr(double lr) = 0;
};

/// Builds the optimizer named in cfg for n parameters; an unknown name throws sama::Error.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimizerConfig& cfg, std::size_t n);

}  // namespace sama::optim
