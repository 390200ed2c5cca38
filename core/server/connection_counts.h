// What max_connections and max_connections_per_ip count, held once for the
// whole server: with several loops every loop's accepts and closes update
// the same counts, so the limits are the server's whichever loop (or
// whichever of the kernel's hashes) a connection lands on.
//   live      connections open or being answered, not lingering (waiting
//             only for the peer's FIN): an atomic, one add per accept and
//             one sub per close or linger
//   by address group (max_connections_per_ip): a map under a lock, taken
//             once per accepted and once per closed connection, never per
//             message
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace chatws {

class ConnectionCounts {
 public:
  // One more live connection; the live count with it.
  uint64_t add_live() { return live_.fetch_add(1, std::memory_order_relaxed) + 1; }
  void remove_live() { live_.fetch_sub(1, std::memory_order_relaxed); }

  // One more connection from `group`; that group's count with it.
  // May throw (the map's allocation): nothing counted then.
  uint32_t add_address(const std::string& group) {
    std::lock_guard<std::mutex> lock(mu_);
    return ++per_address_[group];
  }
  void remove_address(const std::string& group) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_address_.find(group);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }

 private:
  std::atomic<uint64_t> live_{0};
  std::mutex mu_;
  std::unordered_map<std::string, uint32_t> per_address_;
};

}  // namespace chatws
