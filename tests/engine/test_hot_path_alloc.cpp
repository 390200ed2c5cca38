// The steady state of echo and broadcast allocates nothing on the loop
// thread: frames come from the pool, output queues keep their capacity,
// payloads are delivered in place. Counted with a replaced operator new
// (per thread, so the test's own client work does not count).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

namespace {
thread_local uint64_t t_allocs = 0;
}

void* operator new(std::size_t n) {
  ++t_allocs;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// Echoes (or broadcasts) and samples the loop thread's allocation count at
// two message numbers, after a warm-up that fills pools and capacities.
class CountingHandler : public ServerHandler {
 public:
  Server* server = nullptr;
  bool broadcast = false;
  uint64_t first_mark = 0, second_mark = 0;
  std::atomic<uint64_t> at_first{0}, at_second{0};
  std::atomic<int> opened{0};
  uint64_t seen = 0;

  void on_open(ConnId) override { ++opened; }
  void on_message(ConnId id, Opcode op, const char* d, size_t n) override {
    ++seen;
    if (seen == first_mark) at_first = t_allocs;
    if (seen == second_mark) at_second = t_allocs;
    if (broadcast) {
      server->broadcast(op, std::string_view(d, n), 0);
    } else {
      server->send(id, op, std::string_view(d, n));
    }
  }
};

TEST(HotPathAllocations, EchoAllocatesNothingInSteadyState) {
  CountingHandler h;
  h.first_mark = 2000;
  h.second_mark = 6000;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  const std::string payload(32, 'e');
  // 4 clients x 1500 rounds of 16 messages in flight each.
  for (int round = 0; round < 100; ++round) {
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k) ASSERT_TRUE(c->send_text(payload));
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k) {
        auto f = c->read_message();
        ASSERT_TRUE(f);
        ASSERT_EQ(f->payload, payload);
      }
  }
  ASSERT_GE(h.seen, h.second_mark);
  EXPECT_EQ(h.at_second - h.at_first, 0u)
      << "heap allocations on the loop thread over " << h.second_mark - h.first_mark << " echoes";
}

// With the metrics listener on and another thread reading the stats all
// along: counting and publishing the snapshot allocate nothing either.
TEST(HotPathAllocations, EchoWithMetricsOnAllocatesNothingInSteadyState) {
  CountingHandler h;
  h.first_mark = 2000;
  h.second_mark = 6000;
  ServerConfig cfg;
  cfg.metrics_port = 0;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  ASSERT_GT(st.server->metrics_port(), 0);
  h.server = st.server.get();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    StatsSnapshot s;
    while (!done.load()) st.server->stats(&s);
  });
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  const std::string payload(32, 'e');
  for (int round = 0; round < 100; ++round) {
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k) ASSERT_TRUE(c->send_text(payload));
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k) {
        auto f = c->read_message();
        ASSERT_TRUE(f);
        ASSERT_EQ(f->payload, payload);
      }
  }
  done = true;
  reader.join();
  ASSERT_GE(h.seen, h.second_mark);
  EXPECT_EQ(h.at_second - h.at_first, 0u)
      << "heap allocations on the loop thread over " << h.second_mark - h.first_mark
      << " echoes with metrics on";
}

// Bursts larger than a turn's message budget: the rest of each read is
// kept for the next turns in a buffer whose capacity is reused.
TEST(HotPathAllocations, BurstsOverTheTurnBudgetAllocateNothingInSteadyState) {
  CountingHandler h;
  h.first_mark = 2560;
  h.second_mark = 12800;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  const std::string payload(24, 'q');
  std::string burst;
  for (int k = 0; k < 256; ++k) burst += WsClient::masked_frame(Opcode::Text, payload);
  for (int round = 0; round < 60; ++round) {
    ASSERT_TRUE(c.write_all(burst));  // 256 messages in one write: four turns
    for (int k = 0; k < 256; ++k) {
      auto f = c.read_message();
      ASSERT_TRUE(f);
      ASSERT_EQ(f->payload, payload);
    }
  }
  ASSERT_GE(h.seen, h.second_mark);
  EXPECT_EQ(h.at_second - h.at_first, 0u)
      << "heap allocations on the loop thread over " << h.second_mark - h.first_mark
      << " echoes in bursts of 256";
}

TEST(HotPathAllocations, BroadcastAllocatesNothingInSteadyState) {
  CountingHandler h;
  h.broadcast = true;
  h.first_mark = 300;
  h.second_mark = 900;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  const std::string payload(64, 'b');
  // One publisher, window 8; every client reads every broadcast.
  for (int round = 0; round < 125; ++round) {
    for (int k = 0; k < 8; ++k) ASSERT_TRUE(cs[0]->send_text(payload));
    for (auto& c : cs)
      for (int k = 0; k < 8; ++k) {
        auto f = c->read_message();
        ASSERT_TRUE(f);
        ASSERT_EQ(f->payload, payload);
      }
  }
  ASSERT_GE(h.seen, h.second_mark);
  EXPECT_EQ(h.at_second - h.at_first, 0u)
      << "heap allocations on the loop thread over " << h.second_mark - h.first_mark
      << " broadcasts to 20 connections";
}

}  // namespace
