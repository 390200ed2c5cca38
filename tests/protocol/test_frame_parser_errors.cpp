// FrameParser: every protocol error, with its close code, whole and byte at
// a time, plus limits decided from the header alone.
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

struct ErrorCase {
  const char* name;
  std::string stream;
  Events expected;  // events before the error, then the error
  ParserLimits limits = {};
};

std::string with_header_byte0(std::string f, uint8_t b0) {
  f[0] = static_cast<char>(b0);
  return f;
}

ParserLimits limit_size(uint64_t n) {
  ParserLimits l;
  l.max_message_size = n;
  return l;
}

ParserLimits limit_fragments(size_t n) {
  ParserLimits l;
  l.max_fragments = n;
  return l;
}

// A masked header announcing `len` with the 64-bit form, and no payload.
std::string header64(uint8_t b0, uint64_t len) {
  std::string h = raw({b0, 0x80 | 127});
  for (int i = 7; i >= 0; --i) h.push_back(static_cast<char>(len >> (8 * i)));
  h += raw({1, 2, 3, 4});
  return h;
}

std::vector<ErrorCase> error_cases() {
  std::vector<ErrorCase> v;
  auto add = [&](const char* name, std::string s, Events e, ParserLimits l = {}) {
    v.push_back({name, std::move(s), std::move(e), l});
  };
  add("unmasked_text", encode_frame(Opcode::Text, "hi"), {error_ev(1002)});
  add("unmasked_after_good", cframe(Opcode::Text, "ok") + encode_frame(Opcode::Ping, ""),
      {text("ok"), error_ev(1002)});
  add("rsv1", with_header_byte0(cframe(Opcode::Text, "x"), 0x80 | 0x40 | 0x1), {error_ev(1002)});
  add("rsv2", with_header_byte0(cframe(Opcode::Text, "x"), 0x80 | 0x20 | 0x1), {error_ev(1002)});
  add("rsv3", with_header_byte0(cframe(Opcode::Binary, "x"), 0x80 | 0x10 | 0x2),
      {error_ev(1002)});
  add("rsv_on_control", with_header_byte0(cframe(Opcode::Ping, "x"), 0x80 | 0x40 | 0x9),
      {error_ev(1002)});
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    add("reserved_opcode", with_header_byte0(cframe(Opcode::Binary, "x"), 0x80 | op),
        {error_ev(1002)});
  }
  add("ping_126_bytes", cframe(Opcode::Ping, std::string(126, 'p')), {error_ev(1002)});
  add("close_126_bytes", cframe(Opcode::Close, std::string(126, 'p')), {error_ev(1002)});
  add("pong_16bit_form_small", raw({0x8A, 0x80 | 126, 0, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0}),
      {error_ev(1002)});
  add("ping_not_fin", cframe(Opcode::Ping, "x", false), {error_ev(1002)});
  add("close_not_fin", cframe(Opcode::Close, "", false), {error_ev(1002)});
  add("continuation_without_message", cframe(Opcode::Continuation, "x"), {error_ev(1002)});
  add("continuation_after_complete_message",
      cframe(Opcode::Text, "a") + cframe(Opcode::Continuation, "b"), {text("a"), error_ev(1002)});
  add("text_inside_fragmented",
      cframe(Opcode::Text, "a", false) + cframe(Opcode::Text, "b"), {error_ev(1002)});
  add("binary_inside_fragmented",
      cframe(Opcode::Binary, "a", false) + cframe(Opcode::Ping, "p") + cframe(Opcode::Binary, "b"),
      {ping("p"), error_ev(1002)});

  add("text_invalid_utf8", cframe(Opcode::Text, "ab\xFF" "cd"), {error_ev(1007)});
  add("text_surrogate", cframe(Opcode::Text, "\xED\xA0\x80"), {error_ev(1007)});
  add("text_truncated_sequence", cframe(Opcode::Text, "ok\xE2\x82"), {error_ev(1007)});
  add("fragmented_ends_mid_sequence",
      cframe(Opcode::Text, "ok\xE2", false) + cframe(Opcode::Continuation, "\x82"),
      {error_ev(1007)});
  add("fragmented_invalid_continuation",
      cframe(Opcode::Text, "\xE2", false) + cframe(Opcode::Continuation, "A"), {error_ev(1007)});
  add("binary_is_not_utf8_checked", cframe(Opcode::Binary, "\xFF\xFE"), {binary("\xFF\xFE")});

  add("close_one_byte", cframe(Opcode::Close, "\x03"), {error_ev(1002)});
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    add("close_bad_code", cframe(Opcode::Close, close_payload(code, "")), {error_ev(1002)});
  }
  add("close_reason_not_utf8", cframe(Opcode::Close, close_payload(1000, "bad\xC0\xAF")),
      {error_ev(1007)});
  add("close_reason_truncated_utf8", cframe(Opcode::Close, close_payload(1000, "\xF0\x9F\x98")),
      {error_ev(1007)});

  // Limits from the header alone: no payload follows these headers.
  add("over_message_size_16bit", raw({0x82, 0x80 | 126, 0x03, 0xE9, 1, 2, 3, 4}),
      {error_ev(1009)}, limit_size(1000));
  add("over_message_size_7bit", raw({0x82, 0x80 | 101}), {error_ev(1009)}, limit_size(100));
  add("length_top_bit_set", header64(0x82, uint64_t{1} << 63), {error_ev(1002)});
  add("length_all_ones", header64(0x81, ~uint64_t{0}), {error_ev(1002)});
  add("length_2_pow_62", header64(0x82, uint64_t{1} << 62), {error_ev(1009)});
  add("over_default_16MiB", header64(0x82, (16u << 20) + 1), {error_ev(1009)});
  add("fragments_sum_over_limit",
      cframe(Opcode::Text, std::string(60, 'a'), false) +
          cframe(Opcode::Continuation, std::string(40, 'b'), false) +
          raw({0x80, 0x80 | 1}),
      {error_ev(1009)}, limit_size(100));
  add("too_many_fragments",
      cframe(Opcode::Binary, "1", false) + cframe(Opcode::Continuation, "2", false) +
          cframe(Opcode::Continuation, "3", false) + cframe(Opcode::Continuation, "4"),
      {error_ev(1009)}, limit_fragments(3));
  return v;
}

TEST(FrameParserErrors, EachRuleWithItsCloseCode) {
  for (const auto& c : error_cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(feed_whole(c.stream, c.limits), c.expected) << "whole";
    EXPECT_EQ(feed_bytewise(c.stream, c.limits), c.expected) << "byte at a time";
    for (size_t cut = 0; cut <= c.stream.size(); ++cut) {
      ASSERT_EQ(feed_pieces(c.stream, {cut}, c.limits), c.expected) << "cut " << cut;
    }
  }
}

TEST(FrameParserErrors, ParserIsFinishedAfterAnError) {
  std::string s = encode_frame(Opcode::Text, "x") + cframe(Opcode::Text, "y");
  FrameParser p;
  Recorder r;
  size_t used = p.consume(reinterpret_cast<uint8_t*>(s.data()), s.size(), r);
  EXPECT_TRUE(p.finished());
  EXPECT_LE(used, 2u) << "fails on the first header bytes";
  EXPECT_EQ(p.consume(reinterpret_cast<uint8_t*>(s.data()) + used, s.size() - used, r), 0u);
  EXPECT_EQ(r.events, Events{error_ev(1002)});
}

TEST(FrameParserErrors, InvalidUtf8FailsFastBeforeTheMessageEnds) {
  // The first fragment already holds an impossible byte: the error comes
  // before any further fragment (or the rest of this frame) arrives.
  std::string first = cframe(Opcode::Text, std::string(100, 'a') + "\xC0" + std::string(100, 'b'),
                             false);
  const size_t header = first.size() - 201;
  // Only the header and 101 payload bytes (up to and including 0xC0).
  std::string partial = first.substr(0, header + 101);
  EXPECT_EQ(feed_whole(partial), Events{error_ev(1007)});
  EXPECT_EQ(feed_bytewise(partial), Events{error_ev(1007)});

  // Impossible prefix of an incomplete sequence (surrogate lead ED A0).
  std::string f2 = cframe(Opcode::Text, "ok\xED\xA0", false);
  EXPECT_EQ(feed_whole(f2), Events{error_ev(1007)});
  // A possible prefix is not an error (yet).
  std::string f3 = cframe(Opcode::Text, "ok\xED\x9F", false);
  EXPECT_EQ(feed_whole(f3), Events{});
}

TEST(FrameParserErrors, LimitDecidedBeforeMaskBytesArrive) {
  // 2^62 announced: the error is raised as soon as the 8 length bytes are
  // in, without waiting for the mask or any payload.
  std::string h = header64(0x82, uint64_t{1} << 62).substr(0, 10);
  EXPECT_EQ(feed_whole(h), Events{error_ev(1009)});
  EXPECT_EQ(feed_bytewise(h), Events{error_ev(1009)});
}

TEST(FrameParserErrors, EarlyRulesNeedOnlyTwoBytes) {
  // Unmasked, RSV, reserved opcode, control rules: decided at byte 2.
  for (std::string two : {raw({0x81, 0x05}), raw({0xC1, 0x85}), raw({0x83, 0x85}),
                          raw({0x09, 0x80}), raw({0x89, 0xFE}), raw({0x80, 0x81})}) {
    EXPECT_EQ(feed_whole(two), Events{error_ev(1002)}) << ::testing::PrintToString(two);
  }
}

TEST(FrameParserErrors, CorruptedStreamsGiveTheSameEventsHoweverSplit) {
  // Flip random bytes of a valid stream: whatever the parser decides, it
  // must decide the same whole, byte at a time and at random cuts, and end
  // with at most one terminal event.
  std::mt19937 rng(777);
  std::string base;
  for (int i = 0; i < 12; ++i) {
    std::string p(rng() % 200, '\0');
    for (auto& c : p) c = static_cast<char>(rng() % 3 ? 'a' + rng() % 26 : rng());
    Opcode op = i % 4 == 0 ? Opcode::Ping : i % 2 ? Opcode::Text : Opcode::Binary;
    base += cframe(op, op == Opcode::Ping ? p.substr(0, 125) : p, true);
    if (i % 5 == 0) base += cframe(Opcode::Text, "frag", false) + cframe(Opcode::Continuation, "x");
  }
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string s = base;
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      s[rng() % s.size()] = static_cast<char>(rng());
    }
    ParserLimits l;
    l.max_message_size = 1 + rng() % 400;
    l.max_fragments = 1 + rng() % 3;
    const Events whole = feed_whole(s, l);
    ASSERT_EQ(feed_bytewise(s, l), whole) << "trial " << trial;
    std::vector<size_t> cuts;
    for (size_t pos = rng() % 30; pos < s.size(); pos += 1 + rng() % 30) cuts.push_back(pos);
    ASSERT_EQ(feed_pieces(s, cuts, l), whole) << "trial " << trial;
    for (size_t i = 0; i + 1 < whole.size(); ++i) {
      ASSERT_TRUE(whole[i].kind != Event::Error && whole[i].kind != Event::Close)
          << "terminal event followed by more";
    }
    errors += !whole.empty() && whole.back().kind == Event::Error;
  }
  EXPECT_GT(errors, 50) << "corruption should usually be detected";
}

}  // namespace
}  // namespace chatws::protocol
