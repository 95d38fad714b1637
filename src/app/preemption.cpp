#include "sama/app/preemption.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <ctime>

namespace sama::app {
namespace {
volatile std::sig_atomic_t g_signal = 0;
timespec g_when{};
pid_t g_parent = 0;     // the launcher (mpirun/orted) at start, when a launcher started this rank
bool g_launched = false;

extern "C" void on_stop_signal(int sig) {
  // A second SIGTERM or SIGINT while the first is being handled: stop now, without writing (what is
  // half written is a temporary that the next run removes). SIGUSR1 repeated just asks again.
  if (g_signal != 0 && (sig == SIGTERM || sig == SIGINT)) ::_exit(128 + sig);
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
  sigaction(SIGINT, &sa, nullptr);
}

void note_launcher() {
  // Started by a launcher (Open MPI's mpirun/orted, or a PMIx/PMI launcher): watch that parent. Read
  // before MPI_Init, which sets these variables in a singleton too (whose parent is a shell that may
  // well exit while the run goes on).
  g_launched = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
               std::getenv("PMI_RANK") != nullptr;
  g_parent = ::getppid();
}

int stop_signal() { return g_signal; }

double seconds_since_stop_signal() {
  if (g_signal == 0) return 0.0;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - g_when.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec - g_when.tv_nsec);
}

void request_stop(int signal) { on_stop_signal(signal); }

bool launcher_gone() { return g_launched && ::getppid() != g_parent; }

int launcher_pid() { return static_cast<int>(g_parent); }

}  // namespace sama::app
