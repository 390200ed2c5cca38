// Fuzz target: compressed messages (permessage-deflate, RFC 7692) through the
// frame parser and the bounded inflate, as the server handles them.
//
// Input: 4 bytes split seed, 1 byte flags (bit 0: the inflater keeps its
// context, bits 1-3: its window 8..15), 2 bytes inflated-size limit, then the
// bytes a client sends. Flags bit 4 set: the rest is not a client stream but
// a message, deflated here (window and context from the flags) and wrapped
// into masked frames with RSV1 on the first, cut at fuzzer-chosen points. The
// stream is parsed twice, whole and in pieces, by two parser + inflater
// pairs. Checks
//   - both see the same events (split does not change the outcome);
//   - every message is at most the limit, text valid UTF-8 (reference
//     decoder), error codes 1002/1007/1009/1011 only, nothing after an error;
//   - a message deflated here comes back byte for byte when within the
//     limit (compressed and inflated), and is refused with 1009 when not.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_split.h"
#include "protocol/deflate_codec.h"
#include "protocol/deflate_message.h"
#include "protocol/frame.h"
#include "protocol/frame_parser.h"
#include "reference_utf8.h"

namespace {

using namespace chatws::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Event {
  char kind;
  uint8_t op;
  uint16_t code;
  std::string data;
  bool operator==(const Event& o) const {
    return kind == o.kind && op == o.op && code == o.code && data == o.data;
  }
};

struct Handler {
  Handler(size_t limit, uint8_t bits, bool keep) : max(limit), inf(bits, keep) {}
  size_t max;
  Inflater inf;
  std::string scratch;
  std::vector<Event> events;
  bool done = false;

  bool on_message(Opcode op, const char* d, size_t n) {
    check(!done);
    check(n <= max);
    if (op == Opcode::Text)
      check(chatws::fuzz::reference_utf8(reinterpret_cast<const uint8_t*>(d), n).valid);
    events.push_back({'m', uint8_t(op), 0, std::string(d, n)});
    return true;
  }
  bool on_compressed_message(Opcode op, const char* d, size_t n) {
    check(!done);
    return deliver_inflated(inf, max, &scratch, op, d, n, *this);
  }
  bool on_ping(const char*, size_t) { return true; }
  bool on_pong(const char*, size_t) { return true; }
  bool on_close(uint16_t code, std::string_view) {
    done = true;
    events.push_back({'c', 0, code, {}});
    return false;
  }
  void on_error(uint16_t code, const char*) {
    check(!done);
    check(code == 1002 || code == 1007 || code == 1009 || code == 1011);
    done = true;
    events.push_back({'e', 0, code, {}});
  }
};

std::vector<Event> run(const std::string& stream, size_t max, uint8_t bits, bool keep,
                       uint32_t seed, bool split) {
  // The server's one limit: the wire size of a plain message, the inflated
  // size of a compressed one.
  ParserLimits limits;
  limits.max_message_size = max;
  FrameParser parser(limits);
  parser.set_deflate(true);
  Handler h(max, bits, keep);
  chatws::fuzz::Splitter sp(seed);
  std::string buf = stream;
  size_t pos = 0;
  while (pos < buf.size() && !h.done) {
    const size_t n = split ? sp.next(buf.size() - pos) : buf.size() - pos;
    std::string piece = buf.substr(pos, n);
    const size_t used = parser.consume(reinterpret_cast<uint8_t*>(piece.data()), n, h);
    pos += n;
    if (used < n) break;
  }
  return h.events;
}

std::string masked(uint8_t b0, std::string_view payload) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string f = encode_masked_frame(Opcode(b0 & 0x0F), payload, mask, (b0 & 0x80) != 0);
  f[0] = char(b0);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 7) return 0;
  uint32_t seed;
  std::memcpy(&seed, data, 4);
  const uint8_t flags = data[4];
  const size_t max = 1 + ((size_t(data[5]) << 8) | data[6]) * 16;  // up to ~1 MiB
  const bool keep = flags & 1;
  const uint8_t bits = uint8_t(8 + ((flags >> 1) & 7));
  std::string rest(reinterpret_cast<const char*>(data + 7), size - 7);

  std::string stream;
  std::string original;
  size_t wire = 0;  // compressed bytes of the message deflated here
  if (flags & 0x10) {
    // A message deflated here: inflates back exactly (or 1009 past the limit).
    original = rest;
    Deflater def(bits < 9 ? 9 : bits, 8, keep);
    std::string z;
    check(def.compress(original.data(), original.size(), &z));
    wire = z.size();
    chatws::fuzz::Splitter sp(seed ^ 0x5bd1e995u);
    size_t pos = 0;
    bool first = true;
    do {
      const size_t n = z.empty() ? 0 : sp.next(z.size() - pos);
      const bool fin = pos + n >= z.size();
      stream += masked(uint8_t((fin ? 0x80 : 0) | (first ? 0x40 | 0x2 : 0x0)), z.substr(pos, n));
      pos += n;
      first = false;
    } while (pos < z.size());
  } else {
    stream = rest;
  }

  const std::vector<Event> whole = run(stream, max, bits, keep, seed, false);
  const std::vector<Event> pieces = run(stream, max, bits, keep, seed, true);
  check(whole == pieces);
  if (flags & 0x10) {
    check(whole.size() == 1);
    // The limit bounds the message on the wire and once inflated.
    if (original.size() <= max && wire <= max) {
      check(whole[0].kind == 'm' && whole[0].data == original);
    } else {
      check(whole[0].kind == 'e' && whole[0].code == 1009);
    }
  }
  return 0;
}
