// A compressed message from FrameParser::on_compressed_message, inflated
// within the message limit and validated, then delivered as a plain one.
// Pure: the caller owns the inflater and the output buffer.
#pragma once

#include <cstddef>
#include <string>

#include "protocol/deflate_codec.h"
#include "protocol/frame.h"
#include "protocol/utf8.h"

namespace chatws::protocol {

// Inflates `data` with `inf` into *out (at most `max` bytes of output) and
// hands the result to h.on_message; returns what it returned. Fails the
// message through h.on_error (and returns false) with 1009 when it inflates
// beyond `max`, 1007 when it does not inflate or a text message is not
// UTF-8 once inflated, 1011 when zlib has no memory.
template <class Handler>
bool deliver_inflated(Inflater& inf, size_t max, std::string* out, Opcode op, const char* data,
                      size_t len, Handler& h) {
  switch (inf.inflate_message(reinterpret_cast<const uint8_t*>(data), len, max, out)) {
    case Inflater::Result::Ok:
      break;
    case Inflater::Result::TooBig:
      h.on_error(1009, "message too big once inflated");
      return false;
    case Inflater::Result::Bad:
      h.on_error(1007, "compressed message does not inflate");
      return false;
    case Inflater::Result::NoMem:
      h.on_error(1011, "out of memory inflating a message");
      return false;
  }
  if (op == Opcode::Text && !is_valid_utf8(out->data(), out->size())) {
    h.on_error(1007, "text message is not valid UTF-8");
    return false;
  }
  return h.on_message(op, out->data(), out->size());
}

}  // namespace chatws::protocol
