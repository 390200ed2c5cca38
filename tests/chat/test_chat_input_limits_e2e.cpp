// A chat connection may send no message longer than the chat's own bound
// (MessageParser::max_payload(), about 54 KB with the default limits): the
// server closes it with 1009 at the frame header, before buffering a byte,
// instead of holding up to max_message_size (16 MiB) per connection.
// Connections of other subprotocols keep the server's max_message_size.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "chat/chat_wire.h"
#include "chat_harness.h"
#include "support/process_memory.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

using protocol::Opcode;


class ChatInputLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig sc;
    sc.drain_timeout_ms = 300;  // teardown: attackers never answer the 1001
    ASSERT_TRUE(h.start(chat::ChatConfig{}, sc)) << h.error();
  }
  // A chatws.v1 member of /rooms/lobby, its hello read.
  std::unique_ptr<WsClient> member() {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->connect(h.port(), "/rooms/lobby", "chatws.v1")) << c->status();
    EXPECT_NE(c->read_text().find("\"type\":\"hello\""), std::string::npos);
    timeval tv{5, 0};
    setsockopt(c->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return c;
  }
  // Sends a chat message and reads frames (presence notices...) until its
  // own delivery.
  static bool round_trip(WsClient& c, const std::string& text) {
    if (!c.send_text("{\"user\":\"u\",\"text\":\"" + text + "\"}")) return false;
    for (int i = 0; i < 1000; ++i) {
      std::string f = c.read_text();
      if (f.find("\"type\":\"msg\"") != std::string::npos) return f.find(text) != std::string::npos;
      if (f.rfind("<", 0) == 0) return false;  // closed or nothing
    }
    return false;
  }

  ChatHarness h;
};

TEST_F(ChatInputLimits, LongestValidMessagePassesOneByteMoreIsClosed1009) {
  const size_t bound = chat::MessageParser(chat::TextLimits{}).max_payload();
  auto c = member();
  // The longest valid text is well within the bound.
  ASSERT_TRUE(round_trip(*c, std::string(4096, 'x')));
  // Padded to the bound exactly with an unknown field: parsed (and valid).
  std::string at = "{\"user\":\"u\",\"text\":\"edge\",\"pad\":\"\"}";
  at.insert(at.size() - 2, std::string(bound - at.size(), 'p'));
  ASSERT_EQ(at.size(), bound);
  ASSERT_TRUE(c->send_text(at));
  std::string f;
  for (int i = 0; i < 10 && f.find("\"type\":\"msg\"") == std::string::npos; ++i) f = c->read_text();
  EXPECT_NE(f.find("\"text\":\"edge\""), std::string::npos) << f.substr(0, 200);
  // One byte over: the header alone decides.
  ASSERT_TRUE(c->write_all(WsClient::partial_frame(Opcode::Text, bound + 1, 0)));
  EXPECT_EQ(c->read_close_code(), 1009);
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(ChatInputLimits, NonChatConnectionsKeepTheServersLimit) {
  WsClient plain;
  ASSERT_TRUE(plain.connect(h.port(), "/anything", ""));
  ASSERT_TRUE(plain.send_binary(std::string(1 << 20, 'b')));  // 1 MiB: far above the chat's bound
  EXPECT_TRUE(h.wait_for([this](chat::ChatService&) { return h.non_chat_messages() == 1; }));
}

// The attack: 50 chat connections each announce a 15 MiB message and send
// 1 MiB of it. Every one is closed with 1009 at its header; what they send
// after is discarded, so the server's memory does not grow with it; members
// keep chatting throughout.
TEST_F(ChatInputLimits, FiftyConnectionsSendingUnfinishedHugeFramesCostNoMemory) {
  auto bystander = member();
  ASSERT_TRUE(round_trip(*bystander, "before"));
  const size_t before = rss_bytes();
  std::vector<std::unique_ptr<WsClient>> attackers;
  for (int i = 0; i < 50; ++i) attackers.push_back(member());
  const std::string attack = WsClient::partial_frame(Opcode::Text, 15u << 20, 1 << 20);
  size_t closed_1009 = 0;
  for (auto& a : attackers) {
    a->write_all(attack);  // may fail part way: the server closes it under us
    closed_1009 += a->read_close_code() == 1009;
  }
  EXPECT_EQ(closed_1009, attackers.size());
  if (kMeasureMemory) {
    const size_t after = rss_bytes();
    // 50 x 1 MiB would be buffered without the bound; allow a quarter.
    EXPECT_LT(after, before + 12 * kMiB)
        << "RSS " << before / kMiB << " MiB before, " << after / kMiB << " MiB after";
  }
  ASSERT_TRUE(round_trip(*bystander, "after"));
}

}  // namespace
}  // namespace chatws::test
