#pragma once
// Learning-rate schedules: constant, step, cosine; each with linear warm-up.
#include <string>

namespace sama::optim {

struct ScheduleConfig {
  std::string name = "constant";  // "constant", "step", "cosine"
  long warmup_steps = 0;          // lr rises linearly from lr/warmup to lr over these steps
  long step_size = 1000;          // "step": multiply by gamma every step_size steps (after warm-up)
  double gamma = 0.1;             // "step"
  double min_lr_ratio = 0.0;      // "cosine": final lr = min_lr_ratio * lr
  long total_steps = 1;           // "cosine": length of the whole run (warm-up included)
};

/// Learning rate for 0-based step `step`.
double learning_rate(const ScheduleConfig& cfg, double base_lr, long step);

}  // namespace sama::optim
