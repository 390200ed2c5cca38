// The load generator's client-side frame reader: whole frames, every split
// point, the three length encodings, fragments, control frames, violations.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frame_reader.h"
#include "protocol/frame.h"

namespace {

using chatws::bench::FrameReader;
namespace proto = chatws::protocol;

struct Seen {
  FrameReader::Event ev;
  uint8_t op;
  std::string payload;
};

bool feed(FrameReader& r, const std::string& bytes, std::vector<Seen>& out) {
  return r.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                [&](FrameReader::Event ev, uint8_t op, std::string_view p) {
                  out.push_back({ev, op, std::string(p)});
                });
}

TEST(FrameReader, LengthEncodingsAtEverySplit) {
  // 125 -> 2-byte header, 126 and 65535 -> 4-byte, 65536 -> 10-byte.
  for (size_t len : {size_t(0), size_t(125), size_t(126), size_t(65535), size_t(65536)}) {
    std::string payload(len, 'p');
    for (size_t i = 0; i < len; ++i) payload[i] = char('a' + i % 26);
    const std::string wire = proto::encode_frame(proto::Opcode::Binary, payload) +
                             proto::encode_frame(proto::Opcode::Text, "tail");
    const size_t step = len > 1000 ? 997 : 1;  // every split for small frames
    for (size_t split = 0; split <= wire.size(); split += step) {
      FrameReader r;
      std::vector<Seen> seen;
      ASSERT_TRUE(feed(r, wire.substr(0, split), seen));
      ASSERT_TRUE(feed(r, wire.substr(split), seen));
      ASSERT_EQ(seen.size(), 2u) << "len " << len << " split " << split;
      EXPECT_EQ(seen[0].op, 2);
      EXPECT_EQ(seen[0].payload, payload);
      EXPECT_EQ(seen[1].op, 1);
      EXPECT_EQ(seen[1].payload, "tail");
      EXPECT_EQ(r.buffered(), 0u);
    }
  }
}

TEST(FrameReader, ByteAtATime) {
  const std::string wire = proto::encode_frame(proto::Opcode::Text, std::string(300, 'x')) +
                           proto::encode_frame(proto::Opcode::Ping, "pp");
  FrameReader r;
  std::vector<Seen> seen;
  for (char ch : wire) ASSERT_TRUE(feed(r, std::string(1, ch), seen));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].payload.size(), 300u);
  EXPECT_EQ(seen[1].ev, FrameReader::Event::Ping);
  EXPECT_EQ(seen[1].payload, "pp");
}

TEST(FrameReader, FragmentsWithInterleavedControl) {
  const std::string wire = proto::encode_frame(proto::Opcode::Text, "hel", false) +
                           proto::encode_frame(proto::Opcode::Ping, "x") +
                           proto::encode_frame(proto::Opcode::Continuation, "lo ", false) +
                           proto::encode_frame(proto::Opcode::Continuation, "world", true);
  FrameReader r;
  std::vector<Seen> seen;
  ASSERT_TRUE(feed(r, wire, seen));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].ev, FrameReader::Event::Ping);
  EXPECT_EQ(seen[1].ev, FrameReader::Event::Message);
  EXPECT_EQ(seen[1].op, 1);
  EXPECT_EQ(seen[1].payload, "hello world");
}

TEST(FrameReader, CloseEndsTheStream) {
  const std::string wire = proto::encode_frame(proto::Opcode::Close, proto::close_payload(1001, "bye")) +
                           proto::encode_frame(proto::Opcode::Text, "after");
  FrameReader r;
  std::vector<Seen> seen;
  EXPECT_TRUE(feed(r, wire, seen));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].ev, FrameReader::Event::Close);
  EXPECT_EQ(seen[0].payload.substr(2), "bye");
  EXPECT_FALSE(feed(r, "x", seen));
}

TEST(FrameReader, RejectsViolations) {
  const uint8_t mask[4] = {1, 2, 3, 4};
  struct Case {
    const char* name;
    std::string wire;
  } cases[] = {
      {"masked server frame", proto::encode_masked_frame(proto::Opcode::Text, "x", mask)},
      {"reserved bit", std::string("\xC1\x00", 2)},
      {"unknown opcode", std::string("\x83\x00", 2)},
      {"fragmented ping", std::string("\x09\x00", 2)},
      {"stray continuation", proto::encode_frame(proto::Opcode::Continuation, "x")},
      {"message inside message", proto::encode_frame(proto::Opcode::Text, "a", false) +
                                     proto::encode_frame(proto::Opcode::Text, "b")},
  };
  for (const auto& c : cases) {
    FrameReader r;
    std::vector<Seen> seen;
    EXPECT_FALSE(feed(r, c.wire, seen)) << c.name;
    EXPECT_FALSE(r.error().empty()) << c.name;
  }
}

TEST(FrameReader, EnforcesItsLimit) {
  FrameReader r;
  r.set_max_message(10);
  std::vector<Seen> seen;
  EXPECT_FALSE(feed(r, proto::encode_frame(proto::Opcode::Binary, std::string(11, 'x')), seen));
  FrameReader f;
  f.set_max_message(10);
  EXPECT_FALSE(feed(f, proto::encode_frame(proto::Opcode::Binary, std::string(6, 'x'), false) +
                           proto::encode_frame(proto::Opcode::Continuation, std::string(6, 'x')),
                    seen));
}

}  // namespace
