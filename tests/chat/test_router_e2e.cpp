// chat::ChatRouter end to end: one real Server on 127.0.0.1 carrying chat
// connections and the host's own WebSocket traffic side by side. Checks
// which side sees which event (the contract in chat_router.h, which the C
// ABI's callbacks rely on).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_router.h"
#include "chat/chat_service.h"
#include "support/test_server.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

using protocol::Opcode;

// The host: records every event it gets, echoes messages, and refuses
// upgrades to /forbidden (to show it is asked after the chat).
class Host : public RecordingHandler {
 public:
  std::atomic<int> upgrades{0};
  int on_upgrade(std::string_view path, std::string_view, std::string* reason) override {
    ++upgrades;
    if (path != "/forbidden") return 0;
    *reason = "host says no";
    return 403;
  }
};

class RouterE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    host.on_msg = [this](ConnId id, Opcode op, const char* d, size_t n) {
      server->send(id, op, std::string_view(d, n));
    };
    ServerConfig sc;
    sc.subprotocols = {"chatws.v1", "json", "echo"};
    std::string err;
    int code = 0;
    server = Server::create(sc, &router, &err, &code);
    ASSERT_TRUE(server) << err;
    host.server = server.get();
    chat = chat::ChatService::create(*server, chat::ChatConfig{}, &err, &code);
    ASSERT_TRUE(chat) << err;
    router.attach(server.get(), chat.get());  // before the loop runs
    loop = std::thread([this] { server->run(); });
  }
  void TearDown() override {
    if (loop.joinable()) {
      server->stop();
      loop.join();
    }
    server.reset();  // its last on_close calls still reach the chat
    router.detach();
    chat.reset();
  }

  std::unique_ptr<WsClient> connect(std::string_view path, std::string_view sp) {
    auto c = std::make_unique<WsClient>(server->port());
    EXPECT_EQ(c->handshake(path, sp), 101) << c->response();
    return c;
  }

  // The ids of the host's events of kind k, in order.
  std::vector<ConnId> ids_of(Event::Kind k) {
    std::vector<ConnId> out;
    for (const Event& e : host.events())
      if (e.kind == k) out.push_back(e.id);
    return out;
  }

  Host host;
  chat::ChatRouter router{&host};
  std::unique_ptr<Server> server;
  std::unique_ptr<chat::ChatService> chat;
  std::thread loop;
};

TEST_F(RouterE2E, ChatMessagesGoToTheChatOthersToTheHost) {
  auto chatter = connect("/rooms/lobby", "chatws.v1");
  auto hello = chatter->read_message();
  ASSERT_TRUE(hello);
  EXPECT_NE(hello->payload.find("\"type\":\"hello\""), std::string::npos) << hello->payload;
  EXPECT_NE(hello->payload.find("\"room\":\"lobby\""), std::string::npos) << hello->payload;

  auto echo = connect("/rooms/lobby", "echo");  // a chat-looking path, not a chat subprotocol
  auto plain = connect("/anything", "");
  // The host sees every connection open, the chat's included.
  ASSERT_TRUE(host.wait_count(Event::Open, 3));

  ASSERT_TRUE(chatter->send_text(R"({"user":"ann","text":"hi all"})"));
  auto m = chatter->read_message();
  ASSERT_TRUE(m);
  EXPECT_NE(m->payload.find("hi all"), std::string::npos) << m->payload;

  ASSERT_TRUE(echo->send_text("ping one"));
  m = echo->read_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "ping one");  // the host's echo, not a chat frame
  ASSERT_TRUE(plain->send_binary(std::string("\x01\x02", 2)));
  m = plain->read_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->op, Opcode::Binary);

  // Only the two non-chat messages reached the host.
  ASSERT_TRUE(host.wait_count(Event::Message, 2));
  const std::vector<ConnId> opens = ids_of(Event::Open);
  ASSERT_EQ(opens.size(), 3u);
  const std::vector<ConnId> msgs = ids_of(Event::Message);
  EXPECT_EQ(msgs, (std::vector<ConnId>{opens[1], opens[2]}));

  // The host sees every connection close, the chat's included.
  ASSERT_TRUE(chatter->send_close(1000));
  ASSERT_TRUE(echo->send_close(1000));
  ASSERT_TRUE(host.wait_count(Event::Close, 2));
  std::vector<ConnId> closes = ids_of(Event::Close);
  std::sort(closes.begin(), closes.end());
  EXPECT_EQ(closes, (std::vector<ConnId>{opens[0], opens[1]}));
  EXPECT_EQ(host.count(Event::Message), 2u);
}

TEST_F(RouterE2E, ChatLeaveIsSeenByTheRestOfTheRoom) {
  auto a = connect("/rooms/r", "chatws.v1");
  ASSERT_TRUE(a->read_message());  // hello
  auto b = connect("/rooms/r", "chatws.v1");
  ASSERT_TRUE(b->read_message());  // hello
  auto joined = a->read_message();  // presence: b joined
  ASSERT_TRUE(joined);
  EXPECT_NE(joined->payload.find("\"members\":2"), std::string::npos) << joined->payload;

  // b's close goes to the chat (a is told) as well as to the host.
  ASSERT_TRUE(b->send_close(1000));
  auto left = a->read_message();
  ASSERT_TRUE(left);
  EXPECT_NE(left->payload.find("\"members\":1"), std::string::npos) << left->payload;
  ASSERT_TRUE(host.wait_count(Event::Close, 1));
}

TEST_F(RouterE2E, UpgradeAsksTheChatThenTheHost) {
  // A bad room for a chat subprotocol: the chat refuses, the host is not asked.
  WsClient bad(server->port());
  EXPECT_EQ(bad.handshake("/nowhere", "json"), 404);
  EXPECT_EQ(host.upgrades.load(), 0);
  // The same path without a chat subprotocol is the host's to accept.
  auto ok = connect("/nowhere", "echo");
  EXPECT_EQ(host.upgrades.load(), 1);
  // The host may refuse what the chat leaves to it ...
  WsClient refused(server->port());
  EXPECT_EQ(refused.handshake("/forbidden", "echo"), 403);
  // ... and is asked about chat connections the chat accepted.
  auto chatter = connect("/rooms/x", "json");
  EXPECT_EQ(host.upgrades.load(), 3);
}

}  // namespace
}  // namespace chatws::test
