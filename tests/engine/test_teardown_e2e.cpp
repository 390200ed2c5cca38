// Teardown with a host handler that throws from on_close (a C++ host's bug,
// or bad_alloc inside it): ~Server is noexcept, so an exception escaping it
// would terminate the host, and one that stopped the teardown half-way would
// leave connections unreported and their sockets open. Real sockets on
// 127.0.0.1; the loop polled on a thread of the test.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;

namespace {

class ThrowingCloseHandler : public RecordingHandler {
 public:
  void on_close(ConnId id, uint16_t code, std::string_view reason) override {
    RecordingHandler::on_close(id, code, reason);
    throw std::runtime_error("host bug in on_close");
  }
  void on_log(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu_);
    logs_.emplace_back(level, std::string(message));
  }
  size_t logged(LogLevel level, std::string_view part) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [l, m] : logs_) n += l == level && m.find(part) != std::string::npos;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<LogLevel, std::string>> logs_;
};

std::unique_ptr<Server> make_server(ServerHandler* h) {
  ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  std::string err;
  int code = 0;
  return Server::create(cfg, h, &err, &code);
}

// Polls on a thread until n connections are open (bounded), then returns:
// the test's thread may then destroy the server.
bool open_clients(Server& server, RecordingHandler& h, std::vector<WsClient>& clients) {
  bool done = false;
  std::thread loop([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (h.count(Event::Open) < clients.size() && std::chrono::steady_clock::now() < until) server.poll(20);
    done = h.count(Event::Open) == clients.size();
  });
  bool connected = true;
  for (WsClient& c : clients) connected &= c.connect(server.port());
  loop.join();
  return connected && done;
}

TEST(Teardown, DestroyGoesOnPastAThrowingOnClose) {
  ThrowingCloseHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  std::vector<WsClient> clients(3);
  ASSERT_TRUE(open_clients(*server, h, clients));
  server.reset();  // ~Server: teardown without shutdown()
  // Every connection reported once, each throw logged, no terminate.
  EXPECT_EQ(h.count(Event::Close), 3u);
  EXPECT_EQ(h.logged(LogLevel::Error, "host bug in on_close"), 3u);
  // And every socket closed: each client gets the 1001 close, then EOF.
  for (WsClient& c : clients) EXPECT_TRUE(c.wait_eof(5000));
}

TEST(Teardown, ShutdownGoesOnPastAThrowingOnClose) {
  ThrowingCloseHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  std::vector<WsClient> clients(2);
  ASSERT_TRUE(open_clients(*server, h, clients));
  EXPECT_EQ(server->shutdown(), kOk);
  EXPECT_EQ(h.count(Event::Close), 2u);
  for (WsClient& c : clients) EXPECT_TRUE(c.wait_eof(5000));
  server.reset();  // nothing left to report
  EXPECT_EQ(h.count(Event::Close), 2u);
}

}  // namespace
