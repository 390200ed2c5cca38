// Rate limit for log lines a client can cause at will (rejected handshakes,
// slow-consumer closes): at most kBurst lines per kWindowMs per kind, the
// rest counted and named in the next line that is let through, so that an
// attack cannot flood the host's log. Loop thread only; no allocation.
#pragma once

#include <cstdint>

namespace chatws {

class LogLimiter {
 public:
  static constexpr int kBurst = 10;
  static constexpr int64_t kWindowMs = 10'000;

  // True if a line may be written now; then *suppressed is how many lines
  // of this kind were held back since the last one (to say so in it).
  bool allow(int64_t now_ms, uint64_t* suppressed) {
    if (now_ms - window_start_ >= kWindowMs || now_ms < window_start_) {
      window_start_ = now_ms;
      used_ = 0;
    }
    if (used_ >= kBurst) {
      ++held_;
      ++total_held_;
      return false;
    }
    ++used_;
    *suppressed = held_;
    held_ = 0;
    return true;
  }
  uint64_t total_suppressed() const { return total_held_; }

 private:
  int64_t window_start_ = INT64_MIN / 2;
  int used_ = 0;
  uint64_t held_ = 0;
  uint64_t total_held_ = 0;
};

}  // namespace chatws
