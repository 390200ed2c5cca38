// An independent UTF-8 validator for the fuzz targets to check the
// library's (simdjson-based, streaming) one against: a plain decoder that
// computes each code point and judges it by value (Unicode 15, section 3.9:
// no overlong forms, no surrogates, nothing above U+10FFFF), written without
// looking at the library's lead-byte tables.
#pragma once

#include <cstddef>
#include <cstdint>

namespace chatws::fuzz {

struct RefUtf8Result {
  bool valid;          // the whole input is valid UTF-8
  bool valid_prefix;   // the input can be extended into valid UTF-8
  size_t code_points;  // complete code points decoded before any error
};

inline RefUtf8Result reference_utf8(const uint8_t* s, size_t n) {
  size_t i = 0, count = 0;
  while (i < n) {
    const uint8_t b = s[i];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) { len = 1; cp = b; min = 0; }
    else if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; min = 0x10000; }
    else return {false, false, count};  // a continuation byte or F8-FF as a lead

    // The smallest and largest code point any completion of the bytes that
    // are here can give; decide validity on that range.
    uint32_t lo = cp, hi = cp;
    size_t have = 1;
    for (; have < len && i + have < n; ++have) {
      const uint8_t c = s[i + have];
      if ((c & 0xC0) != 0x80) return {false, false, count};
      lo = (lo << 6) | (c & 0x3F);
      hi = (hi << 6) | (c & 0x3F);
    }
    for (size_t k = have; k < len; ++k) {
      lo = lo << 6;
      hi = (hi << 6) | 0x3F;
    }
    const bool some_valid = hi >= min && lo <= 0x10FFFF && !(lo >= 0xD800 && hi <= 0xDFFF);
    if (have < len) return {false, some_valid, count};  // cut short by the end
    if (!some_valid) return {false, false, count};      // lo == hi: the code point
    ++count;
    i += len;
  }
  return {true, true, count};
}

}  // namespace chatws::fuzz
