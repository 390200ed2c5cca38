// A test file whose every byte is a function of its offset, so that a
// download of any part of it (tens of MB) is checked byte by byte as it
// arrives, without the file or the body ever being held in memory; and the
// reader of an HTTP response that checks its body that way.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "support/ws_client.h"

namespace chatws::test {

// Differs between any two 8-byte words of a file, so a chunk sent twice,
// skipped or out of place is caught.
inline char pattern_byte(uint64_t i) {
  return char(uint8_t((i / 8 * 0x9E3779B97F4A7C15ull) >> 56) ^ uint8_t(i));
}

// The bytes [offset, offset + n) of the pattern into `p`, a word at a time
// where the offset allows (tests run unoptimised, and under sanitizers).
inline void fill_pattern(char* p, uint64_t offset, size_t n) {
  size_t k = 0;
  for (; k < n && (offset + k) % 8 != 0; ++k) p[k] = pattern_byte(offset + k);
  for (; k + 8 <= n; k += 8) {
    const uint64_t w = (offset + k) / 8;
    const uint64_t ones = 0x0101010101010101ull;
    // Byte j of the word: high ^ uint8(8w + j), and 8w + j never carries out of a byte.
    const uint64_t v = (((w * 0x9E3779B97F4A7C15ull) >> 56) * ones) ^ (((8 * w) & 0xff) * ones + 0x0706050403020100ull);
    std::memcpy(p + k, &v, 8);  // little-endian, as x86-64 and arm64 are
  }
  for (; k < n; ++k) p[k] = pattern_byte(offset + k);
}

inline bool write_pattern_file(const std::string& path, uint64_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  std::string chunk;
  bool ok = true;
  for (uint64_t at = 0; at < size && ok; at += chunk.size()) {
    chunk.resize(size_t(std::min<uint64_t>(1 << 20, size - at)));
    fill_pattern(chunk.data(), at, chunk.size());
    ok = std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
  }
  return std::fclose(f) == 0 && ok;
}

// The bytes [offset, offset + n) of the pattern, for small expected bodies.
inline std::string pattern(uint64_t offset, size_t n) {
  std::string s(n, '\0');
  fill_pattern(s.data(), offset, n);
  return s;
}

struct CheckedResponse {
  std::string head;        // status line through the empty line ("" if none came)
  uint64_t length = 0;     // its Content-Length
  uint64_t received = 0;   // body bytes that arrived
  uint64_t mismatch = UINT64_MAX;  // body index of the first wrong byte, if any
  bool eof = false;        // the connection ended before the body did
  int status() const { return head.size() > 12 ? std::atoi(head.c_str() + 9) : 0; }
  bool complete() const { return !head.empty() && received == length && mismatch == UINT64_MAX; }
};

// Reads one response from `c` and checks its body, as it arrives, against
// the pattern from file offset `offset` (`body_expected` false: a HEAD or
// 304, whose Content-Length announces no body). Bytes after the response
// stay buffered in `c`.
inline CheckedResponse read_checked_response(TcpClient& c, uint64_t offset, int timeout_ms = 10000,
                                             bool body_expected = true) {
  CheckedResponse r;
  std::string& buf = c.buffer();
  std::string want;
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!c.fill(buf.size() + 1, timeout_ms)) return r;
  }
  r.head = buf.substr(0, end + 4);
  buf.erase(0, end + 4);
  const std::string lower = TcpClient::lower(r.head);
  const size_t cl = lower.find("\r\ncontent-length:");
  if (cl != std::string::npos && body_expected) r.length = std::strtoull(r.head.c_str() + cl + 17, nullptr, 10);
  while (r.received < r.length) {
    if (buf.empty() && !c.fill(1, timeout_ms)) {
      r.eof = true;
      return r;
    }
    const size_t n = size_t(std::min<uint64_t>(buf.size(), r.length - r.received));
    if (r.mismatch == UINT64_MAX) {
      want.resize(n);
      fill_pattern(want.data(), offset + r.received, n);
      if (std::memcmp(want.data(), buf.data(), n) != 0) {
        size_t k = 0;
        while (want[k] == buf[k]) ++k;
        r.mismatch = r.received + k;
      }
    }
    r.received += n;
    buf.erase(0, n);
  }
  return r;
}

}  // namespace chatws::test
