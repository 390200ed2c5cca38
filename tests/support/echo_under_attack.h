// The fixture of the attack tests: an in-process echo server, a
// well-behaved client (the bystander) connected throughout that must keep
// getting its echoes during and after an attack, and the memory baseline
// the attack's growth is measured from (support/process_memory.h).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "support/process_memory.h"
#include "support/test_server.h"
#include "support/ws_client.h"

namespace chatws::test {

class EchoUnderAttack : public ::testing::Test {
 public:
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;
  std::unique_ptr<WsClient> bystander;  // a well-behaved client, open throughout
  size_t rss_before = 0;

  // An echo server with `cfg`, a bystander connected, and the memory baseline.
  void start(ServerConfig cfg) {
    cfg.drain_timeout_ms = 300;  // teardown: hostile clients never answer the 1001
    handler.on_msg = [this](ConnId id, protocol::Opcode op, const char* d, size_t n) {
      handler.server->send(id, op, std::string_view(d, n));
    };
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
    bystander = std::make_unique<WsClient>(st->port());
    ASSERT_EQ(bystander->handshake(), 101);
    expect_echo(*bystander, "before");
    rss_before = rss_bytes();
  }

  static void expect_echo(WsClient& c, const std::string& text) {
    ASSERT_TRUE(c.send_text(text));
    auto f = c.read_message();
    ASSERT_TRUE(f) << "no echo of " << text;
    EXPECT_EQ(f->op, protocol::Opcode::Text);
    EXPECT_EQ(f->payload, text);
  }

  // The bystander still gets its echoes, and a new client can connect.
  void expect_serving(const std::string& when) {
    expect_echo(*bystander, "bystander " + when);
    WsClient fresh(st->port());
    ASSERT_EQ(fresh.handshake(), 101) << when;
    expect_echo(fresh, "fresh " + when);
  }

  void expect_memory_back(size_t margin, const char* what) {
    if (!kMeasureMemory) return;
    const size_t after = rss_bytes();
    EXPECT_LT(after, rss_before + margin)
        << what << ": RSS " << rss_before / kMiB << " MiB before, " << after / kMiB << " MiB after";
  }

  // Waits for the server to report a close with `code` (any connection).
  bool wait_close(uint16_t code, int timeout_ms = 5000) {
    return handler.wait([&](const std::vector<Event>& ev) {
      for (auto& e : ev)
        if (e.kind == Event::Close && e.code == code) return true;
      return false;
    }, timeout_ms);
  }

  // Reads frames until a close frame; returns its code (0 if none came).
  static uint16_t read_close(WsClient& c, int timeout_ms = 5000) {
    for (int i = 0; i < 1000000; ++i) {
      auto f = c.read_frame(timeout_ms);
      if (!f) return 0;
      if (f->op == protocol::Opcode::Close) return f->close_code();
    }
    return 0;
  }
};

}  // namespace chatws::test
