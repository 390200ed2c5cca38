// Hostile clients against what the server sends, over real sockets on
// 127.0.0.1: a client that never reads from its first byte (upgrade and
// frames in one write). Each must leave the
// server's memory and descriptors within a stated bound while a
// well-behaved client keeps being served, and end with the documented
// outcome: every response delivered in order, or a close.
//
// The server runs in this process, so its memory is this process's RSS
// (see support/process_memory.h; not checked under sanitizers) and its
// descriptors are this process's.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/descriptors.h"
#include "support/process_memory.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

namespace fs = std::filesystem;

struct HostileOutput : ::testing::Test {
  fs::path root;
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;
  std::unique_ptr<WsClient> bystander;  // a well-behaved client, open throughout
  size_t rss_before = 0;
  size_t fds_before = 0;

  void SetUp() override {
    char tmpl[] = "/tmp/chatws-hostile-out-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root = tmpl;
  }
  void TearDown() override {
    bystander.reset();
    st.reset();
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  // An echo server with `cfg` serving `root`, a bystander connected, and
  // the memory and descriptor baselines.
  void start(ServerConfig cfg) {
    cfg.static_dir = root.string();
    cfg.drain_timeout_ms = 300;  // teardown: hostile clients never answer the 1001
    handler.on_msg = [this](ConnId id, Opcode op, const char* d, size_t n) {
      handler.server->send(id, op, std::string_view(d, n));
    };
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
    bystander = std::make_unique<WsClient>(st->port());
    ASSERT_EQ(bystander->handshake(), 101);
    expect_echo(*bystander, "before");
    rss_before = rss_bytes();
    fds_before = open_descriptors();
  }

  static void expect_echo(WsClient& c, const std::string& text) {
    ASSERT_TRUE(c.send_text(text));
    auto f = c.read_message();
    ASSERT_TRUE(f) << "no echo of " << text;
    EXPECT_EQ(f->payload, text);
  }

  // The bystander still gets its echoes, and a new client is served.
  void expect_serving(const std::string& when) {
    expect_echo(*bystander, "bystander " + when);
    WsClient fresh(st->port());
    ASSERT_EQ(fresh.handshake(), 101) << when;
    expect_echo(fresh, "fresh " + when);
  }

  bool closed_with(uint16_t code, int timeout_ms) {
    return handler.wait([&](const std::vector<Event>& ev) {
      return std::any_of(ev.begin(), ev.end(),
                         [&](const Event& e) { return e.kind == Event::Close && e.code == code; });
    }, timeout_ms);
  }

  size_t rss_growth() const {
    const size_t now = rss_bytes();
    return now > rss_before ? now - rss_before : 0;
  }

  // Once the attackers are gone, the server holds no descriptor for them.
  void expect_descriptors_back(const char* what) {
    EXPECT_TRUE(wait_until([&] { return open_descriptors() <= fds_before; }, 5000))
        << what << ": " << open_descriptors() << " descriptors open, " << fds_before << " before";
  }

  static std::string get(const std::string& target) { return "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"; }
};

// A client that never reads, from its first byte: the upgrade and a stream
// of frames in one write, then more frames. Its greeting (the 101) is exempt
// from the output cap once, by its own size; its echoes are not: it is
// closed 1008 at the cap, and what it was sent stays a well-formed stream
// (the 101, echoes, the close frame).
TEST_F(HostileOutput, NeverReadingFromTheFirstByteIsClosedAtTheCap) {
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  cfg.close_timeout_ms = 2000;
  start(cfg);
  WsClient c(st->port());  // its handshake() is never called: all in one write
  c.set_receive_buffer(4096);
  timeval tv{5, 0};
  setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const std::string payload(64 * 1024, 'x');
  std::string batch;
  for (int i = 0; i < 16; ++i) batch += WsClient::masked_frame(Opcode::Binary, payload);
  const std::string upgrade =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ASSERT_TRUE(c.write_all(upgrade + batch));
  size_t peak = 0;
  bool closed = false;
  // At most 128 MiB of frames; the cap (1 MiB) is reached after the first.
  for (int round = 0; round < 128 && !closed; ++round) {
    if (!c.write_all(batch)) break;  // the server stopped reading
    closed = closed_with(1008, 0);
    if (kMeasureMemory && round % 8 == 0) peak = std::max(peak, rss_growth());
    if (round == 4) expect_echo(*bystander, "during the flood");
  }
  EXPECT_TRUE(closed_with(1008, 5000)) << "never closed as too slow";
  if (kMeasureMemory) {
    EXPECT_LT(peak, 16 * kMiB) << "memory grew with the flood";
  }
  // What it got: the 101, then whole echoes, then the close frame.
  auto head = c.read_http_response();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->substr(0, 12), "HTTP/1.1 101");
  uint16_t code = 0;
  for (int i = 0; i < 1000 && code == 0; ++i) {
    auto f = c.read_frame(3000);
    ASSERT_TRUE(f) << "the stream broke after " << i << " frames: " << c.error();
    if (f->op == Opcode::Close) code = f->close_code();
    else EXPECT_EQ(f->payload.size(), payload.size());
  }
  EXPECT_EQ(code, 1008);
  c.close();
  expect_serving("after the never-reader");
  expect_descriptors_back("never-reader");
}

}  // namespace
