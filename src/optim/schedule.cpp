// Learning-rate schedules with linear warm-up; see sama/optim/schedule.hpp.
#include "sama/optim/schedule.hpp"

#include "sama/core/error.hpp"

#include <algorithm>
#include <cmath>

namespace sama::optim {

double learning_rate(const ScheduleConfig& cfg, double base_lr, long step) {
  SAMA_REQUIRE(cfg.name == "constant" || cfg.name == "step" || cfg.name == "cosine",
               "unknown lr schedule '{}' (valid: constant, step, cosine)", cfg.name);
  SAMA_REQUIRE(std::isfinite(base_lr) && base_lr >= 0.0, "lr schedule: base learning rate must be finite and >= 0, got {}",
               base_lr);
  SAMA_REQUIRE(cfg.warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got {}", cfg.warmup_steps);
  SAMA_REQUIRE(step >= 0, "lr schedule: step must be >= 0, got {}", step);
  if (cfg.name == "step") {
    SAMA_REQUIRE(cfg.step_size > 0, "lr schedule 'step': step_size must be > 0, got {}", cfg.step_size);
    SAMA_REQUIRE(cfg.gamma > 0.0 && cfg.gamma <= 1.0, "lr schedule 'step': gamma must be in (0, 1], got {}",
                 cfg.gamma);
  } else if (cfg.name == "cosine") {
    SAMA_REQUIRE(cfg.total_steps > 0, "lr schedule 'cosine': total_steps must be > 0, got {}", cfg.total_steps);
    SAMA_REQUIRE(cfg.total_steps > cfg.warmup_steps,
                 "lr schedule 'cosine': total_steps ({}) must exceed warmup_steps ({})", cfg.total_steps,
                 cfg.warmup_steps);
    SAMA_REQUIRE(cfg.min_lr_ratio >= 0.0 && cfg.min_lr_ratio <= 1.0,
                 "lr schedule 'cosine': min_lr_ratio must be in [0, 1], got {}", cfg.min_lr_ratio);
  }

  if (step < cfg.warmup_steps) {
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(cfg.warmup_steps);
  }
  const long after = step - cfg.warmup_steps;
  if (cfg.name == "step") {
    return base_lr * std::pow(cfg.gamma, static_cast<double>(after / cfg.step_size));
  }
  if (cfg.name == "cosine") {
    const double span = static_cast<double>(cfg.total_steps - cfg.warmup_steps);
    const double p = std::min(1.0, static_cast<double>(after) / span);
    const double pi = std::acos(-1.0);
    return base_lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + std::cos(pi * p)));
  }
  return base_lr;
}

}  // namespace sama::optim
