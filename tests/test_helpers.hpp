#pragma once
// Small helpers shared by tests: host<->device copies, temporary directories, expected errors.
#include "sama/core/error.hpp"
#include "sama/core/types.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

namespace sama::test {

template <class T>
std::vector<T> to_host(const Kokkos::View<T*, Kokkos::LayoutRight, MemSpace>& v) {
  auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
  return std::vector<T>(h.data(), h.data() + h.extent(0));
}
template <class T>
std::vector<std::remove_const_t<T>> to_host(const VecU<T>& v) {
  using U = std::remove_const_t<T>;
  std::vector<U> out(v.extent(0));
  Kokkos::View<U*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(out.data(), out.size());
  Kokkos::deep_copy(h, v);
  return out;
}
template <class T>
Vec<T> to_device(const std::vector<T>& host, const std::string& label = "test") {
  Vec<T> v(label, host.size());
  Kokkos::View<const T*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(host.data(), host.size());
  Kokkos::deep_copy(v, h);
  return v;
}

/// Expects `f` to throw sama::Error whose message holds every fragment.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << fragments.front() << "'";
  } catch (const sama::Error& e) {
    const std::string msg = e.what();
    for (const auto& s : fragments) EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
  }
}

/// A fresh, empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline TempDir::TempDir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path();
  for (int i = 0;; ++i) {
    path_ = base / ("sama_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(i));
    if (std::filesystem::create_directory(path_)) break;
  }
}
inline TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace sama::test
