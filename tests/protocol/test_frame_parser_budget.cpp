// FrameParser limits on partial input: a per-parser message limit below the
// shared one (a handler's bound for its connections, e.g. the chat's), and a
// budget of buffered partial input shared by several parsers. Both are
// decided from frame headers, before a byte of the payload is stored.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "parser_recorder.h"
#include "protocol/frame_parser.h"

namespace chatws::protocol {
namespace {

using namespace chatws::protocol::testing;
using Events = std::vector<Event>;

// Feeds `s` to `p` in one piece (a copy, unmasked in place); returns the
// bytes consumed.
size_t feed(FrameParser& p, Recorder& r, const std::string& s) {
  std::vector<uint8_t> buf(s.begin(), s.end());
  return p.consume(buf.data(), buf.size(), r);
}

// The header of a masked frame announcing `len` payload bytes, plus `sent`
// of them (a zero mask: the bytes are 'p' on the wire and unmasked).
std::string partial(Opcode op, uint64_t len, size_t sent, bool fin = true) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  uint8_t h[kMaxFrameHeader];
  const size_t n = encode_masked_frame_header(h, op, len, zero, fin);
  return std::string(reinterpret_cast<char*>(h), n) + std::string(sent, 'p');
}

// Parsers sharing a budget of `max` bytes.
struct Budgeted {
  InputBudget budget;
  ParserLimits limits;
  explicit Budgeted(uint64_t max) : budget{max} { limits.input_budget = &budget; }
};

TEST(FrameParserMessageLimit, HeaderOverTheParsersLimitFailsBeforeThePayload) {
  ParserLimits shared;  // 16 MiB
  FrameParser p(shared);
  p.set_max_message_size(100);
  EXPECT_EQ(p.max_message_size(), 100u);
  Recorder r;
  feed(p, r, cframe(Opcode::Text, std::string(100, 'a')));
  EXPECT_EQ(r.events, Events{text(std::string(100, 'a'))}) << "exactly at the limit";
  // 15 MiB announced, only the header sent: 1009 at once, nothing buffered.
  feed(p, r, partial(Opcode::Binary, 15u << 20, 0).substr(0, 10));  // not even the mask
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1], error_ev(1009));
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(FrameParserMessageLimit, RunningTotalOfFragmentsCounts) {
  ParserLimits shared;
  FrameParser p(shared);
  p.set_max_message_size(100);
  Recorder r;
  feed(p, r, cframe(Opcode::Text, std::string(60, 'a'), false));
  feed(p, r, cframe(Opcode::Continuation, std::string(40, 'b'), false));
  EXPECT_TRUE(r.events.empty());
  // One more byte would make 101: refused at that fragment's header.
  feed(p, r, partial(Opcode::Continuation, 1, 0));
  EXPECT_EQ(r.events, Events{error_ev(1009)});
}

TEST(FrameParserMessageLimit, OnlyLowersTheSharedLimit) {
  ParserLimits shared;
  shared.max_message_size = 50;
  FrameParser p(shared);
  p.set_max_message_size(1000);
  EXPECT_EQ(p.max_message_size(), 50u);
  Recorder r;
  feed(p, r, partial(Opcode::Text, 51, 0));
  EXPECT_EQ(r.events, Events{error_ev(1009)});
  FrameParser q(shared);
  q.set_max_message_size(0);  // none of its own
  EXPECT_EQ(q.max_message_size(), 50u);
}

TEST(FrameParserBudget, ChargesAnnouncedLengthOfBufferedFramesAndReleasesOnCompletion) {
  Budgeted setup(1000);
  InputBudget& budget = setup.budget;
  const ParserLimits& shared = setup.limits;
  FrameParser a(shared), b(shared);
  Recorder ra, rb;
  // A whole unfragmented frame is delivered in place: nothing is charged.
  feed(a, ra, cframe(Opcode::Text, std::string(900, 'z')));
  EXPECT_EQ(budget.used(), 0u);
  // A frame that is not all there yet is charged its announced length.
  const std::string big = cframe(Opcode::Binary, std::string(800, 'x'));
  feed(a, ra, big.substr(0, 100));
  EXPECT_EQ(budget.used(), 800u);
  EXPECT_EQ(a.reserved(), 800u);
  // Another parser's frame would take the total over: 1013, before storing.
  feed(b, rb, partial(Opcode::Binary, 300, 10));
  EXPECT_EQ(rb.events, Events{error_ev(1013)});
  EXPECT_EQ(budget.used(), 800u);
  // The first completes: its share comes back.
  feed(a, ra, big.substr(100));
  ASSERT_EQ(ra.events.size(), 2u);
  EXPECT_EQ(ra.events[1], binary(std::string(800, 'x')));
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(a.reserved(), 0u);
}

TEST(FrameParserBudget, FragmentsAreChargedAtTheirHeaders) {
  Budgeted setup(1000);
  InputBudget& budget = setup.budget;
  const ParserLimits& shared = setup.limits;
  FrameParser p(shared);
  Recorder r;
  feed(p, r, cframe(Opcode::Text, std::string(400, 'a'), false));
  EXPECT_EQ(budget.used(), 400u);
  feed(p, r, cframe(Opcode::Continuation, std::string(500, 'b'), false));
  EXPECT_EQ(budget.used(), 900u);
  // 101 more would make 1001: refused at the header.
  feed(p, r, partial(Opcode::Continuation, 101, 0).substr(0, 2));
  EXPECT_EQ(r.events, Events{error_ev(1013)});
  // The failed parser still holds its 900 until it is destroyed.
  EXPECT_EQ(budget.used(), 900u);
}

TEST(FrameParserBudget, ADestroyedParserGivesItsShareBack) {
  Budgeted setup(1 << 20);
  InputBudget& budget = setup.budget;
  const ParserLimits& shared = setup.limits;
  {
    FrameParser p(shared);
    Recorder r;
    feed(p, r, partial(Opcode::Binary, 500000, 1000));
    EXPECT_EQ(budget.used(), 500000u);
  }
  EXPECT_EQ(budget.used(), 0u);
}

TEST(FrameParserBudget, ExactlyAtTheBudgetIsAccepted) {
  Budgeted setup(1000);
  InputBudget& budget = setup.budget;
  const ParserLimits& shared = setup.limits;
  FrameParser p(shared), q(shared);
  Recorder r, rq;
  feed(p, r, partial(Opcode::Binary, 600, 1));
  feed(q, rq, partial(Opcode::Binary, 400, 1));
  EXPECT_TRUE(r.events.empty());
  EXPECT_TRUE(rq.events.empty());
  EXPECT_EQ(budget.used(), 1000u);
}

}  // namespace
}  // namespace chatws::protocol
