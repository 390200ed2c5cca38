// UTF-8 validation. Whole buffers go through simdjson's SIMD validator; the
// streaming validator only handles the (at most 3-byte) sequence split
// between two pieces itself.
#include "protocol/utf8.h"

#include <simdjson.h>

#include <cstring>

namespace chatws::protocol {

namespace {

constexpr size_t kShortText = 128;  // up to here, try the ASCII word test first

// Length of the sequence a lead byte starts, or 0 if it cannot start one
// (continuation bytes 80-BF, overlong leads C0/C1, F5-FF beyond U+10FFFF).
inline unsigned sequence_length(uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF5) return 4;
  return 0;
}

// True if s[0..n) (1 <= n <= its sequence length) can start a valid
// sequence. The second byte carries all the special ranges (Unicode 15,
// table 3-7): E0 excludes overlongs, ED excludes surrogates, F0 excludes
// overlongs, F4 excludes code points above U+10FFFF.
bool valid_prefix(const uint8_t* s, size_t n) {
  unsigned len = sequence_length(s[0]);
  if (len == 0 || n > len) return false;
  if (n >= 2) {
    uint8_t lo = 0x80, hi = 0xBF;
    switch (s[0]) {
      case 0xE0: lo = 0xA0; break;
      case 0xED: hi = 0x9F; break;
      case 0xF0: lo = 0x90; break;
      case 0xF4: hi = 0x8F; break;
      default: break;
    }
    if (s[1] < lo || s[1] > hi) return false;
  }
  for (size_t i = 2; i < n; ++i) {
    if ((s[i] & 0xC0) != 0x80) return false;
  }
  return true;
}

}  // namespace

bool is_valid_utf8(const char* p, size_t n) {
  // Chat messages are short and mostly ASCII: for those a few word-wide
  // tests beat the call through simdjson's runtime dispatch.
  if (n <= kShortText) {
    uint64_t high = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      high |= w;
    }
    for (; i < n; ++i) high |= uint8_t(p[i]);
    if ((high & 0x8080808080808080ull) == 0) return true;
  }
  // The best kernel for this CPU, resolved once. (Not get_active_implementation():
  // until first used that is a forwarder that re-detects the CPU, with CPUID,
  // on every call made through a cached pointer to it.)
  static const simdjson::implementation* const impl =
      simdjson::get_available_implementations().detect_best_supported();
  return n == 0 || impl->validate_utf8(p, n);
}

size_t utf8_code_points(const char* p, size_t n) {
  // Every code point has exactly one byte that is not a continuation byte.
  // A branch-free count the compiler vectorises.
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    count += (static_cast<uint8_t>(p[i]) & 0xC0) != 0x80;
  }
  return count;
}

bool Utf8Stream::feed(const char* p, size_t n) {
  if (!ok_) return false;
  auto* s = reinterpret_cast<const uint8_t*>(p);

  // 1. Complete the sequence carried over from the previous piece.
  if (pending_len_ > 0) {
    unsigned need = sequence_length(pending_[0]);
    while (pending_len_ < need && n > 0) {
      pending_[pending_len_++] = *s++;
      --n;
      if (!valid_prefix(pending_, pending_len_)) return ok_ = false;
    }
    if (pending_len_ < need) return true;  // piece ended, still incomplete
    pending_len_ = 0;
  }
  if (n == 0) return true;

  // 2. Find an incomplete sequence at the end: walk back over at most 3
  // continuation bytes to the last lead byte and see if it is cut short.
  size_t tail = 0;
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    uint8_t b = s[n - k];
    if ((b & 0xC0) == 0x80) continue;
    unsigned len = sequence_length(b);
    // An invalid lead (len 0) goes to the tail too, where valid_prefix
    // rejects it; a complete sequence (len <= k) stays in the bulk.
    if (len == 0 || len > k) tail = k;
    break;
  }

  // 3. The bulk is complete sequences (if valid): the fast validator decides.
  if (!is_valid_utf8(reinterpret_cast<const char*>(s), n - tail)) {
    return ok_ = false;
  }
  // 4. Keep the tail if it can still become valid; reject it now otherwise.
  if (tail > 0) {
    if (!valid_prefix(s + n - tail, tail)) return ok_ = false;
    for (size_t i = 0; i < tail; ++i) pending_[i] = s[n - tail + i];
    pending_len_ = static_cast<uint8_t>(tail);
  }
  return true;
}

}  // namespace chatws::protocol
