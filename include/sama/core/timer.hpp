#pragma once
// Wall-clock timing and process memory figures.
#include <chrono>
#include <string>

namespace sama {

class Timer {
 public:
  Timer() : start_(clock::now()) {}
  void reset() { start_ = clock::now(); }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

/// Peak resident set size of this process in MiB (VmHWM), or -1 where unavailable.
double peak_rss_mb();
/// Reset the peak-RSS watermark to the current RSS (Linux /proc/self/clear_refs); false if unsupported.
bool reset_peak_rss();
/// "1h02m03s" style duration.
std::string format_duration(double seconds);

}  // namespace sama
