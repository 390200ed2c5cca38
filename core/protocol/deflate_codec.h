// The inflate and deflate of one permessage-deflate message (RFC 7692 7.2)
// over zlib's raw deflate. Pure: bytes in, bytes out, no I/O. The zlib
// stream is allocated on first use and can be released between messages
// (release()) without losing a context-takeover window.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace chatws::protocol {

class Inflater {
 public:
  enum class Result : uint8_t {
    Ok,
    TooBig,  // the output would pass `max`: stopped at most one step beyond it
    Bad,     // not a valid deflate stream (close 1007)
    NoMem,   // zlib could not allocate its state
  };

  // `window_bits`: the sender's window (client_max_window_bits, 8..15).
  // `keep_context`: the sender uses context takeover, so the window carries
  // from one message to the next.
  Inflater(uint8_t window_bits, bool keep_context);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Inflates one whole message (its frames' payloads, concatenated; the
  // 00 00 ff ff tail is added here) into *out (replaced). Stops once the
  // output would exceed `max` bytes: memory stays within max plus one
  // step, however much the input would inflate to.
  Result inflate_message(const uint8_t* data, size_t len, size_t max, std::string* out);

  // Frees the zlib state (about 7 KiB plus the window) between messages. A
  // context-takeover window is kept as a copy (2^window_bits bytes at most)
  // and given back to the next stream.
  void release();
  bool holds_stream() const { return z_ != nullptr; }
  // Heap bytes this inflater holds now (for memory accounting and tests).
  size_t memory() const;

 private:
  struct Z;
  bool open();
  void close_stream();
  Result inflate_into(const uint8_t* data, size_t len, size_t max, std::string* out);
  std::unique_ptr<Z> z_;
  std::string saved_window_;  // context takeover, while released
  uint8_t bits_;
  bool keep_;
};

class Deflater {
 public:
  // `window_bits` 9..15, `mem_level` 1..9 (zlib's), `level` 0..9 or -1.
  // `keep_context`: context takeover (the next message may reference this
  // one's data); false resets after every message.
  Deflater(uint8_t window_bits, int mem_level, bool keep_context, int level = -1);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Compresses one message into *out (replaced), without the trailing
  // 00 00 ff ff (RFC 7692 7.2.1). False if zlib failed (no memory): send it
  // uncompressed. Counts each call (calls()).
  bool compress(const char* data, size_t len, std::string* out);

  // Frees the zlib state between messages (a later compress() starts a new
  // stream, which never references the old one: always valid to send).
  void release();
  bool holds_stream() const { return z_ != nullptr; }
  uint64_t calls() const { return calls_; }
  uint8_t window_bits() const { return bits_; }

 private:
  struct Z;
  bool open();
  std::unique_ptr<Z> z_;
  uint64_t calls_ = 0;
  uint8_t bits_;
  int8_t mem_level_;
  int8_t level_;
  bool keep_;
};

}  // namespace chatws::protocol
