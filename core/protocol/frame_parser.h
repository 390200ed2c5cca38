// Server-side incremental frame parser: bytes in (any split), events out.
// No I/O and no allocation except the reassembly state of a message that
// spans several reads or fragments (freed when it completes). Unmasks in
// place, validates text as UTF-8 across fragments, enforces every RFC 6455
// rule a server must.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/utf8.h"

namespace chatws::protocol {

// Partial input that several parsers (a server's connections, on any of
// its loops) may hold at once, in bytes announced by the frame headers of
// messages being reassembled. A frame that would take used() over `max`
// fails with 1013 before any of it is stored. Thread-safe: an atomic,
// touched only by frames of messages that span reads, never per message.
struct InputBudget {
  InputBudget() = default;
  explicit InputBudget(uint64_t max_bytes) : max(max_bytes) {}
  uint64_t max = UINT64_MAX;

  // Takes `n` bytes if they fit under `max`; false (nothing taken) if not.
  bool take(uint64_t n) {
    uint64_t u = used_.load(std::memory_order_relaxed);
    do {
      if (n > max - std::min(u, max)) return false;
    } while (!used_.compare_exchange_weak(u, u + n, std::memory_order_relaxed));
    return true;
  }
  void give(uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> used_{0};
};

struct ParserLimits {
  uint64_t max_message_size = 16u << 20;  // all fragments of one message
  size_t max_fragments = 65536;           // frames of one message
  bool require_mask = true;               // server side: clients must mask
  InputBudget* input_budget = nullptr;    // shared budget of partial input; none if null
};

// The events a parser emits. Each returns false to make the parser stop
// consuming (e.g. the connection is being closed).
//   bool on_message(Opcode op /* Text or Binary */, const char* data, size_t len);
//   bool on_ping(const char* data, size_t len);
//   bool on_pong(const char* data, size_t len);
//   bool on_close(uint16_t code /* 1005 if no code */, std::string_view reason);
//   void on_error(uint16_t close_code /* 1002, 1007, 1009, 1013 */, const char* reason);
// and, once permessage-deflate is on (set_deflate), for a message whose
// first frame had RSV1 set: its payload as received (the frames'
// payloads concatenated, still compressed; text not yet validated):
//   bool on_compressed_message(Opcode op, const char* data, size_t len);
// (protocol/deflate_message.h inflates it, bounded, and validates it.) A
// handler that fails the message there (on_error) returns false, and the
// caller feeds the parser nothing more.
// After on_close or on_error the parser is finished and consumes nothing more.
class FrameParser {
 public:
  // `limits` is referenced, not copied (a server shares one set among all
  // its connections): it must outlive the parser.
  explicit FrameParser(const ParserLimits& limits = default_limits()) : limits_(&limits) {}
  explicit FrameParser(ParserLimits&&) = delete;  // would dangle
  // Gives its share of the input budget back.
  ~FrameParser() { drop_spill(); }
  FrameParser(const FrameParser&) = delete;
  FrameParser& operator=(const FrameParser&) = delete;

  // A message limit of this parser's own, below the shared one (e.g. what a
  // handler accepts on this connection at most); 0: none. Decided like the
  // shared limit, from each frame header and the message's running total,
  // so it applies from the next header on.
  void set_max_message_size(uint64_t n) { own_limit_ = uint32_t(std::min<uint64_t>(n, UINT32_MAX)); }
  uint64_t max_message_size() const {
    return own_limit_ && own_limit_ < limits_->max_message_size ? own_limit_ : limits_->max_message_size;
  }

  // Consume bytes; `data` may be modified (unmasked in place). Returns the
  // number of bytes consumed: all of them unless a handler returned false or
  // the parser finished. Message payloads that lie entirely in `data` are
  // passed to the handler without copying.
  template <class Handler>
  size_t consume(uint8_t* data, size_t len, Handler& h);

  bool finished() const { return state_ == State::Done; }
  // True when no partial frame or message is buffered (idle connection).
  bool idle() const { return state_ == State::Header && hdr_len_ == 0 && !in_message_; }
  // Bytes held for a partially received message (for memory accounting).
  size_t buffered() const { return spill_ ? spill_->message.size() : 0; }
  // Bytes of the input budget this parser holds: the announced length of
  // the message it is reassembling.
  uint64_t reserved() const { return spill_ ? spill_->charged : 0; }
  // Release the reassembly memory when idle. Normally a no-op: the parser
  // frees it itself as soon as the message that needed it completes.
  void shrink() {
    if (idle() && (!spill_ || spill_->control.empty())) drop_spill();
  }

  // permessage-deflate was negotiated: RSV1 marks a compressed message
  // (on its first frame only; never on a control frame). Off: RSV1 is a
  // protocol error (1002) like RSV2 and RSV3.
  void set_deflate(bool on) { deflate_ = on; }
  bool deflate() const { return deflate_; }

  static const ParserLimits& default_limits() {
    static const ParserLimits kDefault;
    return kDefault;
  }

 private:
  enum class State : uint8_t { Header, Payload, Done };

  // State of a message (or control frame) that spans reads or fragments.
  // Allocated only then and freed when it completes, so an idle parser (and
  // one receiving whole frames per read, the zero-copy path) owns no heap.
  struct Spill {
    std::string message;      // reassembly buffer for data messages
    std::string control;      // reassembly buffer for a split control frame
    uint64_t msg_size = 0;    // announced bytes of the message so far
    uint64_t charged = 0;     // of them, taken from the input budget
    size_t fragments = 0;     // frames of the message so far
    Utf8Stream utf8;
  };

  Spill& spill() {
    if (!spill_) spill_ = std::make_unique<Spill>();
    return *spill_;
  }

  // Takes `n` bytes of the input budget for the message `sp` reassembles;
  // false if the budget has no room for them.
  bool charge(Spill& sp, uint64_t n) {
    InputBudget* b = limits_->input_budget;
    if (!b) return true;
    if (!b->take(n)) return false;
    sp.charged += n;
    return true;
  }
  // Frees the reassembly state and gives its budget back.
  void drop_spill() {
    if (!spill_) return;
    if (limits_->input_budget) limits_->input_budget->give(spill_->charged);
    spill_.reset();
  }

  const ParserLimits* limits_;
  std::unique_ptr<Spill> spill_;

  // current frame (48 bytes in all: a server holds one parser per connection)
  uint64_t remaining_ = 0;   // payload bytes of this frame still to come
  // The header while it is gathered; during the payload its first 4 bytes
  // hold the frame's masking key (see mask()).
  uint8_t hdr_[kMaxFrameHeader];
  uint8_t hdr_len_ = 0;
  State state_ = State::Header;
  Opcode op_ = Opcode::Continuation;
  bool msg_binary_ : 1 = false;     // the current data message is Binary (else Text)
  bool deflate_ : 1 = false;        // permessage-deflate on (see set_deflate)
  bool compressed_ : 1 = false;     // the current data message had RSV1
  bool fin_ : 1 = false;
  bool masked_ : 1 = false;
  bool in_message_ : 1 = false;
  bool first_frame_ : 1 = false;    // the frame being read opens its message
  bool frame_started_ : 1 = false;  // payload bytes of this frame were seen
  uint8_t mask_phase_ : 2 = 0;      // payload bytes of this frame seen so far, mod 4
  uint32_t own_limit_ = 0;          // see set_max_message_size(); 0: none

  const uint8_t* mask() const { return hdr_; }
  Opcode msg_op() const { return msg_binary_ ? Opcode::Binary : Opcode::Text; }
  template <class Handler> bool deliver_data(Handler& h, const char* p, size_t n);
  void advance_frame(size_t n) {
    mask_phase_ = uint8_t((mask_phase_ + n) & 3);
    frame_started_ = frame_started_ || n > 0;
  }

  // Implementation helpers, defined in frame_parser_impl.h.
  template <class Handler> bool parse_header(Handler& h, size_t* need);
  template <class Handler> bool deliver_control(Handler& h, const char* p, size_t n);
};

// A server holds one parser per connection, idle ones included (issue 6:
// <= 200 bytes of RSS per idle connection): keep it at 48 bytes.
static_assert(sizeof(FrameParser) <= 48, "FrameParser grew: idle memory per connection");

}  // namespace chatws::protocol

#include "protocol/frame_parser_impl.h"
