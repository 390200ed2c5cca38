// FrameParser with permessage-deflate on: RSV1 rules (RFC 7692 6), the
// compressed message handed over whole (any split, fragmented), and
// deliver_inflated's answers (1007, 1009), byte for byte.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "parser_recorder.h"
#include "protocol/deflate_message.h"
#include "protocol/frame_parser.h"

namespace chatws::protocol {
namespace {

using namespace chatws::protocol::testing;
using Events = std::vector<Event>;

// Inflates compressed messages like the server does.
struct InflatingRecorder : Recorder {
  Inflater inf{15, true};
  std::string scratch;
  size_t max = 1 << 20;
  int compressed = 0;
  bool on_compressed_message(Opcode op, const char* d, size_t n) {
    ++compressed;
    return deliver_inflated(inf, max, &scratch, op, d, n, *this);
  }
};

Events feed(const std::string& stream, const std::vector<size_t>& cuts, bool deflate,
            size_t max = 1 << 20, int* compressed = nullptr) {
  FrameParser parser;
  parser.set_deflate(deflate);
  InflatingRecorder rec;
  rec.max = max;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    if (end < prev) continue;
    std::string piece = stream.substr(prev, end - prev);
    const size_t used = parser.consume(reinterpret_cast<uint8_t*>(piece.data()), piece.size(), rec);
    prev = end;
    if (used != piece.size() || (!rec.events.empty() && rec.events.back().kind == Event::Error)) break;
  }
  if (compressed) *compressed = rec.compressed;
  return rec.events;
}

std::string rsv1(std::string f) {
  f[0] = char(uint8_t(f[0]) | 0x40);
  return f;
}

std::string compress(std::string_view s) {
  Deflater d(15, 8, false);
  std::string out;
  EXPECT_TRUE(d.compress(s.data(), s.size(), &out));
  return out;
}

const std::string kHello = raw({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});

TEST(FrameParserDeflate, CompressedTextFrameFromTheRfc) {
  int n = 0;
  EXPECT_EQ(feed(rsv1(cframe(Opcode::Text, kHello)), {}, true, 1 << 20, &n), Events{text("Hello")});
  EXPECT_EQ(n, 1);
}

TEST(FrameParserDeflate, Rsv1WithoutNegotiationIs1002) {
  EXPECT_EQ(feed(rsv1(cframe(Opcode::Text, kHello)), {}, false), Events{error_ev(1002)});
}

TEST(FrameParserDeflate, Rsv2AndRsv3StayErrors) {
  std::string f = cframe(Opcode::Text, "x");
  f[0] = char(uint8_t(f[0]) | 0x20);
  EXPECT_EQ(feed(f, {}, true), Events{error_ev(1002)});
  f[0] = char(0x80 | 0x10 | 0x1);
  EXPECT_EQ(feed(f, {}, true), Events{error_ev(1002)});
}

TEST(FrameParserDeflate, ControlFramesAreNeverCompressed) {
  for (Opcode op : {Opcode::Ping, Opcode::Pong, Opcode::Close}) {
    EXPECT_EQ(feed(rsv1(cframe(op, "")), {}, true), Events{error_ev(1002)}) << int(op);
  }
}

TEST(FrameParserDeflate, Rsv1OnlyOnTheFirstFragment) {
  const std::string c = compress("Hello, fragmented world");
  std::string good = rsv1(cframe(Opcode::Text, c.substr(0, 4), false)) +
                     cframe(Opcode::Continuation, c.substr(4, 5), false) +
                     cframe(Opcode::Ping, "p") + cframe(Opcode::Continuation, c.substr(9));
  EXPECT_EQ(feed(good, {}, true), (Events{ping("p"), text("Hello, fragmented world")}));
  std::string bad = rsv1(cframe(Opcode::Text, c.substr(0, 4), false)) +
                    rsv1(cframe(Opcode::Continuation, c.substr(4)));
  EXPECT_EQ(feed(bad, {}, true), Events{error_ev(1002)});
}

TEST(FrameParserDeflate, UncompressedMessagesStillWork) {
  std::string s = cframe(Opcode::Text, "plain") + rsv1(cframe(Opcode::Binary, compress("zip"))) +
                  cframe(Opcode::Text, "again");
  EXPECT_EQ(feed(s, {}, true), (Events{text("plain"), binary("zip"), text("again")}));
}

TEST(FrameParserDeflate, AnySplitGivesTheSameMessages) {
  std::mt19937 rng(11);
  std::string big(5000, '\0');
  for (auto& ch : big) ch = char('a' + rng() % 4);
  const std::string c = compress(big);
  std::string s = rsv1(cframe(Opcode::Text, c.substr(0, 100), false)) +
                  cframe(Opcode::Continuation, c.substr(100)) + rsv1(cframe(Opcode::Text, kHello));
  const Events want{text(big), text("Hello")};
  EXPECT_EQ(feed(s, {}, true), want);
  for (int t = 0; t < 50; ++t) {
    std::vector<size_t> cuts;
    for (size_t i = 1 + rng() % 7; i < s.size(); i += 1 + rng() % 300) cuts.push_back(i);
    ASSERT_EQ(feed(s, cuts, true), want) << "trial " << t;
  }
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < s.size(); ++i) bytewise.push_back(i);
  EXPECT_EQ(feed(s, bytewise, true), want);
}

TEST(FrameParserDeflate, BadDeflateDataIs1007) {
  EXPECT_EQ(feed(rsv1(cframe(Opcode::Text, raw({0xff, 0xff, 0xff}))), {}, true), Events{error_ev(1007)});
}

TEST(FrameParserDeflate, InvalidUtf8OnceInflatedIs1007) {
  EXPECT_EQ(feed(rsv1(cframe(Opcode::Text, compress("\xc3\x28 not utf-8"))), {}, true),
            Events{error_ev(1007)});
  // The same bytes as binary are fine.
  EXPECT_EQ(feed(rsv1(cframe(Opcode::Binary, compress("\xc3\x28"))), {}, true),
            Events{binary("\xc3\x28")});
}

TEST(FrameParserDeflate, BombIs1009AcrossFragments) {
  const std::string zeros(4u << 20, '\0');
  const std::string c = compress(zeros);
  ASSERT_LT(c.size(), 8192u);
  std::string s;
  for (size_t i = 0; i < c.size(); i += 512) {
    std::string part = c.substr(i, 512);
    const bool last = i + 512 >= c.size();
    std::string f = cframe(i == 0 ? Opcode::Binary : Opcode::Continuation, part, last);
    s += i == 0 ? rsv1(f) : f;
  }
  EXPECT_EQ(feed(s, {}, true, 1 << 20), Events{error_ev(1009)});
  // Within the limit it arrives whole.
  EXPECT_EQ(feed(s, {}, true, 4u << 20), Events{binary(zeros)});
}

}  // namespace
}  // namespace chatws::protocol
