// The test process's open descriptors, for attack tests that run the server
// in-process and check it holds no more than a stated number (sockets, open
// files) and gives them back; and a bounded wait for such a condition.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstddef>
#include <filesystem>
#include <string>
#include <thread>

namespace chatws::test {

// Descriptors open in this process.
inline size_t open_descriptors() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    --n;  // the directory's own
  }
  return n;
}

// Descriptors of this process open to `file`.
inline size_t descriptors_open_to(const std::filesystem::path& file) {
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::canonical(file, ec);
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(e.path(), link_ec) == target && !link_ec) ++n;
  }
  return n;
}

// Polls `pred` every 5 ms until it holds or `timeout_ms` passes.
template <class Pred>
bool wait_until(Pred pred, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace chatws::test
