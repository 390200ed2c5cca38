// The server-wide budget of buffered partial input (max_buffered_input):
// many connections each sending most of a large message and never the rest
// hold at most the budget between them; the connection whose frame would
// exceed it is closed with 1013 before any of that frame is stored; others
// are served throughout, and what a connection held comes back when it goes.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "support/process_memory.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {


std::unique_ptr<WsClient> client(uint16_t port) {
  auto c = std::make_unique<WsClient>(port);
  EXPECT_EQ(c->handshake(), 101);
  timeval tv{5, 0};  // a write the server stopped reading fails instead of hanging
  setsockopt(c->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return c;
}

void expect_echo(WsClient& c, const std::string& payload) {
  ASSERT_TRUE(c.send_binary(payload));
  auto f = c.read_message(10000);
  ASSERT_TRUE(f) << c.error();
  EXPECT_EQ(f->op, Opcode::Binary);
  EXPECT_EQ(f->payload.size(), payload.size());
}

TEST(PartialInputBudget, UnfinishedMessagesFromManyConnectionsStayWithinTheBudget) {
  RecordingHandler h;
  h.on_msg = [&h](ConnId id, Opcode op, const char* d, size_t n) {
    h.server->send(id, op, std::string_view(d, n));
  };
  ServerConfig cfg;
  cfg.max_message_size = 4 * kMiB;
  cfg.max_output_buffer = 8 * kMiB;  // the echo of a maximal message fits
  cfg.max_buffered_input = 8 * kMiB;
  cfg.drain_timeout_ms = 300;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  auto bystander = client(st.port());
  expect_echo(*bystander, "before");
  const size_t before = rss_bytes();

  // 30 connections, one after the other, each announce 3 MiB and send all
  // but the last byte: the first two fit the 8 MiB budget (6 MiB), every
  // later one would take it over.
  const std::string attack = WsClient::partial_frame(Opcode::Binary, 3 * kMiB, 3 * kMiB - 1);
  std::vector<std::unique_ptr<WsClient>> holders, refused;
  for (int i = 0; i < 30; ++i) {
    auto a = client(st.port());
    const bool sent = a->write_all(attack);
    if (i < 2) {
      ASSERT_TRUE(sent) << a->error();
      // A round trip after it: its frame is being held before the next
      // connection writes (epoll reports sockets in the order they became
      // ready).
      expect_echo(*bystander, "after holder " + std::to_string(i));
      holders.push_back(std::move(a));
    } else {
      EXPECT_EQ(a->read_close_code(), 1013) << "connection " << i;
      refused.push_back(std::move(a));
    }
  }
  // The holders are still open and waiting: nothing was closed under them.
  expect_echo(*bystander, "during");
  EXPECT_EQ(st.server->connection_count(), 1u + holders.size());
  if (kMeasureMemory) {
    const size_t after = rss_bytes();
    // 30 x 3 MiB = 90 MiB without the budget; the budget is 8 MiB.
    EXPECT_LT(after, before + 16 * kMiB)
        << "RSS " << before / kMiB << " MiB before, " << after / kMiB << " MiB after";
  }
  // With 6 of 8 MiB held, a maximal message (4 MiB) does not fit either...
  {
    auto big = client(st.port());
    ASSERT_TRUE(big->write_all(WsClient::partial_frame(Opcode::Binary, 4 * kMiB, 1000)));
    EXPECT_EQ(big->read_close_code(), 1013);
  }
  // ...until the holders leave and give their share back.
  holders.clear();
  ASSERT_TRUE(h.wait([](const std::vector<Event>& ev) {
    size_t n = 0;
    for (auto& e : ev) n += e.kind == Event::Close && e.code == 1006;
    return n >= 2;
  }));
  expect_echo(*bystander, std::string(4 * kMiB, 'm'));
}

TEST(PartialInputBudget, DefaultIsFourMaximalMessages) {
  RecordingHandler h;
  h.on_msg = [&h](ConnId id, Opcode op, const char* d, size_t n) {
    h.server->send(id, op, std::string_view(d, n));
  };
  ServerConfig cfg;
  cfg.max_message_size = 1 * kMiB;  // budget: 4 MiB
  cfg.drain_timeout_ms = 300;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  auto bystander = client(st.port());
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(client(st.port()));
    ASSERT_TRUE(cs.back()->write_all(WsClient::partial_frame(Opcode::Binary, kMiB, 100)));
    expect_echo(*bystander, "after " + std::to_string(i));  // held before the next one writes
  }
  auto fifth = client(st.port());
  ASSERT_TRUE(fifth->write_all(WsClient::partial_frame(Opcode::Binary, kMiB, 100)));
  EXPECT_EQ(fifth->read_close_code(), 1013);
  EXPECT_EQ(st.server->connection_count(), 5u);  // the four and the bystander
}

}  // namespace
