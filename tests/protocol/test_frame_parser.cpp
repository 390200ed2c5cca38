// FrameParser: delivery of valid streams, whatever the split of the bytes.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "parser_recorder.h"
#include "protocol/frame_parser.h"

namespace chatws::protocol {
namespace {

using namespace chatws::protocol::testing;
using Events = std::vector<Event>;

ParserLimits unmasked_ok() {
  ParserLimits l;
  l.require_mask = false;
  return l;
}

// Checks that `stream` yields `expected` whole, one byte at a time, and cut
// in two at every point.
void expect_any_split(const std::string& stream, const Events& expected,
                      const ParserLimits& limits = {}) {
  EXPECT_EQ(feed_whole(stream, limits), expected) << "whole";
  EXPECT_EQ(feed_bytewise(stream, limits), expected) << "byte at a time";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(feed_pieces(stream, {cut}, limits), expected) << "cut at " << cut;
  }
}

// --- RFC 6455 5.7 examples ------------------------------------------------

TEST(FrameParser, RfcMaskedHello) {
  const std::string f = raw({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  expect_any_split(f, {text("Hello")});
}

TEST(FrameParser, RfcUnmaskedHelloWhenMaskNotRequired) {
  const std::string f = raw({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  expect_any_split(f, {text("Hello")}, unmasked_ok());
}

TEST(FrameParser, RfcFragmentedUnmaskedHello) {
  const std::string f = raw({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
  expect_any_split(f, {text("Hello")}, unmasked_ok());
}

TEST(FrameParser, RfcPingAndPong) {
  expect_any_split(raw({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), {ping("Hello")},
                   unmasked_ok());
  expect_any_split(raw({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                   {pong("Hello")});
}

TEST(FrameParser, Rfc256And64KiBBinary) {
  std::string p256(256, '\0'), p64k(65536, '\0');
  for (size_t i = 0; i < p256.size(); ++i) p256[i] = static_cast<char>(i);
  for (size_t i = 0; i < p64k.size(); ++i) p64k[i] = static_cast<char>(i * 7);
  std::string f256 = cframe(Opcode::Binary, p256);
  ASSERT_EQ(static_cast<uint8_t>(f256[1]), 0x80 | 126);
  std::string f64k = cframe(Opcode::Binary, p64k);
  ASSERT_EQ(static_cast<uint8_t>(f64k[1]), 0x80 | 127);
  expect_any_split(f256, {binary(p256)});
  EXPECT_EQ(feed_whole(f64k), Events{binary(p64k)});
  EXPECT_EQ(feed_bytewise(f64k), Events{binary(p64k)});
  for (size_t cut : {1, 2, 9, 10, 13, 14, 15, 1000, 65545, 65549}) {
    EXPECT_EQ(feed_pieces(f64k, {cut}), Events{binary(p64k)}) << cut;
  }
  // Unmasked forms too (the exact bytes of 5.7).
  EXPECT_EQ(feed_whole(encode_frame(Opcode::Binary, p256), unmasked_ok()), Events{binary(p256)});
  EXPECT_EQ(feed_whole(encode_frame(Opcode::Binary, p64k), unmasked_ok()), Events{binary(p64k)});
}

// --- streams of several frames -------------------------------------------

TEST(FrameParser, ManyFramesInOneBuffer) {
  std::string s;
  Events expected;
  for (int i = 0; i < 50; ++i) {
    std::string p = "message " + std::to_string(i) + std::string(i * 5, 'x');
    s += cframe(i % 3 ? Opcode::Text : Opcode::Binary, p);
    expected.push_back(i % 3 ? text(p) : binary(p));
  }
  s += cframe(Opcode::Close, close_payload(1000, "done"));
  expected.push_back(close_ev(1000, "done"));
  EXPECT_EQ(feed_whole(s), expected);
  EXPECT_EQ(feed_bytewise(s), expected);
}

TEST(FrameParser, ControlFramesBetweenFragments) {
  std::string s = cframe(Opcode::Text, "frag-1 ", false) + cframe(Opcode::Ping, "p1") +
                  cframe(Opcode::Continuation, "frag-2 ", false) + cframe(Opcode::Pong, "") +
                  cframe(Opcode::Ping, std::string(125, 'z')) +
                  cframe(Opcode::Continuation, "frag-3", true) + cframe(Opcode::Binary, "b");
  Events expected = {ping("p1"), pong(""), ping(std::string(125, 'z')),
                     text("frag-1 frag-2 frag-3"), binary("b")};
  expect_any_split(s, expected);
}

TEST(FrameParser, CloseInsideFragmentedMessageEndsIt) {
  std::string s = cframe(Opcode::Text, "half", false) + cframe(Opcode::Close, "");
  expect_any_split(s, {close_ev(1005)});
}

TEST(FrameParser, EmptyFramesAndMessages) {
  std::string s = cframe(Opcode::Text, "") + cframe(Opcode::Binary, "", false) +
                  cframe(Opcode::Continuation, "", false) + cframe(Opcode::Continuation, "") +
                  cframe(Opcode::Ping, "") + cframe(Opcode::Text, "x");
  expect_any_split(s, {text(""), binary(""), ping(""), text("x")});
}

TEST(FrameParser, Utf8SequenceSplitAcrossFragments) {
  // U+1F600 split over three fragments, and a 2-byte char split in two.
  std::string s = cframe(Opcode::Text, "a\xF0\x9F", false) +
                  cframe(Opcode::Continuation, "\x98", false) +
                  cframe(Opcode::Continuation, "\x80\xC3", false) +
                  cframe(Opcode::Continuation, "\xA9", true);
  expect_any_split(s, {text("a\xF0\x9F\x98\x80\xC3\xA9")});
}

TEST(FrameParser, NonMinimalLengthEncodingIsAccepted) {
  // "Hello" announced with the 16-bit and the 64-bit forms (documented choice).
  const uint8_t m[4] = {1, 2, 3, 4};
  std::string masked = "Hello";
  apply_mask(reinterpret_cast<uint8_t*>(masked.data()), 5, m, 0);
  std::string f16 = raw({0x81, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4}) + masked;
  std::string f64 = raw({0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}) + masked;
  expect_any_split(f16, {text("Hello")});
  expect_any_split(f64, {text("Hello")});
}

TEST(FrameParser, CloseCodesAndReasons) {
  expect_any_split(cframe(Opcode::Close, ""), {close_ev(1005, "")});
  expect_any_split(cframe(Opcode::Close, close_payload(1000, "")), {close_ev(1000, "")});
  expect_any_split(cframe(Opcode::Close, close_payload(4999, "h\xC3\xA9")),
                   {close_ev(4999, "h\xC3\xA9")});
  for (uint16_t c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999}) {
    EXPECT_EQ(feed_whole(cframe(Opcode::Close, close_payload(c, "r"))), Events{close_ev(c, "r")})
        << c;
  }
  std::string max_reason(123, 'r');
  EXPECT_EQ(feed_bytewise(cframe(Opcode::Close, close_payload(1001, max_reason))),
            Events{close_ev(1001, max_reason)});
}

TEST(FrameParser, NothingConsumedAfterClose) {
  std::string s = cframe(Opcode::Close, "") + cframe(Opcode::Text, "after");
  FrameParser p;
  Recorder r;
  std::string buf = s;
  size_t used = p.consume(reinterpret_cast<uint8_t*>(buf.data()), buf.size(), r);
  EXPECT_EQ(used, cframe(Opcode::Close, "").size());
  EXPECT_TRUE(p.finished());
  EXPECT_EQ(r.events, Events{close_ev(1005)});
  EXPECT_EQ(p.consume(reinterpret_cast<uint8_t*>(buf.data()) + used, buf.size() - used, r), 0u);
  EXPECT_EQ(r.events.size(), 1u);
}

TEST(FrameParser, RandomSplitsOfARandomStream) {
  std::mt19937 rng(42);
  std::string s;
  Events expected;
  for (int i = 0; i < 200; ++i) {
    int kind = static_cast<int>(rng() % 5);
    size_t len = rng() % 3 == 0 ? rng() % 70000 : rng() % 300;
    std::string p(len, '\0');
    for (auto& c : p) c = static_cast<char>('a' + rng() % 26);
    if (kind == 0) {
      s += cframe(Opcode::Ping, p.substr(0, 125));
      expected.push_back(ping(p.substr(0, 125)));
    } else if (kind == 1) {
      // Fragmented, with a pong in the middle.
      size_t a = p.size() / 3, b = 2 * p.size() / 3;
      s += cframe(Opcode::Binary, p.substr(0, a), false);
      s += cframe(Opcode::Continuation, p.substr(a, b - a), false);
      s += cframe(Opcode::Pong, "x");
      s += cframe(Opcode::Continuation, p.substr(b), true);
      expected.push_back(pong("x"));
      expected.push_back(binary(p));
    } else {
      s += cframe(Opcode::Text, p);
      expected.push_back(text(p));
    }
  }
  for (int t = 0; t < 20; ++t) {
    std::vector<size_t> cuts;
    size_t step = 1 + rng() % (t < 10 ? 20 : 5000);
    for (size_t pos = rng() % step; pos < s.size(); pos += 1 + rng() % step) cuts.push_back(pos);
    ASSERT_EQ(feed_pieces(s, cuts), expected) << "trial " << t;
  }
}

// --- zero copy, buffering, handler stop ------------------------------------

TEST(FrameParser, WholeUnfragmentedFramesAreDeliveredInPlace) {
  std::string s = cframe(Opcode::Text, "first") + cframe(Opcode::Binary, std::string(70000, 'q'));
  std::vector<uint8_t> buf(s.begin(), s.end());
  FrameParser p;
  Recorder r;
  ASSERT_EQ(p.consume(buf.data(), buf.size(), r), buf.size());
  ASSERT_EQ(r.message_ptrs.size(), 2u);
  const char* lo = reinterpret_cast<const char*>(buf.data());
  const char* hi = lo + buf.size();
  for (const char* ptr : r.message_ptrs) {
    EXPECT_GE(ptr, lo);
    EXPECT_LT(ptr, hi);
  }
  EXPECT_EQ(p.buffered(), 0u);
  EXPECT_TRUE(p.idle());
}

TEST(FrameParser, PartialFrameIsBufferedThenDelivered) {
  std::string s = cframe(Opcode::Text, "0123456789");
  std::vector<uint8_t> buf(s.begin(), s.end());
  FrameParser p;
  Recorder r;
  ASSERT_EQ(p.consume(buf.data(), 9, r), 9u);  // header (6) + 3 payload bytes
  EXPECT_FALSE(p.idle());
  EXPECT_EQ(p.buffered(), 3u);
  EXPECT_TRUE(r.events.empty());
  ASSERT_EQ(p.consume(buf.data() + 9, buf.size() - 9, r), buf.size() - 9);
  EXPECT_EQ(r.events, Events{text("0123456789")});
  EXPECT_TRUE(p.idle());
  p.shrink();
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(FrameParser, IdleOnlyBetweenFrames) {
  std::string s = cframe(Opcode::Text, "ab", false) + cframe(Opcode::Continuation, "c");
  std::vector<uint8_t> buf(s.begin(), s.end());
  FrameParser p;
  Recorder r;
  EXPECT_TRUE(p.idle());
  p.consume(buf.data(), 1, r);
  EXPECT_FALSE(p.idle()) << "half a header";
  const size_t first = cframe(Opcode::Text, "ab", false).size();
  p.consume(buf.data() + 1, first - 1, r);
  EXPECT_FALSE(p.idle()) << "inside a fragmented message";
  p.consume(buf.data() + first, buf.size() - first, r);
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(r.events, Events{text("abc")});
}

TEST(FrameParser, HandlerReturningFalseStopsAfterThatFrame) {
  std::string a = cframe(Opcode::Text, "one"), b = cframe(Opcode::Ping, "two"),
              c = cframe(Opcode::Binary, "three");
  std::string s = a + b + c;
  std::vector<uint8_t> buf(s.begin(), s.end());
  FrameParser p;
  Recorder r;
  r.stop_after = 0;
  size_t used = p.consume(buf.data(), buf.size(), r);
  EXPECT_EQ(used, a.size());
  EXPECT_EQ(r.events, Events{text("one")});
  EXPECT_FALSE(p.finished());
  // The parser sits on the next frame: the rest can be fed again.
  r.stop_after = 1;
  used += p.consume(buf.data() + used, buf.size() - used, r);
  EXPECT_EQ(used, a.size() + b.size());
  r.stop_after = -1;
  used += p.consume(buf.data() + used, buf.size() - used, r);
  EXPECT_EQ(used, buf.size());
  EXPECT_EQ(r.events, (Events{text("one"), ping("two"), binary("three")}));
}

TEST(FrameParser, ReassembledMessageStopStillResets) {
  std::string s = cframe(Opcode::Text, "x", false) + cframe(Opcode::Continuation, "y") +
                  cframe(Opcode::Text, "z");
  std::vector<uint8_t> buf(s.begin(), s.end());
  FrameParser p;
  Recorder r;
  r.stop_after = 0;
  size_t used = p.consume(buf.data(), buf.size(), r);
  EXPECT_EQ(r.events, Events{text("xy")});
  EXPECT_TRUE(p.idle());
  r.stop_after = -1;
  p.consume(buf.data() + used, buf.size() - used, r);
  EXPECT_EQ(r.events, (Events{text("xy"), text("z")}));
}

TEST(FrameParser, ExactlyAtMessageLimitIsAccepted) {
  ParserLimits l;
  l.max_message_size = 1000;
  std::string p(1000, 'm');
  EXPECT_EQ(feed_whole(cframe(Opcode::Binary, p), l), Events{binary(p)});
  std::string s = cframe(Opcode::Binary, p.substr(0, 600), false) +
                  cframe(Opcode::Continuation, p.substr(600), true);
  EXPECT_EQ(feed_bytewise(s, l), Events{binary(p)});
}

TEST(FrameParser, ExactlyMaxFragmentsIsAccepted) {
  ParserLimits l;
  l.max_fragments = 4;
  std::string s = cframe(Opcode::Text, "a", false) + cframe(Opcode::Continuation, "b", false) +
                  cframe(Opcode::Continuation, "c", false) + cframe(Opcode::Continuation, "d");
  EXPECT_EQ(feed_whole(s, l), Events{text("abcd")});
  // The count restarts with each message.
  EXPECT_EQ(feed_whole(s + s, l), (Events{text("abcd"), text("abcd")}));
}

TEST(FrameParser, ControlFramesDoNotCountAsFragmentsOrSize) {
  ParserLimits l;
  l.max_fragments = 2;
  l.max_message_size = 4;
  std::string s = cframe(Opcode::Text, "ab", false) + cframe(Opcode::Ping, "12345678") +
                  cframe(Opcode::Pong, "12345678") + cframe(Opcode::Continuation, "cd");
  EXPECT_EQ(feed_whole(s, l), (Events{ping("12345678"), pong("12345678"), text("abcd")}));
}

}  // namespace
}  // namespace chatws::protocol
