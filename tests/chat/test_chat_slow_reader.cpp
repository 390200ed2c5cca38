// A chat client that cannot keep up, under the drop policy: it loses
// messages but is told how many once its backlog drains.
#include <gtest/gtest.h>

#include <string>

#include "chat/chat_harness.h"
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
// 4096 control characters, each escaped to 6 bytes) must stay joinable: the
// joiner's greeting is not a backlog.
TEST(ChatBigHistory, JoinerGetsAHistoryLargerThanTheOutputCap) {
  ChatHarness h;
  ServerConfig sc;  // default 1 MiB output cap
  ASSERT_TRUE(h.start(chat::ChatConfig{}, sc)) << h.error();
  const std::string text(4096, '\x01');
  int ok = h.on_loop([&](chat::ChatService& chat) {
    int n = 0;
    for (int i = 0; i < 50; ++i) n += chat.post("big", "u", text) == kOk;
    return n;
  });
  ASSERT_EQ(ok, 50);
  for (const char* sp : {"chatws.v1", "json"}) {
    WsClient c;
    ASSERT_TRUE(c.connect(h.port(), "/rooms/big", sp)) << sp << " " << c.status() << " " << c.error();
    std::string first = c.read_text();
    EXPECT_GT(first.size(), size_t(1) << 20) << sp;
    EXPECT_NE(first.find("\\u0001"), std::string::npos) << sp;
  }
}

}  // namespace
