// The loop's stats against the traffic the test sends over real sockets:
// N messages in and N x M broadcast deliveries out, K refusals by reason,
// closes by code, slow-consumer closes, the HTTP gauge; the snapshot read
// from another thread while the loop works (run under TSan in CI's
// sanitizer build); the rate limit of refusal log lines; the metrics
// listener's endpoints.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/log_limiter.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// The snapshot is published at the end of the loop's iteration, after the
// writes a client may already have read: wait (bounded) for the counters
// to get there.
bool wait_stats(Server& s, const std::function<bool(const StatsSnapshot&)>& pred,
                StatsSnapshot* out, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    s.stats(out);
    if (pred(*out)) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling a condition, bounded
  }
}

uint64_t rejected(const StatsSnapshot& s, RejectReason r) {
  return s.c.handshakes_rejected[size_t(r)];
}

// Broadcasts every message to every open connection, sender included; logs
// go to a list.
struct BroadcastHandler : RecordingHandler {
  std::mutex log_mu;
  std::vector<std::string> logs;
  BroadcastHandler() {
    on_msg = [this](ConnId, Opcode op, const char* d, size_t n) {
      server->broadcast(op, std::string_view(d, n), 0);
    };
  }
  void on_log(LogLevel, std::string_view m) override {
    std::lock_guard<std::mutex> lock(log_mu);
    logs.emplace_back(m);
  }
  size_t log_count() {
    std::lock_guard<std::mutex> lock(log_mu);
    return logs.size();
  }
};

std::string http_get(uint16_t port, std::string_view path, std::string_view method = "GET") {
  TcpClient c;
  if (!c.open(port)) return "";
  if (method == "HEAD") c.expect_head_response(true);
  c.write_all(std::string(method) + " " + std::string(path) +
              " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto r = c.read_http_response();
  return r ? *r : "";
}

TEST(Stats, CountsMatchTheTrafficSent) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.allowed_origins = {"http://ok.example"};
  cfg.websocket_path_prefix = "/ws";
  cfg.max_connections = 3;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();

  // K refusals of each kind, before the connection limit is reached.
  const int kOrigin = 2, kPath = 3, kBad = 4, kLimit = 5;
  for (int i = 0; i < kOrigin; ++i) {
    WsClient c(st.port());
    EXPECT_EQ(c.handshake("/ws", "", "Origin: http://evil.example\r\n"), 403);
  }
  for (int i = 0; i < kPath; ++i) {
    WsClient c(st.port());
    EXPECT_EQ(c.handshake("/elsewhere", "", "Origin: http://ok.example\r\n"), 404);
  }
  for (int i = 0; i < kBad; ++i) {
    TcpClient c;
    ASSERT_TRUE(c.open(st.port()));
    ASSERT_TRUE(c.write_all("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"));  // no key
    auto r = c.read_http_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->rfind("HTTP/1.1 400", 0), 0u) << *r;
  }

  const int M = 3, N = 25;
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < M; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake("/ws", "", "Origin: http://ok.example\r\n"), 101);
  }
  for (int i = 0; i < kLimit; ++i) {
    WsClient c(st.port());
    EXPECT_EQ(c.handshake("/ws", "", "Origin: http://ok.example\r\n"), 503);
  }
  StatsSnapshot s;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.websocket_connections == M; }, &s));

  const std::string payload(100, 'p');
  for (int i = 0; i < N; ++i) ASSERT_TRUE(cs[i % M]->send_text(payload));
  for (auto& c : cs)
    for (int i = 0; i < N; ++i) ASSERT_TRUE(c->read_message()) << i;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.c.broadcast_deliveries >= N * M; }, &s));
  EXPECT_EQ(s.c.messages_in, uint64_t(N));
  EXPECT_EQ(s.c.broadcasts, uint64_t(N));
  EXPECT_EQ(s.c.broadcast_deliveries, uint64_t(N * M));
  EXPECT_EQ(s.c.messages_out, uint64_t(N * M));
  EXPECT_EQ(s.c.handshakes_accepted, uint64_t(M));
  EXPECT_EQ(rejected(s, RejectReason::Origin), uint64_t(kOrigin));
  EXPECT_EQ(rejected(s, RejectReason::Path), uint64_t(kPath));
  EXPECT_EQ(rejected(s, RejectReason::BadRequest), uint64_t(kBad));
  EXPECT_EQ(rejected(s, RejectReason::Limit), uint64_t(kLimit));
  EXPECT_EQ(rejected(s, RejectReason::Hook), 0u);
  EXPECT_EQ(s.c.connections_accepted, uint64_t(kOrigin + kPath + kBad + M + kLimit));
  // Each frame: 2 header bytes + 4 mask bytes + payload in; 2 + payload out.
  EXPECT_GE(s.c.bytes_in, uint64_t(N) * (6 + payload.size()));
  EXPECT_GE(s.c.bytes_out, uint64_t(N * M) * (2 + payload.size()));
  EXPECT_EQ(s.c.iterations, s.c.iteration_duration.count);
  EXPECT_GT(s.c.iterations, 0u);
  EXPECT_TRUE(s.running);
  EXPECT_TRUE(s.accepting);
  EXPECT_FALSE(s.app.present);

  // Closes by code: two clients say 1000, one goes away (1001).
  ASSERT_TRUE(cs[0]->send_close(1000));
  ASSERT_TRUE(cs[1]->send_close(1000));
  ASSERT_TRUE(cs[2]->send_close(1001));
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.websocket_connections == 0 &&
      x.c.closes[close_slot(1000)] + x.c.closes[close_slot(1001)] == 3; }, &s));
  EXPECT_EQ(s.c.closes[close_slot(1000)], 2u);
  EXPECT_EQ(s.c.closes[close_slot(1001)], 1u);
  EXPECT_EQ(s.c.closes[close_slot(1006)], 0u);
}

TEST(Stats, HttpConnectionsAndTimeoutsAreCounted) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.handshake_timeout_ms = 200;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  TcpClient a, b;
  ASSERT_TRUE(a.open(st.port()));
  ASSERT_TRUE(b.open(st.port()));
  ASSERT_TRUE(a.write_all("GET / HTTP/1.1\r\n"));  // a head that never ends
  StatsSnapshot s;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.http_connections == 2; }, &s));
  EXPECT_EQ(s.websocket_connections, 0u);
  auto r = a.read_http_response(5000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rfind("HTTP/1.1 408", 0), 0u) << *r;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) {
    return x.c.handshakes_rejected[size_t(RejectReason::Timeout)] == 2; }, &s));
}

TEST(Stats, SlowConsumerCloseIsCountedAndLogged) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.max_output_buffer = 64 * 1024;
  cfg.socket_send_buffer = 4096;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient reader(st.port());
  ASSERT_TRUE(reader.set_receive_buffer(4096));
  ASSERT_EQ(reader.handshake(), 101);
  WsClient writer(st.port());
  ASSERT_EQ(writer.handshake(), 101);
  // The writer reads its own copies; the reader never reads.
  const std::string payload(8000, 's');
  StatsSnapshot s;
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(writer.send_text(payload));
    ASSERT_TRUE(writer.read_message()) << i;
    st.server->stats(&s);
    if (s.c.slow_consumer_closes) break;
  }
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.c.slow_consumer_closes == 1 &&
      x.c.closes[close_slot(1008)] == 1; }, &s));
  EXPECT_EQ(h.log_count(), 1u);
}

TEST(Stats, RefusalLogLinesAreRateLimited) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.websocket_path_prefix = "/ws";
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  const int K = 30;
  for (int i = 0; i < K; ++i) {
    WsClient c(st.port());
    ASSERT_EQ(c.handshake("/nope"), 404);
  }
  StatsSnapshot s;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) {
    return x.c.handshakes_rejected[size_t(RejectReason::Path)] == K; }, &s));
  EXPECT_EQ(h.log_count(), size_t(LogLimiter::kBurst));
  EXPECT_EQ(s.c.log_lines_suppressed, uint64_t(K - LogLimiter::kBurst));
  std::lock_guard<std::mutex> lock(h.log_mu);
  EXPECT_NE(h.logs[0].find("404"), std::string::npos) << h.logs[0];
  EXPECT_NE(h.logs[0].find("[path]"), std::string::npos) << h.logs[0];
}

TEST(LogLimiterUnit, NamesWhatWasHeldBackInTheNextLine) {
  LogLimiter l;
  uint64_t held = 99;
  for (int i = 0; i < LogLimiter::kBurst; ++i) {
    ASSERT_TRUE(l.allow(1000, &held));
    EXPECT_EQ(held, 0u);
  }
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(l.allow(1000 + i, &held));
  ASSERT_TRUE(l.allow(1000 + LogLimiter::kWindowMs, &held));
  EXPECT_EQ(held, 7u);
  EXPECT_EQ(l.total_suppressed(), 7u);
}

// Another thread reads snapshots while the loop works: each one is whole
// (the iteration histogram's count is the iteration counter of the same
// copy) and counters never go back.
TEST(Stats, SnapshotsReadFromAnotherThreadAreConsistent) {
  BroadcastHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    StatsSnapshot prev, s;
    while (!done.load()) {
      st.server->stats(&s);
      if (s.c.iterations != s.c.iteration_duration.count) ++bad;
      if (s.c.messages_in < prev.c.messages_in || s.c.broadcast_deliveries < prev.c.broadcast_deliveries) ++bad;
      if (s.c.broadcast_deliveries > s.c.messages_out) ++bad;
      prev = s;
      ++reads;
    }
  });
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  const int N = 500;
  for (int i = 0; i < N; ++i) {
    ASSERT_TRUE(cs[i % 4]->send_text("load"));
    if (i % 50 == 49) {
      for (auto& c : cs)
        for (int k = 0; k < 50; ++k) ASSERT_TRUE(c->read_message());
    }
  }
  StatsSnapshot s;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.c.broadcast_deliveries == 4u * N; }, &s));
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

TEST(MetricsListener, ServesMetricsHealthAndReadinessOnItsOwnPort) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.metrics_port = 0;
  cfg.version = "9.8.7";
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  const int mport = st.server->metrics_port();
  ASSERT_GT(mport, 0);
  ASSERT_NE(mport, st.port());

  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  StatsSnapshot s;
  ASSERT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.websocket_connections == 3; }, &s));
  std::string r = http_get(uint16_t(mport), "/metrics");
  ASSERT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("\nchatws_connections{kind=\"websocket\"} 3\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\nchatws_build_info{version=\"9.8.7\"} 1\n"), std::string::npos) << r;
  EXPECT_NE(r.find("# TYPE chatws_handshakes_accepted_total counter\n"), std::string::npos);
  EXPECT_NE(r.find("chatws_loop_iteration_duration_seconds_bucket{le=\"+Inf\"}"), std::string::npos);

  r = http_get(uint16_t(mport), "/metrics", "HEAD");
  ASSERT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_EQ(r.find("chatws_connections"), std::string::npos) << "HEAD has no body";
  r = http_get(uint16_t(mport), "/healthz");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  r = http_get(uint16_t(mport), "/readyz");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("ready"), std::string::npos);
  r = http_get(uint16_t(mport), "/other");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;
  {
    WsClient ws{uint16_t(mport)};
    EXPECT_EQ(ws.handshake("/metrics"), 404);
  }
  // The main port does not serve metrics (426: it speaks only WebSocket).
  r = http_get(st.port(), "/metrics");
  EXPECT_EQ(r.rfind("HTTP/1.1 426", 0), 0u) << r;
  // Scrapes are not the main server's traffic.
  EXPECT_TRUE(wait_stats(*st.server, [&](auto& x) { return x.c.http_requests == 4; }, &s));
  EXPECT_EQ(s.c.connections_accepted, 4u);  // 3 WebSockets + the one plain GET above
}

TEST(MetricsListener, KeepAliveScrapesOnOneConnection) {
  BroadcastHandler h;
  ServerConfig cfg;
  cfg.metrics_port = 0;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  TcpClient c;
  ASSERT_TRUE(c.open(uint16_t(st.server->metrics_port())));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.write_all("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_http_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->rfind("HTTP/1.1 200", 0), 0u);
    EXPECT_EQ(r->find("Connection: close"), std::string::npos);
  }
}

TEST(MetricsListener, OffByDefaultAndABusyPortFailsCreate) {
  BroadcastHandler h;
  ServerThread off(ServerConfig{}, &h);
  ASSERT_TRUE(off.server);
  EXPECT_EQ(off.server->metrics_port(), -1);
  ServerConfig cfg;
  cfg.metrics_port = off.port();  // taken by the first server's main listener
  std::string err;
  int code = 0;
  auto s = Server::create(cfg, &h, &err, &code);
  EXPECT_FALSE(s);
  EXPECT_EQ(code, kESystem);
  EXPECT_NE(err.find("metrics listener"), std::string::npos) << err;
}

}  // namespace
