// A token bucket (issue 12, flood control): `rate` tokens a second up to
// `burst`; each message takes one. Pure; the caller passes the time.
#pragma once

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>

namespace chatws {

struct RateLimit {
  uint32_t per_second = 0;  // 0: no limit
  uint32_t burst = 0;       // tokens held at most (>= 1 when per_second is set)
  bool enabled() const { return per_second != 0; }
};

class TokenBucket {
 public:
  // Starts full: a client may send `burst` messages at once.
  explicit TokenBucket(const RateLimit& l, int64_t now_ms)
      : tokens_(double(l.burst)), last_ms_(now_ms) {}

  // True (and one token taken) if a message may pass at `now_ms`.
  bool take(const RateLimit& l, int64_t now_ms) {
    if (now_ms > last_ms_) {
      tokens_ = std::min(double(l.burst), tokens_ + double(now_ms - last_ms_) * l.per_second / 1000.0);
      last_ms_ = now_ms;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Milliseconds from `now_ms` until a message may pass again (>= 1; 0 if
  // one may now). `now_ms` is that of the last take().
  int64_t ms_until_token(const RateLimit& l, int64_t now_ms) const {
    if (tokens_ >= 1.0) return 0;
    const double wait = (1.0 - tokens_) * 1000.0 / l.per_second - double(now_ms - last_ms_);
    return std::max<int64_t>(1, int64_t(std::ceil(wait)));
  }

  static int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  }

 private:
  double tokens_;
  int64_t last_ms_;
};

}  // namespace chatws
