// A chat client that cannot keep up, under the drop policy: it loses
// messages but is told how many once its backlog drains.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_harness.h"
#include "chat/classic_flood.h"
#include "chat/wire_decode.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;

namespace {

TEST(ChatSlowReader, DropPolicyTellsTheV1ClientHowManyItMissed) {
  ChatHarness h;
  ServerConfig sc;
  sc.max_output_buffer = 64 * 1024;
  sc.slow_policy = SlowConsumerPolicy::Drop;
  sc.socket_send_buffer = 16 * 1024;  // the kernel takes little of the backlog
  ASSERT_TRUE(h.start(chat::ChatConfig{}, sc)) << h.error();
  WsClient c(h.port());
  // ... and the client, not reading yet, a fixed 128 KiB more (a window
  // of more than one loopback segment, so the backlog reads back quickly).
  c.set_receive_buffer(64 * 1024);
  ASSERT_EQ(c.handshake("/rooms/busy", "chatws.v1"), 101);
  ASSERT_NE(c.read_text().find("\"type\":\"hello\""), std::string::npos);

  // One loop task posts everything while the client does not read: once
  // the kernel buffers are full, the 64 KiB queue overflows and the rest is
  // dropped for this client.
  constexpr int kPosts = 400;  // ~440 KB: more than kernel buffers + queue
  const std::string text(1000, 'x');
  int ok = h.on_loop([&](chat::ChatService& chat) {
    int n = 0;
    for (int i = 0; i < kPosts; ++i) n += chat.post("busy", "host", text) == kOk;
    return n;
  });
  ASSERT_EQ(ok, kPosts);

  int msgs = 0;
  long long dropped = -1;
  while (dropped < 0) {
    auto m = c.read_message();
    ASSERT_TRUE(m && m->op == protocol::Opcode::Text)
        << "after " << msgs << " messages: " << (m ? "close/binary frame" : c.error());
    const std::string& f = m->payload;
    if (f.find("\"type\":\"msg\"") != std::string::npos) {
      ++msgs;
    } else if (auto p = f.find("\"type\":\"dropped\",\"count\":"); p != std::string::npos) {
      dropped = std::stoll(f.substr(p + 25));
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(msgs, 0);
  EXPECT_EQ(msgs + dropped, kPosts);  // every message delivered or counted
}

}  // namespace

namespace {

// A room whose history encodes to more than the output cap (50 messages of
// 4096 control characters, each escaped to 6 bytes): a classic joiner gets
// the newest messages that fit in a quarter of the cap (snapshots are sent
// per message, so they are bounded), and so does a v1 joiner's hello: one
// sender's control characters must not make every greeting megabytes.
TEST(ChatBigHistory, JoinersGetTheNewestThatFitInAQuarterOfTheCap) {
  ChatHarness h;
  ServerConfig sc;  // default 1 MiB output cap
  ASSERT_TRUE(h.start(chat::ChatConfig{}, sc)) << h.error();
  const std::string text(4096, '\x01');
  int ok = h.on_loop([&](chat::ChatService& chat) {
    int n = 0;
    for (int i = 0; i < 49; ++i) n += chat.post("big", "u", text) == kOk;
    return n + (chat.post("big", "u", "newest") == kOk);
  });
  ASSERT_EQ(ok, 50);
  WsClient classic;
  ASSERT_TRUE(classic.connect(h.port(), "/rooms/big", "json"));
  std::string first = classic.read_text();
  EXPECT_LE(first.size(), sc.max_output_buffer / 4);
  std::vector<Entry> entries;
  ASSERT_TRUE(decode_snapshot(first, &entries)) << first.substr(0, 200);
  ASSERT_GE(entries.size(), 9u);  // 24.6 KB each
  EXPECT_LT(entries.size(), 50u);
  EXPECT_EQ(entries[0].text, "newest");
  EXPECT_EQ(entries[1].text, text);

  WsClient v1;
  ASSERT_TRUE(v1.connect(h.port(), "/rooms/big", "chatws.v1"));
  first = v1.read_text();
  EXPECT_LE(first.size(), sc.max_output_buffer / 4);
  V1 hello;
  ASSERT_TRUE(decode_v1(first, &hello)) << first.substr(0, 200);
  ASSERT_GE(hello.history.size(), 9u);
  EXPECT_LT(hello.history.size(), 50u);
  EXPECT_EQ(hello.history.front().id, 50 - int64_t(hello.history.size()) + 1);  // the newest, oldest first
  EXPECT_EQ(hello.history.back().id, 50);
  EXPECT_EQ(hello.history.back().text, "newest");
}

// One client floods a room with messages of control characters (1 byte
// stored, 6 on the wire): a classic member that keeps reading, on a small
// send buffer, is never closed and sees only valid snapshots, the last one
// with the flood's last message. Each snapshot is bounded (a quarter of
// the cap) and a reader still busy with one is sent only the latest once
// it has caught up, so the flooder's bytes are not multiplied per member.
TEST(ChatClassicFlood, ReadingClassicMemberIsNeverClosedByAnothersControlCharacterFlood) {
  ChatHarness h;
  ServerConfig sc;  // 1 MiB output cap
  sc.socket_send_buffer = 64 * 1024;
  ASSERT_TRUE(h.start(chat::ChatConfig{}, sc)) << h.error();
  ClassicFlood seen;
  // 150 x 24.6 KB on the wire (unbounded: closed after ~40).
  ASSERT_NO_FATAL_FAILURE(seen.run(h.port(), "flood", 150));
  EXPECT_EQ(seen.failure, "");
  EXPECT_GE(seen.snapshots, 1);
  EXPECT_LE(seen.largest, sc.max_output_buffer / 4);
  EXPECT_TRUE(h.wait_for([](chat::ChatService& c) { return c.member_count("flood") == 2; }));
}

}  // namespace
