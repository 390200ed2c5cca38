// Between the C ABI's handle (chatws.cpp) and its upgrade-hook part
// (upgrade.cpp): the hook call and the error slot, so that the hook's code
// stays out of chatws.cpp.
#pragma once

#include <string>
#include <mutex>
#include <unordered_map>

#include "chatws.h"
#include "server/rate_limit.h"
#include "server/server.h"

namespace chatws::capi {

// Sets chatws_last_error() on this thread; returns code. (chatws.cpp)
int set_error(int code, std::string msg);
// The engine of a handle (never NULL for a created server). (chatws.cpp)
chatws::Server* engine(chatws_server* s);

// Shows `r` to the host's hook and turns its answer into *v (an answer that
// cannot be read becomes a 500 with `why` logged by the engine). Exceptions
// do not escape. (upgrade.cpp)
void call_upgrade_hook(chatws_server* s, chatws_upgrade_cb cb, void* user,
                       const chatws::UpgradeRequest& r, chatws::UpgradeVerdict* v);

// Flood control of raw (non-chat) connections: a bucket per connection that
// sent a message, forgotten at its close. The chat keeps its own.
struct RawFlood {
  RateLimit limit;
  bool drop = false;  // CHATWS_RATE_DROP, else close 1008
  // Several loops (threads > 1) call admit/forget at once: then under mu.
  bool locked = false;
  std::mutex mu;
  std::unordered_map<ConnId, TokenBucket> buckets;

  bool admit(ConnId id) {
    const int64_t now = TokenBucket::now_ms();
    std::unique_lock<std::mutex> lock(mu, std::defer_lock);
    if (locked) lock.lock();
    auto it = buckets.try_emplace(id, limit, now).first;
    return it->second.take(limit, now);
  }
  void forget(ConnId id) {
    std::unique_lock<std::mutex> lock(mu, std::defer_lock);
    if (locked) lock.lock();
    buckets.erase(id);
  }
};

}  // namespace chatws::capi
