// Frame encoding, masking and close-code primitives (protocol/frame.h).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace chatws::protocol {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

const uint8_t kRfcMask[4] = {0x37, 0xfa, 0x21, 0x3d};

// --- RFC 6455 5.7 examples, encoder side --------------------------------

TEST(FrameEncode, RfcSingleFrameUnmaskedText) {
  EXPECT_EQ(encode_frame(Opcode::Text, "Hello"), bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
}

TEST(FrameEncode, RfcSingleFrameMaskedText) {
  EXPECT_EQ(encode_masked_frame(Opcode::Text, "Hello", kRfcMask),
            bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST(FrameEncode, RfcFragmentedUnmaskedText) {
  EXPECT_EQ(encode_frame(Opcode::Text, "Hel", false), bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_EQ(encode_frame(Opcode::Continuation, "lo", true), bytes({0x80, 0x02, 0x6c, 0x6f}));
}

TEST(FrameEncode, RfcUnmaskedPingAndMaskedPong) {
  EXPECT_EQ(encode_frame(Opcode::Ping, "Hello"), bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(encode_masked_frame(Opcode::Pong, "Hello", kRfcMask),
            bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST(FrameEncode, Rfc256ByteBinaryUses16BitLength) {
  std::string payload(256, '\x5a');
  std::string f = encode_frame(Opcode::Binary, payload);
  ASSERT_EQ(f.size(), 4u + 256u);
  EXPECT_EQ(f.substr(0, 4), bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(f.substr(4), payload);
}

TEST(FrameEncode, Rfc64KiBBinaryUses64BitLength) {
  std::string payload(65536, '\xa5');
  std::string f = encode_frame(Opcode::Binary, payload);
  ASSERT_EQ(f.size(), 10u + 65536u);
  EXPECT_EQ(f.substr(0, 10), bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(f.substr(10), payload);
}

struct LengthCase {
  uint64_t len;
  size_t header_size;
};

class HeaderLength : public ::testing::TestWithParam<LengthCase> {};

TEST_P(HeaderLength, BoundariesOfTheThreeForms) {
  const auto [len, size] = GetParam();
  uint8_t out[kMaxFrameHeader];
  ASSERT_EQ(encode_frame_header(out, Opcode::Binary, len), size);
  EXPECT_EQ(out[0], 0x82);
  uint64_t decoded = out[1] & 0x7F;
  if (size == 4) {
    EXPECT_EQ(decoded, 126u);
    decoded = (uint64_t{out[2]} << 8) | out[3];
  } else if (size == 10) {
    EXPECT_EQ(decoded, 127u);
    decoded = 0;
    for (int i = 0; i < 8; ++i) decoded = (decoded << 8) | out[2 + i];
  }
  EXPECT_EQ(decoded, len);
  EXPECT_EQ(out[1] & 0x80, 0) << "server frames are unmasked";

  const uint8_t mask[4] = {1, 2, 3, 4};
  ASSERT_EQ(encode_masked_frame_header(out, Opcode::Binary, len, mask), size + 4);
  EXPECT_EQ(out[1] & 0x80, 0x80);
  EXPECT_EQ(std::memcmp(out + size, mask, 4), 0);
}

INSTANTIATE_TEST_SUITE_P(All, HeaderLength,
                         ::testing::Values(LengthCase{0, 2}, LengthCase{125, 2},
                                           LengthCase{126, 4}, LengthCase{65535, 4},
                                           LengthCase{65536, 10},
                                           LengthCase{(uint64_t{1} << 63) - 1, 10}));

TEST(FrameEncode, FinFlagAndOpcode) {
  uint8_t out[kMaxFrameHeader];
  encode_frame_header(out, Opcode::Continuation, 0, false);
  EXPECT_EQ(out[0], 0x00);
  encode_frame_header(out, Opcode::Close, 0, true);
  EXPECT_EQ(out[0], 0x88);
  encode_frame_header(out, Opcode::Pong, 0);
  EXPECT_EQ(out[0], 0x8A);
}

// --- apply_mask -----------------------------------------------------------

void naive_mask(uint8_t* d, size_t n, const uint8_t m[4], uint64_t off) {
  for (size_t i = 0; i < n; ++i) d[i] ^= m[(off + i) % 4];
}

TEST(ApplyMask, EveryOffsetAndLengthMatchesNaive) {
  std::mt19937 rng(1234);
  std::vector<uint8_t> src(200), a, b;
  for (auto& c : src) c = static_cast<uint8_t>(rng());
  const uint8_t mask[4] = {0x12, 0x9b, 0xe0, 0x7f};
  const uint64_t offsets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1001, (uint64_t{1} << 40) + 3};
  for (uint64_t off : offsets) {
    for (size_t start = 0; start < 8; ++start) {  // unaligned buffers too
      for (size_t len = 0; len <= 160; ++len) {
        a.assign(src.begin(), src.end());
        b = a;
        apply_mask(a.data() + start, len, mask, off);
        naive_mask(b.data() + start, len, mask, off);
        ASSERT_EQ(a, b) << "offset " << off << " start " << start << " len " << len;
      }
    }
  }
}

TEST(ApplyMask, PiecewiseEqualsWhole) {
  std::mt19937 rng(99);
  std::vector<uint8_t> src(300);
  for (auto& c : src) c = static_cast<uint8_t>(rng());
  const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
  std::vector<uint8_t> whole = src;
  naive_mask(whole.data(), whole.size(), mask, 0);
  for (size_t cut1 = 0; cut1 <= src.size(); cut1 += 7) {
    for (size_t cut2 = cut1; cut2 <= src.size(); cut2 += 13) {
      std::vector<uint8_t> v = src;
      apply_mask(v.data(), cut1, mask, 0);
      apply_mask(v.data() + cut1, cut2 - cut1, mask, cut1);
      apply_mask(v.data() + cut2, v.size() - cut2, mask, cut2);
      ASSERT_EQ(v, whole) << cut1 << " " << cut2;
    }
  }
}

TEST(ApplyMask, TwiceIsIdentity) {
  std::string s = "The quick brown fox jumps over the lazy dog, 0123456789!";
  std::string orig = s;
  const uint8_t mask[4] = {0xff, 0x00, 0x55, 0xaa};
  apply_mask(reinterpret_cast<uint8_t*>(s.data()), s.size(), mask, 5);
  EXPECT_NE(s, orig);
  apply_mask(reinterpret_cast<uint8_t*>(s.data()), s.size(), mask, 5);
  EXPECT_EQ(s, orig);
}

// --- close codes and payloads --------------------------------------------

TEST(CloseCode, ValidityPerRfc6455Section7_4) {
  for (uint32_t c = 0; c <= 65535; ++c) {
    bool expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
                    (c >= 3000 && c <= 4999);
    ASSERT_EQ(is_valid_close_code(static_cast<uint16_t>(c)), expected) << c;
  }
  // The reserved ones spelled out.
  EXPECT_FALSE(is_valid_close_code(1004));
  EXPECT_FALSE(is_valid_close_code(1005));
  EXPECT_FALSE(is_valid_close_code(1006));
  EXPECT_FALSE(is_valid_close_code(1015));
}

TEST(ClosePayload, CodeBigEndianThenReason) {
  EXPECT_EQ(close_payload(1000, ""), bytes({0x03, 0xE8}));
  EXPECT_EQ(close_payload(4999, "bye"), bytes({0x13, 0x87, 'b', 'y', 'e'}));
}

TEST(ClosePayload, ReasonTruncatedTo123Bytes) {
  std::string reason(300, 'x');
  std::string p = close_payload(1001, reason);
  EXPECT_EQ(p.size(), kMaxControlPayload);
  EXPECT_EQ(p.substr(2), reason.substr(0, 123));
}

TEST(ClosePayload, TruncationNeverSplitsAUtf8Sequence) {
  // 122 ASCII bytes then a 3-byte character: cutting at 123 would leave one
  // byte of it, so the whole character goes.
  std::string reason(122, 'a');
  reason += "\xE2\x82\xAC";  // U+20AC
  std::string p = close_payload(1000, reason);
  EXPECT_EQ(p.size(), 2u + 122u);
  // Exactly fitting: kept.
  std::string fits(120, 'a');
  fits += "\xE2\x82\xAC";
  EXPECT_EQ(close_payload(1000, fits).size(), 2u + 123u);
}

}  // namespace
}  // namespace chatws::protocol
