// The permessage-deflate message codec (RFC 7692 7.2) over zlib: the RFC's
// own byte sequences, round trips, context takeover, and bounded inflate.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "protocol/deflate_codec.h"

namespace chatws::protocol {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(char(c));
  return s;
}

Inflater::Result inflate(Inflater& inf, const std::string& in, std::string* out,
                         size_t max = 1 << 20) {
  return inf.inflate_message(reinterpret_cast<const uint8_t*>(in.data()), in.size(), max, out);
}

TEST(DeflateCodec, RfcExamplesInflate) {
  std::string out;
  Inflater inf(15, true);
  // 7.2.3.1: "Hello" in one compressed block.
  ASSERT_EQ(inflate(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  // 7.2.3.2: the second "Hello" references the first (context takeover).
  ASSERT_EQ(inflate(inf, bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  // 7.2.3.3: a stored (uncompressed) block.
  ASSERT_EQ(inflate(inf, bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), &out),
            Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  // 7.2.3.5: a final block (BFINAL set) ends the stream; the next message
  // starts afresh but still sees the window.
  ASSERT_EQ(inflate(inf, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  ASSERT_EQ(inflate(inf, bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
}

TEST(DeflateCodec, EmptyMessage) {
  // 7.2.3.6: an empty message is one 0x00 byte (an empty fixed block).
  std::string out = "x";
  Inflater inf(15, false);
  ASSERT_EQ(inflate(inf, bytes({0x00}), &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "");
  Deflater def(15, 8, false);
  ASSERT_TRUE(def.compress("", 0, &out));
  std::string back;
  ASSERT_EQ(inflate(inf, out, &back), Inflater::Result::Ok);
  EXPECT_EQ(back, "");
}

TEST(DeflateCodec, DeflateEndsWithoutTheSyncMarker) {
  Deflater def(15, 8, false);
  std::string out;
  ASSERT_TRUE(def.compress("Hello", 5, &out));
  // RFC 7692 7.2.3.1 shows exactly these bytes for zlib's default level.
  EXPECT_EQ(out, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  EXPECT_EQ(def.calls(), 1u);
}

TEST(DeflateCodec, NoContextTakeoverMessagesStandAlone) {
  Deflater def(15, 8, false);
  std::string a, b;
  ASSERT_TRUE(def.compress("Hello", 5, &a));
  ASSERT_TRUE(def.compress("Hello", 5, &b));
  EXPECT_EQ(a, b);  // the second does not reference the first
  Inflater fresh(15, false);
  std::string out;
  ASSERT_EQ(inflate(fresh, b, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
}

TEST(DeflateCodec, ContextTakeoverRoundTripsAndShrinks) {
  Deflater def(12, 8, true);
  Inflater inf(12, true);
  const std::string msg = R"({"user":"alice","text":"the same chat line, again and again"})";
  std::string first, second, out;
  ASSERT_TRUE(def.compress(msg.data(), msg.size(), &first));
  ASSERT_TRUE(def.compress(msg.data(), msg.size(), &second));
  EXPECT_LT(second.size(), first.size());
  ASSERT_EQ(inflate(inf, first, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, msg);
  ASSERT_EQ(inflate(inf, second, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, msg);
}

TEST(DeflateCodec, ReleasedStreamsKeepTheWindow) {
  Deflater def(10, 8, true);
  Inflater inf(10, true);
  std::string c, out;
  ASSERT_TRUE(def.compress("Hello, Hello", 12, &c));
  ASSERT_EQ(inflate(inf, c, &out), Inflater::Result::Ok);
  EXPECT_TRUE(inf.holds_stream());
  inf.release();
  EXPECT_FALSE(inf.holds_stream());
  EXPECT_LE(inf.memory(), 1024u);  // the window copy only
  def.release();  // a new deflate stream: valid whatever the peer's window holds
  ASSERT_TRUE(def.compress("Hello, Hello", 12, &c));
  ASSERT_EQ(inflate(inf, c, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello, Hello");
  // And the peer keeps its context across our release.
  Deflater keep(10, 8, true);
  Inflater inf2(10, true);
  ASSERT_TRUE(keep.compress("abcdefgh", 8, &c));
  ASSERT_EQ(inflate(inf2, c, &out), Inflater::Result::Ok);
  inf2.release();
  ASSERT_TRUE(keep.compress("abcdefgh", 8, &c));  // references the first
  ASSERT_EQ(inflate(inf2, c, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "abcdefgh");
}

TEST(DeflateCodec, RandomRoundTripsAcrossWindows) {
  std::mt19937 rng(7);
  for (uint8_t bits = 9; bits <= 15; ++bits) {
    Deflater def(bits, 8, true);
    Inflater inf(bits, true);
    for (int i = 0; i < 20; ++i) {
      std::string msg(rng() % 70000, '\0');
      for (auto& ch : msg) ch = char('a' + rng() % (i % 2 ? 26 : 3));
      std::string c, out;
      ASSERT_TRUE(def.compress(msg.data(), msg.size(), &c));
      ASSERT_EQ(inflate(inf, c, &out), Inflater::Result::Ok);
      ASSERT_EQ(out, msg);
    }
  }
}

TEST(DeflateCodec, GarbageDoesNotInflate) {
  Inflater inf(15, false);
  std::string out;
  // BTYPE 11 (reserved) in the first block header.
  EXPECT_EQ(inflate(inf, bytes({0xff, 0xff, 0xff}), &out), Inflater::Result::Bad);
  // A stored block whose length check does not match.
  Inflater inf2(15, false);
  EXPECT_EQ(inflate(inf2, bytes({0x00, 0x05, 0x00, 0x00, 0x00, 'H'}), &out), Inflater::Result::Bad);
}

TEST(DeflateCodec, TooFarBackIsBad) {
  // Compressed with a 32 KiB window, referencing 20000 bytes back, inflated
  // with a 512-byte one and no context: rejected, not read out of bounds.
  std::string msg(20000, '\0');
  std::mt19937 rng(3);
  for (auto& ch : msg) ch = char(rng());
  std::string twice = msg + msg;
  Deflater def(15, 8, false);
  std::string c, out;
  ASSERT_TRUE(def.compress(twice.data(), twice.size(), &c));
  Inflater inf(9, false);
  // Inflated in one output buffer the distance is within the message: zlib
  // accepts it then. What must hold is that it never fails open.
  auto r = inflate(inf, c, &out);
  if (r == Inflater::Result::Ok) EXPECT_EQ(out, twice);
  else EXPECT_EQ(r, Inflater::Result::Bad);
}

TEST(DeflateCodec, BombStopsAtTheLimitWithBoundedMemory) {
  // 16 MiB of zeros compress to about 16 KiB.
  const size_t big = 16u << 20;
  std::string zeros(big, '\0');
  Deflater def(15, 8, false);
  std::string c;
  ASSERT_TRUE(def.compress(zeros.data(), zeros.size(), &c));
  std::string().swap(zeros);
  ASSERT_LT(c.size(), 32u * 1024);
  Inflater inf(15, false);
  std::string out;
  const size_t max = 1u << 20;
  EXPECT_EQ(inflate(inf, c, &out, max), Inflater::Result::TooBig);
  EXPECT_LE(out.capacity(), 2 * max + 64);  // never grown towards 16 MiB
  // Exactly at the limit is fine.
  std::string exact(max, 'z');
  ASSERT_TRUE(def.compress(exact.data(), exact.size(), &c));
  Inflater inf2(15, false);
  EXPECT_EQ(inflate(inf2, c, &out, max), Inflater::Result::Ok);
  EXPECT_EQ(out.size(), max);
  Inflater inf3(15, false);
  EXPECT_EQ(inflate(inf3, c, &out, max - 1), Inflater::Result::TooBig);
}

TEST(DeflateCodec, LazyStreams) {
  Deflater def(15, 8, false);
  EXPECT_FALSE(def.holds_stream());
  std::string c;
  ASSERT_TRUE(def.compress("x", 1, &c));
  EXPECT_TRUE(def.holds_stream());
  def.release();
  EXPECT_FALSE(def.holds_stream());
  Inflater inf(15, false);
  EXPECT_FALSE(inf.holds_stream());
  EXPECT_EQ(inf.memory(), 0u);
}

}  // namespace
}  // namespace chatws::protocol

namespace chatws::protocol {
namespace {

TEST(DeflateCodec, AFailedMessageDoesNotLeakIntoTheNext) {
  // One inflater shared by many senders (no context takeover): a bomb cut
  // short, then garbage, must leave it ready for the next good message.
  Inflater inf(15, false);
  Deflater def(15, 8, false);
  std::string zeros(4u << 20, '\0'), bomb, good, out;
  ASSERT_TRUE(def.compress(zeros.data(), zeros.size(), &bomb));
  ASSERT_TRUE(def.compress("Hello", 5, &good));
  EXPECT_EQ(inflate(inf, bomb, &out, 1 << 20), Inflater::Result::TooBig);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(inflate(inf, good, &out), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  EXPECT_EQ(inflate(inf, bomb, &out, 1 << 20), Inflater::Result::TooBig);
  EXPECT_EQ(inflate(inf, bytes({0xff, 0xff}), &out), Inflater::Result::Bad);
  EXPECT_EQ(inflate(inf, bomb, &out, 1 << 20), Inflater::Result::TooBig);
  EXPECT_EQ(inflate(inf, bomb, &out, 8u << 20), Inflater::Result::Ok);
  EXPECT_EQ(out.size(), zeros.size());
}

}  // namespace
}  // namespace chatws::protocol
