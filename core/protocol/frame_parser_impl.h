// Template implementation of FrameParser (included at the end of
// frame_parser.h; do not include directly).
//
// Decisions beyond the letter of RFC 6455:
// - Non-minimal length encodings (e.g. 5 carried in the 16-bit form) are
//   accepted. Section 5.2 puts "minimal number of bytes" on the sender; a
//   receiver gains nothing by rejecting them and the length is validated
//   against the limits either way.
// - Limits are decided from the header alone, before any payload byte is
//   stored: a frame that would take its message over max_message_size (the
//   parser's own limit if lower) is answered with 1009 as soon as its length
//   field is complete. A frame that must be reassembled (not delivered in
//   place) takes its announced length from the shared input budget when it
//   starts, or fails with 1013 (try again later: the server, not this
//   message, is over its bound); the message gives it all back when it
//   completes or the parser is destroyed.
// - A handler returning false stops consume() right after the event that
//   returned it; the bytes of that frame count as consumed and the parser is
//   positioned at the next frame, so consume() may be called again with the
//   rest of the buffer. In practice false means the connection is closing.
// - After on_close/on_error the parser is Done: it consumes nothing more.
#pragma once

#include <algorithm>
#include <cstring>

namespace chatws::protocol {

namespace frame_parser_detail {

// How far beyond the bytes that have actually arrived the reassembly buffer
// may be reserved on the strength of a frame header's announced length.
// Bounds what a lying header can make us allocate.
constexpr size_t kReserveSlack = 64 * 1024;

inline bool is_control(Opcode op) { return (static_cast<uint8_t>(op) & 0x08) != 0; }

inline bool is_known_opcode(uint8_t op) {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// Grows `buf` to hold `add` more bytes. Uses the frame's announced remaining
// length to avoid repeated reallocation, but never reserves more than
// max(2 * current size, arrived + kReserveSlack): growth stays geometric and a
// header announcing a huge payload cannot allocate ahead of the data.
inline void reserve_for(std::string& buf, size_t add, uint64_t announced_rest) {
  size_t want = buf.size() + add;
  if (want <= buf.capacity()) return;
  uint64_t ideal = buf.size() + announced_rest;
  uint64_t bound = std::max<uint64_t>(2 * static_cast<uint64_t>(buf.size()), want + kReserveSlack);
  buf.reserve(static_cast<size_t>(std::max<uint64_t>(want, std::min(ideal, bound))));
}

}  // namespace frame_parser_detail

template <class Handler>
bool FrameParser::parse_header(Handler& h, size_t* need) {
  using namespace frame_parser_detail;
  auto fail = [&](uint16_t code, const char* why) {
    state_ = State::Done;
    h.on_error(code, why);
    return false;
  };

  if (hdr_len_ < 2) {
    *need = 2;
    return true;
  }
  const uint8_t b0 = hdr_[0], b1 = hdr_[1];
  const uint8_t opcode = b0 & 0x0F;
  const bool fin = (b0 & 0x80) != 0;
  const bool masked = (b1 & 0x80) != 0;
  const uint8_t len7 = b1 & 0x7F;

  // Everything decidable from the first two bytes fails here, before the
  // rest of the header arrives.
  if (b0 & 0x30) return fail(1002, "reserved bits set without a negotiated extension");
  if (!is_known_opcode(opcode)) return fail(1002, "reserved opcode");
  if (limits_->require_mask && !masked) return fail(1002, "client frame not masked");
  const Opcode op = static_cast<Opcode>(opcode);
  const bool rsv1 = (b0 & 0x40) != 0;
  if (rsv1) {
    // RFC 7692 6: RSV1 means "compressed", on the first frame of a data
    // message only, and only once permessage-deflate is in use.
    if (!deflate_) return fail(1002, "RSV1 set without permessage-deflate");
    if (is_control(op)) return fail(1002, "RSV1 set on a control frame");
    if (op == Opcode::Continuation) return fail(1002, "RSV1 set on a continuation frame");
  }
  if (is_control(op)) {
    if (!fin) return fail(1002, "fragmented control frame");
    if (len7 > kMaxControlPayload) return fail(1002, "control frame payload over 125 bytes");
  } else if (op == Opcode::Continuation) {
    if (!in_message_) return fail(1002, "continuation frame without a message in progress");
    // in_message_ between frames implies the spill exists (the message's
    // first frame was not fin, so it went through reassembly).
    if (spill_->fragments >= limits_->max_fragments) return fail(1009, "too many fragments");
  } else if (in_message_) {
    return fail(1002, "new data frame inside a fragmented message");
  }

  const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  const size_t full = 2 + ext + (masked ? 4 : 0);
  if (hdr_len_ < 2 + ext) {
    *need = 2 + ext;  // judge the length before waiting for the mask
    return true;
  }
  uint64_t len = len7;
  if (ext) {
    len = 0;
    for (size_t i = 0; i < ext; ++i) len = (len << 8) | hdr_[2 + i];
    if (len >> 63) return fail(1002, "64-bit payload length with the top bit set");
  }
  if (!is_control(op)) {
    // Already-received fragments of this message count towards the limit.
    const uint64_t so_far = op == Opcode::Continuation ? spill_->msg_size : 0;
    const uint64_t limit = max_message_size();
    if (so_far > limit || len > limit - so_far) return fail(1009, "message too big");
    // A continuation is always reassembled: it takes its share now.
    if (op == Opcode::Continuation && !charge(*spill_, len))
      return fail(1013, "server has too much partial input buffered");
  }
  if (hdr_len_ < full) {
    *need = full;
    return true;
  }

  // Complete and valid header: start the frame.
  *need = 0;
  op_ = op;
  fin_ = fin;
  masked_ = masked;
  // The key moves to the front of hdr_, which is free until the next header.
  if (masked) std::memmove(hdr_, hdr_ + 2 + ext, 4);
  remaining_ = len;
  frame_started_ = false;
  mask_phase_ = 0;
  hdr_len_ = 0;
  state_ = State::Payload;
  if (!is_control(op)) {
    if (op != Opcode::Continuation) {
      // The spill, if one is needed, is created by the first payload chunk
      // that cannot be delivered in place.
      in_message_ = true;
      first_frame_ = true;
      msg_binary_ = op == Opcode::Binary;
      compressed_ = rsv1;
      drop_spill();  // already null: freed when the last message completed
    } else {
      first_frame_ = false;
      ++spill_->fragments;
      spill_->msg_size += len;
    }
  }
  return true;
}

template <class Handler>
bool FrameParser::deliver_data(Handler& h, const char* p, size_t n) {
  if (!compressed_) return h.on_message(msg_op(), p, n);
  if constexpr (requires { h.on_compressed_message(msg_op(), p, n); }) {
    return h.on_compressed_message(msg_op(), p, n);
  } else {
    // set_deflate(true) with a handler that cannot take compressed messages.
    state_ = State::Done;
    h.on_error(1011, "compressed message not supported");
    return false;
  }
}

template <class Handler>
bool FrameParser::deliver_control(Handler& h, const char* p, size_t n) {
  switch (op_) {
    case Opcode::Ping:
      return h.on_ping(p, n);
    case Opcode::Pong:
      return h.on_pong(p, n);
    default:
      break;
  }
  // Close (RFC 6455 5.5.1, 7.4): empty, or a valid code plus a UTF-8 reason.
  state_ = State::Done;
  if (n == 0) {
    h.on_close(1005, std::string_view());
    return false;
  }
  if (n == 1) {
    h.on_error(1002, "close frame with a 1-byte payload");
    return false;
  }
  const uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) |
                                              static_cast<uint8_t>(p[1]));
  if (!is_valid_close_code(code)) {
    h.on_error(1002, "invalid close code");
    return false;
  }
  if (!is_valid_utf8(p + 2, n - 2)) {
    h.on_error(1007, "close reason is not valid UTF-8");
    return false;
  }
  h.on_close(code, std::string_view(p + 2, n - 2));
  return false;
}

template <class Handler>
size_t FrameParser::consume(uint8_t* data, size_t len, Handler& h) {
  using namespace frame_parser_detail;
  size_t pos = 0;
  while (state_ != State::Done) {
    if (state_ == State::Header) {
      if (hdr_len_ == 0 && len - pos >= kMaxFrameHeader) {
        // The whole header is in this buffer (the common case): one
        // fixed-size copy and one evaluation, instead of growing it in steps.
        const uint8_t b1 = data[pos + 1];
        const uint8_t len7 = b1 & 0x7F;
        const size_t full = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
        std::memcpy(hdr_, data + pos, kMaxFrameHeader);
        hdr_len_ = static_cast<uint8_t>(full);
        pos += full;
        size_t need = 0;
        if (!parse_header(h, &need)) return pos;
        continue;  // complete: all `full` bytes were there
      }
      // Gather header bytes (at most 14) into hdr_, re-evaluating after each
      // addition: parse_header says how many it needs next.
      size_t need = 2;
      for (;;) {
        if (hdr_len_ < need) {
          const size_t take = std::min(need - hdr_len_, len - pos);
          if (take == 0) return pos;  // input exhausted before the header
          std::memcpy(hdr_ + hdr_len_, data + pos, take);
          hdr_len_ = static_cast<uint8_t>(hdr_len_ + take);
          pos += take;
          if (hdr_len_ < need) return pos;  // input exhausted mid-header
        }
        if (!parse_header(h, &need)) return pos;
        if (need == 0) break;
      }
      continue;  // a 0-length payload is handled even at the end of input
    }

    // Payload.
    const size_t avail = static_cast<size_t>(std::min<uint64_t>(remaining_, len - pos));
    if (remaining_ > 0 && avail == 0) return pos;
    uint8_t* p = data + pos;

    if (is_control(op_)) {
      if ((!spill_ || spill_->control.empty()) && avail == remaining_) {
        // Whole control payload in this buffer: deliver in place.
        if (masked_) apply_mask(p, avail, mask(), 0);
        pos += avail;
        state_ = State::Header;
        if (!deliver_control(h, reinterpret_cast<const char*>(p), avail)) return pos;
        continue;
      }
      if (masked_) apply_mask(p, avail, mask(), mask_phase_);
      Spill& sp = spill();
      sp.control.append(reinterpret_cast<const char*>(p), avail);  // <= 125 bytes
      advance_frame(avail);
      remaining_ -= avail;
      pos += avail;
      if (remaining_ > 0) return pos;
      state_ = State::Header;
      // Released whatever the handler returns, ready for the next split one;
      // a fragmented message it interrupted keeps its part of the spill.
      const bool go_on = deliver_control(h, sp.control.data(), sp.control.size());
      if (in_message_) {
        sp.control.clear();
      } else {
        drop_spill();
      }
      if (!go_on) return pos;
      continue;
    }

    // Data frame.
    if (masked_) apply_mask(p, avail, mask(), mask_phase_);
    // A compressed message's text is validated once inflated.
    const bool text = !msg_binary_ && !compressed_;
    if (fin_ && first_frame_ && !frame_started_ && avail == remaining_) {
      // Zero-copy: an unfragmented message entirely inside `data`.
      pos += avail;
      state_ = State::Header;
      in_message_ = false;
      if (text && !is_valid_utf8(reinterpret_cast<const char*>(p), avail)) {
        state_ = State::Done;
        h.on_error(1007, "text message is not valid UTF-8");
        return pos;
      }
      if (!deliver_data(h, reinterpret_cast<const char*>(p), avail)) return pos;
      continue;
    }

    // Reassembly: validate text as it arrives so bad UTF-8 fails fast.
    if (!spill_) {
      // First chunk of the message's first frame (nothing of it seen yet):
      // the whole frame will be held, so its announced length is charged.
      spill_ = std::make_unique<Spill>();
      spill_->fragments = 1;
      spill_->msg_size = remaining_;
      if (!charge(*spill_, remaining_)) {
        drop_spill();
        state_ = State::Done;
        h.on_error(1013, "server has too much partial input buffered");
        return pos;
      }
    }
    Spill& sp = *spill_;
    if (text && !sp.utf8.feed(reinterpret_cast<const char*>(p), avail)) {
      state_ = State::Done;
      h.on_error(1007, "text message is not valid UTF-8");
      return pos;
    }
    reserve_for(sp.message, avail, remaining_);
    sp.message.append(reinterpret_cast<const char*>(p), avail);
    advance_frame(avail);
    remaining_ -= avail;
    pos += avail;
    if (remaining_ > 0) return pos;
    state_ = State::Header;
    if (!fin_) continue;
    in_message_ = false;
    if (text && !sp.utf8.finish()) {
      state_ = State::Done;
      h.on_error(1007, "text message ends inside a UTF-8 sequence");
      return pos;
    }
    // The handler sees the buffer; freed after, so an idle parser owns none.
    const bool go_on = deliver_data(h, sp.message.data(), sp.message.size());
    drop_spill();
    if (!go_on) return pos;
  }
  return pos;
}

}  // namespace chatws::protocol
