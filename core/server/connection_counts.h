// What the server's admission limits count, held once for the whole
// server: with several loops every loop's accepts, handshakes and closes
// update the same counts, so the limits are the server's whichever loop (or
// whichever of the kernel's hashes) a connection lands on.
//   live      connections open or being answered, not lingering (waiting
//             only for the peer's FIN): an atomic, one add per accept and
//             one sub per close or linger
//   by address group (max_connections_per_ip): a map under a lock, taken
//             once per accepted and once per closed connection, never per
//             message
//   handshakes by address group (max_handshakes_per_second_per_ip): token
//             buckets under a lock of their own, taken once per upgrade
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/rate_limit.h"

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

  // One more upgrade from `group` at `now_ms`, if its bucket has a token.
  // The buckets are cleared when kMaxHandshakeAddrs groups hold one, so
  // that a spray of addresses costs bounded memory (their buckets start
  // full again). May throw (the map's allocation).
  static constexpr size_t kMaxHandshakeAddrs = 65536;
  bool take_handshake(const std::string& group, const RateLimit& l, int64_t now_ms) {
    std::lock_guard<std::mutex> lock(handshake_mu_);
    if (handshake_buckets_.size() >= kMaxHandshakeAddrs) handshake_buckets_.clear();
    return handshake_buckets_.try_emplace(group, l, now_ms).first->second.take(l, now_ms);
  }

 private:
  std::atomic<uint64_t> live_{0};
  std::mutex mu_;
  std::unordered_map<std::string, uint32_t> per_address_;
  std::mutex handshake_mu_;
  std::unordered_map<std::string, TokenBucket> handshake_buckets_;
};

}  // namespace chatws
