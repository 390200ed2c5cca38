// Test helpers for FrameParser: a handler that records every event, and
// functions that feed a byte stream in chosen pieces.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "protocol/frame_parser.h"

namespace chatws::protocol::testing {

struct Event {
  enum Kind { Message, Ping, Pong, Close, Error } kind;
  Opcode op = Opcode::Continuation;
  std::string data;      // payload, or the close reason
  uint16_t code = 0;     // close code or error close code

  bool operator==(const Event& o) const {
    return kind == o.kind && op == o.op && data == o.data && code == o.code;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Event& e) {
  static const char* names[] = {"Message", "Ping", "Pong", "Close", "Error"};
  return os << names[e.kind] << "(op=" << static_cast<int>(e.op) << ", code=" << e.code
            << ", data=" << ::testing::PrintToString(e.data) << ")";
}

inline Event msg(Opcode op, std::string d) { return {Event::Message, op, std::move(d), 0}; }
inline Event text(std::string d) { return msg(Opcode::Text, std::move(d)); }
inline Event binary(std::string d) { return msg(Opcode::Binary, std::move(d)); }
inline Event ping(std::string d) { return {Event::Ping, Opcode::Ping, std::move(d), 0}; }
inline Event pong(std::string d) { return {Event::Pong, Opcode::Pong, std::move(d), 0}; }
inline Event close_ev(uint16_t c, std::string r = "") {
  return {Event::Close, Opcode::Close, std::move(r), c};
}
inline Event error_ev(uint16_t c) { return {Event::Error, Opcode::Continuation, "", c}; }

struct Recorder {
  std::vector<Event> events;
  std::vector<const char*> message_ptrs;  // where each message's bytes were
  int stop_after = -1;                    // return false from event number N (0-based)

  bool next() { return stop_after < 0 || static_cast<int>(events.size()) - 1 != stop_after; }

  bool on_message(Opcode op, const char* d, size_t n) {
    message_ptrs.push_back(d);
    events.push_back(msg(op, std::string(d, n)));
    return next();
  }
  bool on_ping(const char* d, size_t n) {
    events.push_back(ping(std::string(d, n)));
    return next();
  }
  bool on_pong(const char* d, size_t n) {
    events.push_back(pong(std::string(d, n)));
    return next();
  }
  bool on_close(uint16_t code, std::string_view reason) {
    events.push_back(close_ev(code, std::string(reason)));
    return next();
  }
  void on_error(uint16_t code, const char* reason) {
    EXPECT_NE(reason, nullptr);
    EXPECT_GT(std::strlen(reason), 0u);
    events.push_back(error_ev(code));
  }
};

// Feeds `stream` in pieces ending at `cuts` (ascending), each piece copied
// into its own exactly-sized heap buffer so that ASan catches any read past
// the piece and zero-copy pointers can be checked. Stops feeding once the
// parser reports fewer bytes consumed than given.
inline std::vector<Event> feed_pieces(const std::string& stream, const std::vector<size_t>& cuts,
                                      const ParserLimits& limits = {}) {
  FrameParser parser(limits);
  Recorder rec;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    if (end < prev) continue;
    const size_t n = end - prev;
    std::unique_ptr<uint8_t[]> piece(new uint8_t[n ? n : 1]);
    std::memcpy(piece.get(), stream.data() + prev, n);
    const size_t used = parser.consume(piece.get(), n, rec);
    prev = end;
    if (used != n) {
      EXPECT_TRUE(parser.finished()) << "stopped early without finishing";
      break;
    }
  }
  return rec.events;
}

inline std::vector<Event> feed_whole(const std::string& s, const ParserLimits& l = {}) {
  return feed_pieces(s, {}, l);
}

inline std::vector<Event> feed_bytewise(const std::string& s, const ParserLimits& l = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.size(); ++i) cuts.push_back(i);
  return feed_pieces(s, cuts, l);
}

// A client frame with a fixed, non-trivial mask.
inline std::string cframe(Opcode op, std::string_view payload, bool fin = true) {
  static const uint8_t mask[4] = {0xA1, 0x5C, 0x03, 0xE7};
  return encode_masked_frame(op, payload, mask, fin);
}

// Raw bytes from a list of ints.
inline std::string raw(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

}  // namespace chatws::protocol::testing
