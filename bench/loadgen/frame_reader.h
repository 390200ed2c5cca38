// Client-side incremental reader of server frames (RFC 6455, unmasked).
// Bytes arrive in any split; whole messages come out. Small on purpose: the
// load generator trusts the server under test only as far as counting goes,
// so every framing violation is reported as an error instead of guessed at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chatws::bench {

class FrameReader {
 public:
  enum class Event { Message, Ping, Pong, Close };

  // Handler: void operator()(Event ev, uint8_t opcode, std::string_view payload).
  // For Message the opcode is that of the first fragment (1 text, 2 binary).
  // feed() returns false on a protocol error (see error()); the reader is then
  // finished and consumes nothing more.
  template <class Handler>
  bool feed(const uint8_t* data, size_t len, Handler&& h);

  const std::string& error() const { return error_; }
  // Bytes held between calls: an incomplete frame plus a message being reassembled.
  size_t buffered() const { return pending_.size() + message_.size(); }

  // permessage-deflate offered: RSV1 on a message's first frame marks it
  // compressed; compressed() tells, for the message just delivered.
  void set_deflate(bool on) { deflate_ = on; }
  bool compressed() const { return compressed_; }

  // Upper bound on one message, to keep a misbehaving server from growing us.
  void set_max_message(uint64_t n) { max_message_ = n; }

 private:
  // Parses as many whole frames as `data` holds; returns bytes consumed or
  // SIZE_MAX on error.
  template <class Handler>
  size_t parse(const uint8_t* data, size_t len, Handler& h);

  std::string pending_;   // an incomplete frame carried to the next feed()
  std::string message_;   // fragments of a message not yet finished
  uint8_t message_op_ = 0;
  bool in_message_ = false;
  bool failed_ = false;
  bool deflate_ = false;
  bool compressed_ = false;  // the message being read / just delivered
  uint64_t max_message_ = 64ull << 20;
  std::string error_;
};

template <class Handler>
bool FrameReader::feed(const uint8_t* data, size_t len, Handler&& h) {
  if (failed_) return false;
  size_t used;
  if (pending_.empty()) {
    used = parse(data, len, h);
    if (used == SIZE_MAX) return false;
    pending_.assign(reinterpret_cast<const char*>(data) + used, len - used);
  } else {
    // Only the tail of a split frame is copied, so the common case (whole
    // frames per read) never touches pending_.
    pending_.append(reinterpret_cast<const char*>(data), len);
    used = parse(reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size(), h);
    if (used == SIZE_MAX) return false;
    pending_.erase(0, used);
  }
  return true;
}

template <class Handler>
size_t FrameReader::parse(const uint8_t* p, size_t len, Handler& h) {
  auto fail = [this](const char* why) {
    failed_ = true;
    error_ = why;
    return SIZE_MAX;
  };
  size_t pos = 0;
  while (len - pos >= 2) {
    const uint8_t b0 = p[pos], b1 = p[pos + 1];
    const bool fin = b0 & 0x80;
    const uint8_t op = b0 & 0x0F;
    const bool rsv1 = (b0 & 0x40) != 0;
    if (b0 & 0x30) return fail("reserved bits set");
    if (rsv1 && (!deflate_ || op == 0x0 || op >= 0x8)) return fail("RSV1 where it is not allowed");
    if (b1 & 0x80) return fail("server frame is masked");
    uint64_t plen = b1 & 0x7F;
    size_t hlen = 2;
    if (plen == 126) {
      if (len - pos < 4) break;
      plen = (uint64_t(p[pos + 2]) << 8) | p[pos + 3];
      hlen = 4;
    } else if (plen == 127) {
      if (len - pos < 10) break;
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[pos + 2 + i];
      hlen = 10;
    }
    if (plen > max_message_) return fail("frame larger than the reader's limit");
    if (len - pos - hlen < plen) break;  // wait for the rest of the frame
    std::string_view payload(reinterpret_cast<const char*>(p + pos + hlen), size_t(plen));
    pos += hlen + size_t(plen);

    if (op >= 0x8) {  // control frames: never fragmented, at most 125 bytes
      if (!fin || plen > 125) return fail("bad control frame");
      if (op == 0x8) {
        h(Event::Close, op, payload);
        failed_ = true;  // nothing is valid after a close
        error_ = "closed by server";
        return pos;
      }
      if (op == 0x9) h(Event::Ping, op, payload);
      else if (op == 0xA) h(Event::Pong, op, payload);
      else return fail("unknown control opcode");
      continue;
    }
    if (op == 0x0) {
      if (!in_message_) return fail("continuation without a message");
      if (message_.size() + plen > max_message_) return fail("message larger than the limit");
      message_.append(payload);
      if (fin) {
        in_message_ = false;
        h(Event::Message, message_op_, std::string_view(message_));
        message_.clear();
      }
    } else if (op == 0x1 || op == 0x2) {
      if (in_message_) return fail("new message inside a fragmented one");
      compressed_ = rsv1;
      if (fin) {
        h(Event::Message, op, payload);  // the common case: no copy
      } else {
        in_message_ = true;
        message_op_ = op;
        message_.assign(payload);
      }
    } else {
      return fail("unknown data opcode");
    }
  }
  return pos;
}

}  // namespace chatws::bench
