// make_optimizer: the one place optimizer names are resolved.
#include "sama/core/error.hpp"
#include "sama/optim/adam.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/sgd.hpp"

namespace sama::optim {

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimizerConfig& cfg, std::size_t n) {
  // Hyper-parameters are validated by the constructors (sama::Error naming the field and value).
  if (cfg.name == "sgd") return std::make_unique<SGD<T>>(n, cfg.momentum, cfg.nesterov, cfg.weight_decay);
  if (cfg.name == "adam" || cfg.name == "adamw") {
    SAMA_REQUIRE(!cfg.nesterov, "optimizer '{}': nesterov applies to 'sgd' only", cfg.name);
    return std::make_unique<Adam<T>>(n, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.name == "adamw");
  }
  fail("unknown optimizer '{}' (valid: sgd, adam, adamw)", cfg.name);
}

template std::unique_ptr<Optimizer<float>> make_optimizer<float>(const OptimizerConfig&, std::size_t);
template std::unique_ptr<Optimizer<double>> make_optimizer<double>(const OptimizerConfig&, std::size_t);

}  // namespace sama::optim
