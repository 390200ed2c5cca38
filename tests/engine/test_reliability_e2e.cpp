// Reliability over real sockets: idle pings and timeouts, the close
// timeout, slow consumers under both policies, on_drain, graceful stop, the
// per-address limit and descriptor exhaustion.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

std::unique_ptr<ServerThread> start(ServerConfig cfg, RecordingHandler& h) {
  auto st = std::make_unique<ServerThread>(cfg, &h);
  EXPECT_TRUE(st->server) << st->error;
  h.server = st->server.get();
  return st;
}

TEST(Idle, SilentPeerIsPingedThenClosed) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.idle_timeout_ms = 200;
  auto st = start(cfg, h);
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  auto f = c.read_frame(3000);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Ping);
  // No pong: the server gives up after another idle period.
  ASSERT_TRUE(h.wait_count(Event::Close, 1, 3000));
  EXPECT_EQ(h.events().back().code, 1006);
  EXPECT_TRUE(c.wait_eof(3000));
}

TEST(Idle, PeerAnsweringPingsStaysOpen) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.idle_timeout_ms = 150;
  auto st = start(cfg, h);
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  for (int i = 0; i < 3; ++i) {  // three idle periods, each answered
    auto f = c.read_frame(3000);
    ASSERT_TRUE(f);
    ASSERT_EQ(f->op, Opcode::Ping);
    ASSERT_TRUE(c.send_frame(Opcode::Pong, f->payload));
  }
  EXPECT_EQ(h.count(Event::Close), 0u);
  EXPECT_EQ(st->server->connection_count(), 1u);
}

TEST(CloseTimeout, PeerThatNeverAnswersOurCloseIsDropped) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.close_timeout_ms = 200;
  auto st = start(cfg, h);
  h.on_open_hook = [&](ConnId id) { h.server->close(id, 4001, "go away"); };
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Close);
  EXPECT_EQ(f->close_code(), 4001);
  EXPECT_EQ(f->close_reason(), "go away");
  // We never reply: the server closes TCP after close_timeout_ms.
  EXPECT_TRUE(c.wait_eof(3000));
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
  EXPECT_EQ(h.events().back().code, 4001);
}

// A client that never reads while the server pushes to it.
struct SlowConsumer : ::testing::Test {
  RecordingHandler h;
  std::unique_ptr<ServerThread> st;
  std::vector<int> results;  // send() results, recorded on the loop thread
  std::mutex mu;

  void start_with(SlowConsumerPolicy policy) {
    ServerConfig cfg;
    cfg.max_output_buffer = 256 * 1024;
    // Kernel buffers of a fixed small size: the server writes a backlog
    // through to the kernel before it calls a client slow, and autotuned
    // ones take megabytes (slow to read back through a 4 KiB window).
    cfg.socket_send_buffer = 16 * 1024;
    cfg.drain_timeout_ms = 300;  // teardown: the slow client never answers the 1001
    cfg.slow_policy = policy;
    // "flood": push 4 MiB to the sender in 4 KiB messages, recording each result.
    h.on_msg = [this](ConnId id, Opcode, const char* d, size_t n) {
      if (std::string_view(d, n) != "flood") return;
      std::string chunk(4096, 'z');
      std::lock_guard<std::mutex> lock(mu);
      for (int i = 0; i < 1024; ++i) results.push_back(h.server->send(id, Opcode::Binary, chunk));
    };
    st = start(cfg, h);
  }
  std::unique_ptr<WsClient> slow_client() {
    auto c = std::make_unique<WsClient>(st->port());
    c->set_receive_buffer(4096);  // the backlog reaches us sooner
    EXPECT_EQ(c->handshake(), 101);
    return c;
  }
};

TEST_F(SlowConsumer, ClosePolicyClosesWith1008AndSparesOthers) {
  start_with(SlowConsumerPolicy::Close);
  auto slow = slow_client();
  WsClient other(st->port());
  ASSERT_EQ(other.handshake(), 101);
  ASSERT_TRUE(slow->send_text("flood"));
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
  auto ev = h.events();
  EXPECT_EQ(ev.back().code, 1008);
  EXPECT_NE(ev.back().data.find("too slow"), std::string::npos);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_NE(std::find(results.begin(), results.end(), kQueuedOverLimit), results.end());
    EXPECT_NE(std::find(results.begin(), results.end(), kEFull), results.end());
  }
  // The well-behaved client is unaffected.
  ASSERT_TRUE(other.send_text("hi"));
  st->server->broadcast(Opcode::Text, "still serving", 0);
  auto f = other.read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "still serving");
}

TEST_F(SlowConsumer, DropPolicyDropsButKeepsTheConnectionAndDrains) {
  start_with(SlowConsumerPolicy::Drop);
  auto slow = slow_client();
  ASSERT_TRUE(slow->send_text("flood"));
  // Wait until the loop has made all its attempts.
  ASSERT_TRUE(h.wait([&](const std::vector<Event>& ev) {
    std::lock_guard<std::mutex> lock(mu);
    return results.size() == 1024 && !ev.empty();
  }));
  size_t dropped;
  {
    std::lock_guard<std::mutex> lock(mu);
    dropped = size_t(std::count(results.begin(), results.end(), kEFull));
  }
  EXPECT_GT(dropped, 0u);
  // Now read everything that was queued: exactly the messages not dropped.
  size_t got = 0;
  while (got < 1024 - dropped) {
    auto f = slow->read_message();
    ASSERT_TRUE(f) << got;
    ASSERT_EQ(f->payload.size(), 4096u);
    ++got;
  }
  EXPECT_TRUE(h.wait_count(Event::Drain, 1));  // on_drain once the queue emptied
  EXPECT_EQ(h.count(Event::Close), 0u);
  EXPECT_EQ(st->server->connection_count(), 1u);
}

TEST(GracefulStop, ClientsGetClose1001AndOnCloseRuns) {
  RecordingHandler h;
  ServerConfig cfg;
  auto st = start(cfg, h);
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 5; ++i) {
    cs.push_back(std::make_unique<WsClient>(st->port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  ASSERT_TRUE(h.wait_count(Event::Open, 5));
  st->server->stop();
  for (auto& c : cs) {
    auto f = c->read_message();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->op, Opcode::Close);
    EXPECT_EQ(f->close_code(), 1001);
    ASSERT_TRUE(c->send_close(1001));  // a well-behaved client answers
    EXPECT_TRUE(c->wait_eof());       // and sees an orderly FIN, not a reset
  }
  st->thread.join();
  EXPECT_TRUE(st->server->stopped());
  EXPECT_EQ(h.count(Event::Close), 5u);
  // The listener is gone.
  TcpClient late(st->port());
  EXPECT_FALSE(late.ok() && late.write_all("GET / HTTP/1.1\r\n\r\n") && late.read_http_response(500));
}

TEST(Limits, PerAddressLimit) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.max_connections_per_ip = 2;
  auto st = start(cfg, h);
  WsClient a(st->port()), b(st->port()), c(st->port());
  EXPECT_EQ(a.handshake(), 101);
  EXPECT_EQ(b.handshake(), 101);
  EXPECT_EQ(c.handshake(), 503);
}

TEST(Limits, DescriptorExhaustionShedsAndRecovers) {
  RecordingHandler h;
  auto st = start(ServerConfig{}, h);
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  // Fill the table up to a low limit so the server's accept hits EMFILE.
  std::vector<int> hog;
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  while (true) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    hog.push_back(fd);
  }
  ASSERT_FALSE(hog.empty());
  // Free exactly one: the client socket can connect, the server cannot accept.
  ::close(hog.back());
  hog.pop_back();
  {
    TcpClient c(st->port());
    ASSERT_TRUE(c.ok());
    // The server sheds it (closes at once) instead of spinning.
    EXPECT_TRUE(c.wait_eof(3000));
  }
  for (int fd : hog) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  WsClient ok(st->port());
  EXPECT_EQ(ok.handshake(), 101);
}

}  // namespace

namespace {

// 1000 connections, 100 of which never read, while the host broadcasts:
// the 900 others receive every message, the 100 are closed with 1008 once
// their queue passes the cap, and nobody else is closed.
TEST(SlowConsumers, BroadcastTo1000Of100NeverRead) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 4096) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ASSERT_GE(rl.rlim_cur, 2100u);
  RecordingHandler h;
  ServerConfig cfg;
  cfg.max_output_buffer = 64 * 1024;
  cfg.socket_send_buffer = 16 * 1024;  // so the cap, not kernel buffers, decides
  cfg.drain_timeout_ms = 300;
  auto st = start(cfg, h);
  constexpr int kConns = 1000, kSilent = 100, kBatches = 15, kPerBatch = 20;
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < kConns; ++i) {
    cs.push_back(std::make_unique<WsClient>(st->port()));
    if (i < kSilent) cs.back()->set_receive_buffer(4096);
    ASSERT_EQ(cs.back()->handshake(), 101) << i;
  }
  ASSERT_TRUE(h.wait_count(Event::Open, kConns));
  const std::string payload(1024, 'm');
  const size_t frame = 4 + payload.size();  // 126-form header, unmasked
  std::vector<size_t> got(kConns, 0);
  for (int b = 1; b <= kBatches; ++b) {
    for (int k = 0; k < kPerBatch; ++k) st->server->broadcast(Opcode::Binary, payload, 0);
    // Readers drain their sockets until they hold every frame so far.
    const size_t want = size_t(b) * kPerBatch * frame;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = kSilent; i < kConns; ++i) {
      while (got[size_t(i)] < want) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "reader " << i << " starved";
        char buf[65536];
        pollfd p{cs[size_t(i)]->fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 5000), 1) << "reader " << i;
        ssize_t n = ::recv(cs[size_t(i)]->fd(), buf, sizeof buf, 0);
        ASSERT_GT(n, 0) << "reader " << i << " was closed";
        got[size_t(i)] += size_t(n);
      }
      ASSERT_EQ(got[size_t(i)], want) << "reader " << i;
    }
  }
  // Every silent connection was closed as too slow, and only those.
  ASSERT_TRUE(h.wait_count(Event::Close, kSilent, 10000));
  auto ev = h.events();
  size_t closes = 0;
  for (auto& e : ev) {
    if (e.kind != Event::Close) continue;
    ++closes;
    EXPECT_EQ(e.code, 1008);
    EXPECT_LE(e.id, ConnId(kSilent)) << "a reader was closed";
  }
  EXPECT_EQ(closes, size_t(kSilent));
  EXPECT_EQ(st->server->connection_count(), size_t(kConns - kSilent));
}

}  // namespace
