#pragma once
// One exception type for everything the user can get wrong or the system can fail at.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace sama {

/// What went wrong, with its context (file, key, rank, step...) already in the message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Throw sama::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

/// Check a precondition; the message names what was expected.
#define SAMA_REQUIRE(cond, ...)        \
  do {                                 \
    if (!(cond)) ::sama::fail(__VA_ARGS__); \
  } while (0)

}  // namespace sama
