// Server::path(id) end to end over real sockets: each connection reports the
// path it upgraded on (query excluded, as in ConnInfo::path), connections
// sharing a path in the PathTable each see it, the path survives its move
// into a built ConnInfo, and a stale id reads as "".
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// A handler that answers commands about its own connection (or another's)
// from the loop thread, where Server::path may be called:
//   "path"        -> path(self)
//   "sub"         -> subprotocol(self)
//   "info"        -> path(self) after building the ConnInfo, "|", info->path
//   "of:<id>"     -> "[" + path(id) + "]"
struct PathFixture : ::testing::Test {
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;
  std::mutex mu;
  std::map<ConnId, std::string> path_at_open;  // as seen inside on_open

  void SetUp() override {
    handler.on_open_hook = [this](ConnId id) {
      std::lock_guard<std::mutex> lk(mu);
      path_at_open[id] = std::string(handler.server->path(id));
    };
    handler.on_msg = [this](ConnId id, Opcode, const char* d, size_t n) {
      Server& s = *handler.server;
      const std::string cmd(d, n);
      std::string reply;
      if (cmd == "path") {
        reply = s.path(id);
      } else if (cmd == "sub") {
        reply = s.subprotocol(id);
      } else if (cmd == "info") {
        const ConnInfo* i = s.info(id);
        reply = std::string(s.path(id)) + "|" + (i ? i->path : "<no info>");
      } else if (cmd.rfind("of:", 0) == 0) {
        reply = "[" + std::string(s.path(std::stoull(cmd.substr(3)))) + "]";
      }
      s.send(id, Opcode::Text, reply);
    };
    ServerConfig cfg;
    cfg.subprotocols = {"p1", "p2"};
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
  }

  std::unique_ptr<WsClient> connect(std::string_view target, std::string_view protocols = "") {
    auto c = std::make_unique<WsClient>(st->port());
    EXPECT_TRUE(c->ok());
    EXPECT_EQ(c->handshake(target, protocols), 101) << c->response();
    return c;
  }

  static std::string ask(WsClient& c, std::string_view cmd) {
    if (!c.send_text(cmd)) return "<send failed>";
    auto f = c.read_message();
    return f ? f->payload : "<no reply>";
  }

  // The ids of the open events, in connection order.
  std::vector<ConnId> open_ids() {
    std::vector<ConnId> ids;
    for (const Event& e : handler.events())
      if (e.kind == Event::Open) ids.push_back(e.id);
    return ids;
  }
};

TEST_F(PathFixture, EachConnectionReportsItsOwnPath) {
  auto root = connect("/");
  auto lobby1 = connect("/chat/lobby", "p2");
  auto other = connect("/rooms/b?x=1&y=2");
  auto lobby2 = connect("/chat/lobby", "p1");  // shares lobby1's PathTable entry
  ASSERT_TRUE(handler.wait_count(Event::Open, 4));

  EXPECT_EQ(ask(*root, "path"), "/");
  EXPECT_EQ(ask(*lobby1, "path"), "/chat/lobby");
  EXPECT_EQ(ask(*other, "path"), "/rooms/b");  // the query is not part of the path
  EXPECT_EQ(ask(*lobby2, "path"), "/chat/lobby");
  // The subprotocol lookup is independent of the path's.
  EXPECT_EQ(ask(*lobby1, "sub"), "p2");
  EXPECT_EQ(ask(*lobby2, "sub"), "p1");
  EXPECT_EQ(ask(*root, "sub"), "");

  // Already right inside on_open, where the chat asks for it.
  const std::vector<ConnId> ids = open_ids();
  ASSERT_EQ(ids.size(), 4u);
  std::lock_guard<std::mutex> lk(mu);
  EXPECT_EQ(path_at_open[ids[0]], "/");
  EXPECT_EQ(path_at_open[ids[1]], "/chat/lobby");
  EXPECT_EQ(path_at_open[ids[2]], "/rooms/b");
  EXPECT_EQ(path_at_open[ids[3]], "/chat/lobby");
}

TEST_F(PathFixture, PathSurvivesTheConnInfoBeingBuilt) {
  auto a = connect("/shared");
  auto b = connect("/shared");
  ASSERT_TRUE(handler.wait_count(Event::Open, 2));
  // Building a's ConnInfo moves its path out of the shared PathTable entry:
  // both a (now from the info) and b (still from the table) keep theirs.
  EXPECT_EQ(ask(*a, "info"), "/shared|/shared");
  EXPECT_EQ(ask(*a, "path"), "/shared");
  EXPECT_EQ(ask(*b, "path"), "/shared");
  // b's info too: the last reference to the table entry goes.
  EXPECT_EQ(ask(*b, "info"), "/shared|/shared");
  EXPECT_EQ(ask(*b, "path"), "/shared");
}

TEST_F(PathFixture, OtherAndStaleConnections) {
  auto a = connect("/a");
  auto b = connect("/b/c");
  ASSERT_TRUE(handler.wait_count(Event::Open, 2));
  const std::vector<ConnId> ids = open_ids();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ask(*a, "of:" + std::to_string(ids[1])), "[/b/c]");

  // on_close may run while the connection still lingers (info() and
  // subprotocol() answer then too); once b's socket is gone the server
  // drops it and its id goes stale. Bounded wait for that.
  ASSERT_TRUE(b->send_close(1000));
  auto reply = b->read_message();
  ASSERT_TRUE(reply && reply->op == Opcode::Close);
  b->close();
  ASSERT_TRUE(handler.wait_count(Event::Close, 1));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string stale;
  do {
    stale = ask(*a, "of:" + std::to_string(ids[1]));
  } while (stale != "[]" && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(stale, "[]");
  EXPECT_EQ(ask(*a, "of:999999"), "[]");  // never existed
  EXPECT_EQ(ask(*a, "path"), "/a");
}

}  // namespace
