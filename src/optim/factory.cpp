// make_optimizer: the one place optimizer names are resolved.
#include "sama/core/error.hpp"
#include "sama/optim/adagrad.hpp"
#include "sama/optim/adam.hpp"
#include "sama/optim/lamb.hpp"
#include "sama/optim/lion.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/rmsprop.hpp"
#include "sama/optim/sgd.hpp"

namespace sama::optim {

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimizerConfig& cfg, std::size_t n) {
  // Hyper-parameters are validated by the constructors (sama::Error naming the field and value);
  // options that belong to another optimizer are rejected here.
  const std::string& name = cfg.name;
  SAMA_REQUIRE(!cfg.nesterov || name == "sgd", "optimizer '{}': nesterov applies to 'sgd' only", name);
  SAMA_REQUIRE(cfg.momentum == 0.0 || name == "sgd" || name == "rmsprop",
               "optimizer '{}': momentum = {} applies to 'sgd' and 'rmsprop' only", name, cfg.momentum);
  SAMA_REQUIRE(!cfg.centered || name == "rmsprop", "optimizer '{}': centered applies to 'rmsprop' only", name);
  SAMA_REQUIRE(cfg.initial_accumulator == 0.0 || name == "adagrad",
               "optimizer '{}': initial_accumulator = {} applies to 'adagrad' only", name, cfg.initial_accumulator);
  if (name == "sgd") return std::make_unique<SGD<T>>(n, cfg.momentum, cfg.nesterov, cfg.weight_decay);
  if (name == "adam" || name == "adamw")
    return std::make_unique<Adam<T>>(n, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, name == "adamw");
  if (name == "adagrad") return std::make_unique<Adagrad<T>>(n, cfg.eps, cfg.weight_decay, cfg.initial_accumulator);
  if (name == "rmsprop")
    return std::make_unique<RMSprop<T>>(n, cfg.alpha, cfg.eps, cfg.momentum, cfg.centered, cfg.weight_decay);
  if (name == "lion")
    return std::make_unique<Lion<T>>(n, cfg.beta1, cfg.beta2, cfg.weight_decay,
                                     parse_lion_surrogate(cfg.lion_surrogate), cfg.lion_temperature);
  if (name == "lamb") return std::make_unique<Lamb<T>>(n, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.groups);
  fail("unknown optimizer '{}' (valid: sgd, adam, adamw, adagrad, rmsprop, lion, lamb)", name);
}

template std::unique_ptr<Optimizer<float>> make_optimizer<float>(const OptimizerConfig&, std::size_t);
template std::unique_ptr<Optimizer<double>> make_optimizer<double>(const OptimizerConfig&, std::size_t);

}  // namespace sama::optim
