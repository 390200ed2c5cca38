// Cutting a fuzz input into the pieces it is fed in. The cut points come
// from a small generator seeded by bytes of the input itself, so every
// input replays with the same pieces and the fuzzer explores splits the way
// it explores content.
#pragma once

#include <cstddef>
#include <cstdint>

namespace chatws::fuzz {

class Splitter {
 public:
  explicit Splitter(uint32_t seed) : state_(seed * 2654435761u + 0x9E3779B9u) {}

  // Length of the next piece of at most `rest` (> 0) bytes. Mostly short
  // pieces, because the bugs live at boundaries; sometimes all of the rest,
  // so that the fast whole-buffer paths run too.
  size_t next(size_t rest) {
    const uint32_t r = step();
    size_t n;
    switch (r & 3) {
      case 0: n = 1; break;
      case 1: n = 1 + (r >> 2) % 16; break;
      case 2: n = 1 + (r >> 2) % 512; break;
      default: n = rest; break;
    }
    return n < rest ? n : rest;
  }

  // A pseudo-random number, for decisions the fuzz target makes per piece.
  uint32_t step() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

 private:
  uint32_t state_;
};

// Reads a little-endian integer of `n` bytes (n <= 4) from the front of the
// input and advances past it; missing bytes read as 0.
inline uint32_t take_u32(const uint8_t*& data, size_t& size, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (size == 0) break;
    v |= static_cast<uint32_t>(*data) << (8 * i);
    ++data;
    --size;
  }
  return v;
}

}  // namespace chatws::fuzz
