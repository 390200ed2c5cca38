// A chat room whose members are on both loops of a two-loop server
// (ServerConfig::threads = 2), real v1 clients on 127.0.0.1: posters on
// both loops at once, and every member, on either loop, receives the
// room's messages in one and the same order (checked message by message);
// the history a joiner is greeted with is that order's tail (committed
// before delivery); presence counts members of both loops.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_router.h"
#include "chat/chat_service.h"
#include "chat/classic_flood.h"
#include "chat/wire_decode.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;

namespace {

struct TwoLoopChat {
  chat::ChatRouter router{nullptr};
  std::unique_ptr<Server> server;
  std::unique_ptr<chat::ChatService> chat;
  std::thread thread;

  explicit TwoLoopChat(ServerConfig sc = {}) {
    sc.threads = 2;
    sc.subprotocols = {"chatws.v1", "json"};
    std::string err;
    int code = 0;
    server = Server::create(sc, &router, &err, &code);
    EXPECT_TRUE(server) << err;
    chat::ChatConfig cc;
    cc.rate.per_second = chat::ChatConfig::kRateOff;  // these posters flood on purpose
    chat = chat::ChatService::create(*server, cc, &err, &code);
    EXPECT_TRUE(chat) << err;
    router.attach(server.get(), chat.get());
    thread = std::thread([this] { server->run(); });
  }
  ~TwoLoopChat() {
    server->stop();
    thread.join();
    server.reset();  // its teardown still reaches the chat
    router.detach();
  }
};

// The next chat message (presence frames skipped); type "" on failure.
V1 next_msg(WsClient& c) {
  for (int i = 0; i < 1000; ++i) {
    V1 v;
    const std::string f = c.read_text(10000);
    if (!decode_v1(f, &v)) {
      ADD_FAILURE() << "not a v1 frame: " << f;
      return V1{};
    }
    if (v.type == "msg") return v;
    if (v.type != "join" && v.type != "leave") {
      ADD_FAILURE() << "unexpected " << f;
      return V1{};
    }
  }
  return V1{};
}

}  // namespace

TEST(ChatMultiLoop, MembersOnBothLoopsSeeOneOrderAndTheHistoryIsItsTail) {
  TwoLoopChat t;
  const uint16_t port = t.server->port();
  constexpr size_t kMembers = 16, kEach = 25;
  std::vector<std::unique_ptr<WsClient>> members;
  std::set<int> loops;
  for (size_t i = 0; i < kMembers; ++i) {
    members.push_back(std::make_unique<WsClient>());
    ASSERT_TRUE(members.back()->connect(port, "/rooms/lobby", "chatws.v1"));
    V1 hello;
    ASSERT_TRUE(decode_v1(members.back()->read_text(), &hello));
    ASSERT_EQ(hello.type, "hello");
    EXPECT_EQ(hello.members, int64_t(i + 1)) << "joins on both loops counted";
    loops.insert(int(hello.you % 2));
  }
  ASSERT_EQ(loops.size(), 2u) << "all members on one loop (1 in 32768)";
  EXPECT_EQ(t.chat->member_count("lobby"), kMembers);

  // Every member posts at once, from a thread each.
  std::vector<std::thread> posters;
  for (size_t i = 0; i < kMembers; ++i)
    posters.emplace_back([&, i] {
      for (size_t k = 0; k < kEach; ++k)
        members[i]->send_text(R"({"user":"u)" + std::to_string(i) + R"(","text":"m)" +
                              std::to_string(k) + R"("})");
    });
  std::vector<std::vector<V1>> got(kMembers);
  std::vector<std::thread> readers;
  for (size_t i = 0; i < kMembers; ++i)
    readers.emplace_back([&, i] {
      for (size_t n = 0; n < kMembers * kEach; ++n) got[i].push_back(next_msg(*members[i]));
    });
  for (auto& p : posters) p.join();
  for (auto& r : readers) r.join();

  // One order for all: member 0's, message by message; ids strictly rising
  // and each poster's messages in its order.
  const std::vector<V1>& ref = got[0];
  ASSERT_EQ(ref.size(), kMembers * kEach);
  std::map<std::string, size_t> next;
  for (size_t n = 0; n < ref.size(); ++n) {
    ASSERT_EQ(ref[n].type, "msg");
    if (n) {
      EXPECT_GT(ref[n].msg.id, ref[n - 1].msg.id);
    }
    EXPECT_EQ(ref[n].msg.text, "m" + std::to_string(next[ref[n].msg.user]++));
  }
  for (size_t i = 1; i < kMembers; ++i) {
    ASSERT_EQ(got[i].size(), ref.size());
    for (size_t n = 0; n < ref.size(); ++n) {
      ASSERT_EQ(got[i][n].msg.id, ref[n].msg.id) << "member " << i << " message " << n;
      ASSERT_EQ(got[i][n].msg.user, ref[n].msg.user);
      ASSERT_EQ(got[i][n].msg.text, ref[n].msg.text);
    }
  }

  // A joiner (on whichever loop) is greeted with the committed tail of that
  // order, and counted with the others.
  WsClient late;
  ASSERT_TRUE(late.connect(port, "/rooms/lobby", "chatws.v1"));
  V1 hello;
  ASSERT_TRUE(decode_v1(late.read_text(), &hello));
  EXPECT_EQ(hello.members, int64_t(kMembers + 1));
  ASSERT_EQ(hello.history.size(), 50u);  // the default history size
  for (size_t n = 0; n < 50; ++n) {
    // Oldest first in the v1 hello.
    EXPECT_EQ(hello.history[n].id, ref[ref.size() - 50 + n].msg.id);
    EXPECT_EQ(hello.history[n].text, ref[ref.size() - 50 + n].msg.text);
  }
  // Leaves on both loops are counted too.
  for (size_t i = 0; i < kMembers; ++i) members[i]->close();
  for (int i = 0; i < 500 && t.chat->member_count("lobby") != 1; ++i)
    late.read_text(20);  // presence frames arrive meanwhile; bounded
  EXPECT_EQ(t.chat->member_count("lobby"), 1u);
}

// A classic member that keeps reading, on a small send buffer, while a
// member on the other loop floods the room with messages of control
// characters (1 byte stored, 6 on the wire): as with one loop
// (ChatClassicFlood in test_chat_slow_reader.cpp), it is never closed and
// is sent only the latest snapshot once it has caught up, so that the
// flooder's bytes are not multiplied per member. Whether a member is behind
// is its own loop's to tell: the sender's loop cannot see another loop's
// connections.
TEST(ChatMultiLoop, ClassicReaderOnTheOtherLoopGetsTheLatestSnapshotNotEveryOne) {
  ServerConfig sc;  // 1 MiB output cap
  sc.socket_send_buffer = 64 * 1024;
  // Loop 0 hands each connection to the loop with the fewest: the reader
  // and the flooder, opened one after the other, are on different loops.
  sc.accept_mode = ServerConfig::AcceptMode::Handoff;
  TwoLoopChat t(sc);
  ClassicFlood seen;
  // 150 x 24.6 KB on the wire (unbounded: closed after ~40).
  ASSERT_NO_FATAL_FAILURE(seen.run(t.server->port(), "flood", 150));
  EXPECT_EQ(seen.failure, "");
  EXPECT_GE(seen.snapshots, 1);
  EXPECT_LE(seen.largest, sc.max_output_buffer / 4);
  EXPECT_EQ(t.chat->member_count("flood"), 2u);
}
