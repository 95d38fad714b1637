#pragma once
// Base-level and meta-level optimizers over one flat parameter buffer.
//
// Every optimizer applies an element-wise update θ ← θ − u(g) and can report its adaptation
// D = ∂u/∂g: the exact derivative of the update it just applied with respect to the gradient it was
// given (learning rate, bias correction, ε, momentum, Nesterov included). SAMA uses D ⊙ v.
#include "sama/core/types.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sama::optim {

struct OptimizerConfig {
  std::string name = "adam";  // "sgd", "adam", "adamw"
  double momentum = 0.0;      // SGD
  bool nesterov = false;      // SGD
  double weight_decay = 0.0;  // SGD/Adam: L2 added to the gradient; AdamW: decoupled
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  /// θ ← θ − u(g) at learning rate lr; records what adaptation() needs (e.g. the gradient).
  virtual void step(VecU<T> theta, VecU<const T> grad, double lr) = 0;
  /// out = D ⊙ v where D = ∂u/∂g of the last step, element-wise. out may alias v.
  /// Throws sama::Error if no step has been taken yet (D is undefined, SAMA must skip).
  virtual void apply_adaptation(VecU<const T> v, VecU<T> out) const = 0;
  /// Number of steps taken.
  virtual long steps() const = 0;
  /// Named state vectors (moments, the stored gradient), for checkpoints and tests. The views share
  /// storage with the optimizer: read them to save, deep_copy into them to restore (then call
  /// set_steps and set_last_lr). SGD: "momentum_buffer" (only when momentum > 0);
  /// Adam/AdamW: "exp_avg", "exp_avg_sq", "last_grad". Every vector has the parameter count.
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
