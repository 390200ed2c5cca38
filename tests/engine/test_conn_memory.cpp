// The pieces that keep an idle connection small (issue 6, <= 200 bytes of
// server RSS each): the size bounds themselves, the 32-bit loop timestamps
// across their wraparound, the interned request paths, the lazily allocated
// cold part, and end to end that ConnInfo still reports what it did.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "server/connection.h"
#include "server/path_table.h"
#include "support/test_server.h"
#include "support/ws_client.h"

namespace chatws {
namespace {

using protocol::Opcode;

constexpr int64_t k2to32 = int64_t{1} << 32;

// Also pinned by static_asserts next to the types; here so that a change
// shows up as a named test with the figures.
TEST(ConnMemory, SizesStayWithinTheIdleBudget) {
  EXPECT_LE(sizeof(protocol::FrameParser), 48u);
  EXPECT_LE(sizeof(OutputQueue), 32u);
  EXPECT_LE(sizeof(Connection), 128u);
}

TEST(ConnMemory, ElapsedIsExactAcrossTheWraparound) {
  for (int64_t base : {int64_t{1000}, k2to32 - 10, 5 * k2to32 - 1, 7 * k2to32}) {
    LoopMs32 t;
    t = base;
    EXPECT_EQ(t.elapsed(base), 0u) << base;
    EXPECT_EQ(t.elapsed(base + 30), 30u) << base;
    EXPECT_EQ(t.elapsed(base + 86'400'000), 86'400'000u) << base;  // a day
    EXPECT_EQ(t.elapsed(base + INT32_MAX), uint32_t(INT32_MAX)) << base;
  }
}

TEST(ConnMemory, DeadlineIsReachedOnTimeAcrossTheWraparound) {
  for (int64_t now : {int64_t{5000}, k2to32 - 100, k2to32 - 1, 3 * k2to32 + 7}) {
    for (int64_t timeout : {int64_t{1}, int64_t{100}, int64_t{30'000}, int64_t{INT32_MAX}}) {
      Deadline32 d;
      EXPECT_FALSE(d);
      EXPECT_FALSE(d.reached(now));
      d = now + timeout;
      ASSERT_TRUE(d);
      EXPECT_FALSE(d.reached(now)) << now << " + " << timeout;
      // A deadline that truncates to 0 is moved 1 ms later; allow for it.
      const int64_t slack = uint32_t(now + timeout) == 0 ? 1 : 0;
      EXPECT_FALSE(d.reached(now + timeout - 1)) << now << " + " << timeout;
      EXPECT_TRUE(d.reached(now + timeout + slack)) << now << " + " << timeout;
      EXPECT_TRUE(d.reached(now + timeout + slack + 250)) << now << " + " << timeout;
      d = 0;
      EXPECT_FALSE(d);
      EXPECT_FALSE(d.reached(now + timeout + 1));
    }
  }
}

TEST(ConnMemory, DeadlineOnTheWrapPointIsStillSet) {
  Deadline32 d;
  d = 2 * k2to32;  // truncates to 0, which means "none": kept as 1 ms later
  ASSERT_TRUE(d);
  EXPECT_FALSE(d.reached(2 * k2to32 - 1));
  EXPECT_TRUE(d.reached(2 * k2to32 + 1));
}

TEST(PathTable, SharesReleasesAndReuses) {
  PathTable t;
  uint16_t a = t.acquire("/chat/lobby");
  uint16_t b = t.acquire("/chat/lobby");
  uint16_t c = t.acquire("/");
  ASSERT_NE(a, PathTable::kNone);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.get(a), "/chat/lobby");
  EXPECT_EQ(t.get(c), "/");
  t.release(a);
  EXPECT_EQ(t.get(b), "/chat/lobby");  // one reference left
  t.release(b);
  EXPECT_EQ(t.size(), 1u);
  uint16_t d = t.acquire("/other");  // reuses the freed entry
  EXPECT_EQ(d, a);
  EXPECT_EQ(t.get(d), "/other");
  EXPECT_EQ(t.get(c), "/");
  t.release(PathTable::kNone);  // no-op
  t.release(c);
  t.release(d);
  EXPECT_EQ(t.size(), 0u);
}

TEST(PathTable, SaysNoWhenFullAndRecovers) {
  PathTable t;
  for (uint32_t i = 0; i < PathTable::kNone; ++i)
    ASSERT_NE(t.acquire("/p" + std::to_string(i)), PathTable::kNone) << i;
  EXPECT_EQ(t.acquire("/one-too-many"), PathTable::kNone);
  uint16_t again = t.acquire("/p7");  // existing paths still share
  EXPECT_EQ(t.get(again), "/p7");
  t.release(again);
  t.release(again);  // /p7 gone: room for one more
  uint16_t r = t.acquire("/one-too-many");
  ASSERT_NE(r, PathTable::kNone);
  EXPECT_EQ(t.get(r), "/one-too-many");
}

TEST(ConnCold, GoesAfterTheHandshakeUnlessStillNeeded) {
  protocol::ParserLimits limits;
  {
    Connection c(limits);
    EXPECT_FALSE(c.has_cold());
    c.start_http(4096);
    ASSERT_NE(c.http(), nullptr);
    c.end_http();
    EXPECT_EQ(c.http(), nullptr);
    EXPECT_FALSE(c.has_cold());
    EXPECT_EQ(c.close_reason(), "");
    EXPECT_EQ(c.dropped(), 0u);
  }
  {
    Connection c(limits);
    c.start_http(4096);
    c.set_close_reason("going");
    c.end_http();
    ASSERT_TRUE(c.has_cold());
    EXPECT_EQ(c.close_reason(), "going");
    c.set_close_reason({});
    EXPECT_EQ(c.close_reason(), "");
  }
  {
    Connection c(limits);
    c.count_dropped();
    c.count_dropped();
    c.start_http(4096);
    c.end_http();
    ASSERT_TRUE(c.has_cold());
    EXPECT_EQ(c.dropped(), 2u);
  }
}

// Paths are shared between connections and released as they close; each
// connection's ConnInfo, built late (on its first message), must still name
// its own path, address and port.
TEST(ConnMemory, InfoReportsPathAndPeerWhenBuiltLate) {
  test::RecordingHandler handler;
  std::vector<std::string> seen;  // loop thread, read after the waits
  handler.on_msg = [&](ConnId id, Opcode, const char*, size_t) {
    const ConnInfo* i = handler.server->info(id);
    seen.push_back(i ? i->path + " " + i->remote_address + " " +
                           std::to_string(i->remote_port != 0)
                     : "none");
  };
  test::ServerThread st(ServerConfig{}, &handler);
  ASSERT_TRUE(st.server) << st.error;
  handler.server = st.server.get();

  {
    test::WsClient a(st.port()), b(st.port()), c(st.port());
    ASSERT_EQ(a.handshake("/room/x"), 101);
    ASSERT_EQ(b.handshake("/room/x"), 101);
    ASSERT_EQ(c.handshake("/other"), 101);
    ASSERT_TRUE(handler.wait_count(test::Event::Open, 3));
    ASSERT_TRUE(a.send_close(1000));
    ASSERT_TRUE(handler.wait_count(test::Event::Close, 1));
    ASSERT_TRUE(b.send_text("hi"));
    ASSERT_TRUE(handler.wait_count(test::Event::Message, 1));
    ASSERT_TRUE(c.send_text("hi"));
    ASSERT_TRUE(handler.wait_count(test::Event::Message, 2));
    // A new connection reuses whatever entry /room/x left behind.
    test::WsClient d(st.port());
    ASSERT_EQ(d.handshake("/new"), 101);
    ASSERT_TRUE(d.send_text("hi"));
    ASSERT_TRUE(handler.wait_count(test::Event::Message, 3));
  }  // the clients hang up: the stop below need not wait for them
  ASSERT_TRUE(handler.wait_count(test::Event::Close, 4));
  st.stop();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], "/room/x 127.0.0.1 1");
  EXPECT_EQ(seen[1], "/other 127.0.0.1 1");
  EXPECT_EQ(seen[2], "/new 127.0.0.1 1");
}

}  // namespace
}  // namespace chatws
