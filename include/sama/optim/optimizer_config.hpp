#pragma once
// The optimizer settings the input deck fills in. No Kokkos here: host-only code (the deck parser
// with toml++, the CLI) includes this and is compiled by the host compiler in a CUDA build
// (DESIGN.md §3, device rules).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace sama::optim {

struct OptimizerConfig {
  std::string name = "adam";  // "sgd", "adam", "adamw", "adagrad", "rmsprop", "lion", "lamb"
  double momentum = 0.0;      // SGD, RMSprop
  bool nesterov = false;      // SGD
  double weight_decay = 0.0;  // SGD/Adam/Adagrad/RMSprop: L2 added to the gradient;
                              // AdamW/Lion: decoupled; LAMB: inside the trust-ratio-scaled update
  double beta1 = 0.9;         // Adam/AdamW/LAMB: first moment; Lion: interpolation
  double beta2 = 0.999;       // Adam/AdamW/LAMB: second moment; Lion: momentum
  double eps = 1e-8;          // all but SGD and Lion
  double alpha = 0.99;        // RMSprop: smoothing of the squared-gradient average
  bool centered = false;      // RMSprop: divide by the estimated variance instead of the 2nd moment
  double initial_accumulator = 0.0;    // Adagrad: initial value of the sum of squares
  std::string lion_surrogate = "tanh";  // Lion's D: "tanh", "identity", "zero" (see lion.hpp)
  double lion_temperature = 1e-3;       // Lion, surrogate "tanh": sign(c) ≈ tanh(c/τ)
  /// LAMB: parameter groups (offset, count), one trust ratio each; they must tile [0, n) in order.
  /// Empty = one group over all parameters. Ignored by the other optimizers.
  std::vector<std::pair<std::size_t, std::size_t>> groups;
};

}  // namespace sama::optim
