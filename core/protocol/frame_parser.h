// Server-side incremental frame parser: bytes in (any split), events out.
// No I/O and no allocation except the reassembly state of a message that
// spans several reads or fragments (freed when it completes). Unmasks in
// place, validates text as UTF-8 across fragments, enforces every RFC 6455
// rule a server must.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/utf8.h"

namespace chatws::protocol {

struct ParserLimits {
  uint64_t max_message_size = 16u << 20;  // all fragments of one message
  size_t max_fragments = 65536;           // frames of one message
  bool require_mask = true;               // server side: clients must mask
};

// The events a parser emits. Each returns false to make the parser stop
// consuming (e.g. the connection is being closed).
//   bool on_message(Opcode op /* Text or Binary */, const char* data, size_t len);
//   bool on_ping(const char* data, size_t len);
//   bool on_pong(const char* data, size_t len);
//   bool on_close(uint16_t code /* 1005 if no code */, std::string_view reason);
//   void on_error(uint16_t close_code /* 1002, 1007, 1009 */, const char* reason);
// After on_close or on_error the parser is finished and consumes nothing more.
class FrameParser {
 public:
  // `limits` is referenced, not copied (a server shares one set among all
  // its connections): it must outlive the parser.
  explicit FrameParser(const ParserLimits& limits = default_limits()) : limits_(&limits) {}
  explicit FrameParser(ParserLimits&&) = delete;  // would dangle

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
  // Release the reassembly memory when idle. Normally a no-op: the parser
  // frees it itself as soon as the message that needed it completes.
  void shrink() {
    if (idle() && (!spill_ || spill_->control.empty())) spill_.reset();
  }

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
    size_t fragments = 0;     // frames of the message so far
    Utf8Stream utf8;
  };

  Spill& spill() {
    if (!spill_) spill_ = std::make_unique<Spill>();
    return *spill_;
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
  Opcode msg_op_ = Opcode::Text;  // current (data) message
  bool fin_ = false;
  bool masked_ = false;
  bool in_message_ = false;
  bool first_frame_ = false;  // the frame being read opens its message
  bool frame_started_ = false;  // payload bytes of this frame were seen
  uint8_t mask_phase_ = 0;      // payload bytes of this frame seen so far, mod 4

  const uint8_t* mask() const { return hdr_; }
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
