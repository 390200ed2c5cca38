// UTF-8 validation: whole buffers (simdjson's vectorised validator) and an
// incremental validator for messages that arrive in fragments.
#pragma once

#include <cstddef>
#include <cstdint>

namespace chatws::protocol {

// True if [p, p+n) is entirely valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(const char* p, size_t n);

// Number of code points in valid UTF-8 (undefined for invalid input).
size_t utf8_code_points(const char* p, size_t n);

// Validates a stream fed in arbitrary pieces. A sequence split across feed()
// calls is carried over (at most 3 bytes); bulk data goes through the fast
// validator.
class Utf8Stream {
 public:
  // False as soon as the bytes seen so far cannot be a prefix of valid UTF-8
  // (fail fast, as RFC 6455 8.1 asks). Once false, stays false.
  bool feed(const char* p, size_t n);
  // True if everything fed so far is complete, valid UTF-8.
  bool finish() const { return ok_ && pending_len_ == 0; }
  void reset() { ok_ = true; pending_len_ = 0; }

 private:
  bool ok_ = true;
  uint8_t pending_[4] = {0, 0, 0, 0};
  uint8_t pending_len_ = 0;
};

}  // namespace chatws::protocol
