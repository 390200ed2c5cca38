// The shards of a --threads run pass each phase boundary together, so that
// every shard counts over the same interval and the server is sampled (by
// shard 0) just outside it.
#pragma once

#include <atomic>
#include <barrier>

namespace chatws::bench {

class PhaseSync {
 public:
  explicit PhaseSync(int shards) : barrier_(shards) {}

  // Waits until every shard has arrived; false if any arrived with ok false
  // (then each of them stops at this same boundary, so none waits forever).
  bool arrive(bool ok) {
    if (!ok) failed_.store(true, std::memory_order_relaxed);
    barrier_.arrive_and_wait();
    return !failed_.load(std::memory_order_relaxed);
  }

 private:
  std::barrier<> barrier_;
  std::atomic<bool> failed_{false};
};

}  // namespace chatws::bench
