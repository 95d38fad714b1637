#include "sama/app/preemption.hpp"

#include <csignal>
#include <ctime>

namespace sama::app {
namespace {
volatile std::sig_atomic_t g_signal = 0;
timespec g_when{};

extern "C" void on_stop_signal(int sig) {
  if (g_signal == 0) clock_gettime(CLOCK_MONOTONIC, &g_when);  // async-signal-safe
  g_signal = sig;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return g_signal; }

double seconds_since_stop_signal() {
  if (g_signal == 0) return 0.0;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - g_when.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec - g_when.tv_nsec);
}

void request_stop(int signal) { on_stop_signal(signal); }

}  // namespace sama::app
