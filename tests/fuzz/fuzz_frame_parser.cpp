// Fuzz target: the server-side frame parser (FrameParser::consume).
//
// Input: 4 bytes split seed, 1 byte flags, 2 bytes message-size limit,
// 2 bytes fragment limit, then the bytes a client sends. Flags also choose a
// per-parser message limit below the shared one, and an input budget (each
// parser its own, of the message-size limit's bytes). The stream is parsed
// twice, whole and in pieces, by two parsers. Checks
//   - both see the same events (the split must not change the outcome;
//     error reasons may differ, codes may not), unless a budget refused a
//     frame (1013): what must be reassembled depends on the split;
//   - every message is at most the effective limit, text is valid UTF-8 (by the
//     reference decoder), control payloads are at most 125 bytes, error codes
//     are 1002/1007/1009/1013, close codes are valid or 1005;
//   - after on_error or on_close nothing else is delivered and consume()
//     consumes nothing; until then consume() takes every byte unless the
//     handler said stop;
//   - the reassembly buffer never holds more than the message limit;
//   - the budget holds exactly what the parser reserved, never more than its
//     maximum, and all of it comes back when the parser is destroyed.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_split.h"
#include "protocol/frame.h"
#include "protocol/frame_parser.h"
#include "reference_utf8.h"

namespace {

using chatws::protocol::FrameParser;
using chatws::protocol::InputBudget;
using chatws::protocol::Opcode;
using chatws::protocol::ParserLimits;

struct Event {
  char kind;  // 'm' message, 'i' ping, 'o' pong, 'c' close, 'e' error
  uint8_t op;
  uint16_t code;
  std::string data;
  bool operator==(const Event& o) const {
    return kind == o.kind && op == o.op && code == o.code && data == o.data;
  }
};

void check(bool ok) {
  if (!ok) std::abort();
}

class Recorder {
 public:
  Recorder(uint64_t max_message, unsigned stop_every) : max_message_(max_message), stop_every_(stop_every) {}

  bool on_message(Opcode op, const char* d, size_t n) {
    check(op == Opcode::Text || op == Opcode::Binary);
    check(n <= max_message_);
    if (op == Opcode::Text) {
      check(chatws::fuzz::reference_utf8(reinterpret_cast<const uint8_t*>(d), n).valid);
    }
    return add({'m', static_cast<uint8_t>(op), 0, std::string(d, n)});
  }
  bool on_ping(const char* d, size_t n) {
    check(n <= chatws::protocol::kMaxControlPayload);
    return add({'i', 0, 0, std::string(d, n)});
  }
  bool on_pong(const char* d, size_t n) {
    check(n <= chatws::protocol::kMaxControlPayload);
    return add({'o', 0, 0, std::string(d, n)});
  }
  bool on_close(uint16_t code, std::string_view reason) {
    check(code == 1005 ? reason.empty() : chatws::protocol::is_valid_close_code(code));
    check(chatws::fuzz::reference_utf8(reinterpret_cast<const uint8_t*>(reason.data()),
                                       reason.size()).valid);
    check(reason.size() <= chatws::protocol::kMaxControlPayload - 2);
    add({'c', 0, code, std::string(reason)});
    finished_ = true;
    return false;
  }
  void on_error(uint16_t code, const char* reason) {
    check(code == 1002 || code == 1007 || code == 1009 || code == 1013);
    refused_ = refused_ || code == 1013;
    check(reason != nullptr && reason[0] != '\0');
    add({'e', 0, code, {}});
    finished_ = true;
  }

  const std::vector<Event>& events() const { return events_; }
  bool finished() const { return finished_; }
  bool refused() const { return refused_; }  // by the input budget
  bool stopped() {  // did the last event ask to stop? (read once)
    const bool s = stopped_;
    stopped_ = false;
    return s;
  }

 private:
  bool add(Event e) {
    check(!finished_);  // nothing after on_close / on_error
    events_.push_back(std::move(e));
    // Sometimes ask the parser to stop, as a closing connection does.
    stopped_ = stop_every_ != 0 && events_.size() % stop_every_ == 0;
    return !stopped_;
  }

  uint64_t max_message_;
  unsigned stop_every_;
  std::vector<Event> events_;
  bool finished_ = false;
  bool refused_ = false;
  bool stopped_ = false;
};

// Feeds one piece, calling consume() again after a handler's stop, as the
// server does for the rest of a read.
void feed(FrameParser& parser, Recorder& rec, uint8_t* p, size_t n, const InputBudget* budget) {
  size_t off = 0;
  for (int guard = 0; guard <= 1 << 20; ++guard) {
    const size_t used = parser.consume(p + off, n - off, rec);
    check(used <= n - off);
    off += used;
    check(parser.finished() == rec.finished());
    check(parser.buffered() <= parser.max_message_size());
    if (budget) check(budget->used() == parser.reserved() && budget->used() <= budget->max);
    const bool stopped = rec.stopped();
    if (parser.finished() || off == n) return;
    check(stopped);  // bytes left over only when a handler said stop
  }
  std::abort();  // consume() made no progress
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chatws::fuzz::Splitter split(chatws::fuzz::take_u32(data, size, 4));
  const uint32_t flags = chatws::fuzz::take_u32(data, size, 1);
  const uint32_t max_size = chatws::fuzz::take_u32(data, size, 2);
  const uint32_t max_frag = chatws::fuzz::take_u32(data, size, 2);

  ParserLimits limits;
  limits.require_mask = (flags & 1) == 0;
  if (max_size != 0xFFFF) limits.max_message_size = max_size;  // else the 16 MiB default
  if (max_frag != 0) limits.max_fragments = max_frag % 512 + 1;
  const unsigned stop_every = (flags >> 1) & 7;
  const uint64_t own_limit = (flags & 0x10) ? max_size / 2 + 1 : 0;
  const bool budgeted = (flags & 0x20) != 0;
  // Each parser its own budget: what it reserves is then exactly the budget's use.
  InputBudget b1{uint64_t(max_size) + 1}, b2{uint64_t(max_size) + 1};
  ParserLimits l1 = limits, l2 = limits;
  if (budgeted) {
    l1.input_budget = &b1;
    l2.input_budget = &b2;
  }

  // The parser unmasks in place: each run gets its own copy.
  std::vector<uint8_t> whole(data, data + size), pieces(data, data + size);
  {
    FrameParser p1(l1);
    p1.set_max_message_size(own_limit);
    Recorder r1(p1.max_message_size(), stop_every);
    feed(p1, r1, whole.data(), whole.size(), budgeted ? &b1 : nullptr);

    FrameParser p2(l2);
    p2.set_max_message_size(own_limit);
    Recorder r2(p2.max_message_size(), stop_every);
    size_t fed = 0;
    while (fed < size && !p2.finished()) {
      const size_t n = split.next(size - fed);
      feed(p2, r2, pieces.data() + fed, n, budgeted ? &b2 : nullptr);
      fed += n;
      if (p2.idle() && (split.step() & 1)) p2.shrink();  // as the server does when idle
    }
    if (!r1.refused() && !r2.refused()) check(r1.events() == r2.events());

    // A finished parser consumes nothing more.
    if (p1.finished()) {
      uint8_t more[2] = {0x81, 0x80};
      check(p1.consume(more, sizeof more, r1) == 0);
    }
  }
  check(b1.used() == 0 && b2.used() == 0);  // given back by the destroyed parsers
  return 0;
}
