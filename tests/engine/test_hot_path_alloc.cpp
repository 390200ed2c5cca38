// The steady state of echo and broadcast allocates nothing on the loop
// thread: frames come from the pool, output queues keep their capacity,
// payloads are delivered in place. Counted with a replaced operator new
// (per thread, so the test's own client work does not count).
//
// What a correct loop may still allocate after the warm-up is the growth
// of a high-water mark (a list or a kept-input buffer meeting a bigger
// burst than before, which depends on how the kernel splits the client's
// writes): finitely many times, each growth at least doubling. So the
// count is taken in windows, each of at least a given number of messages
// and 300 ms (every window holds a timer tick, whose work is part of the
// steady state), until two windows in a row allocate nothing: a correct
// build gets there within a few windows; an allocation per message, per
// burst or per tick never does. The same holds under ASan (its allocator
// sits below operator new, which it does not call on its own).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
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
  std::atomic<int> opened{0};
  std::atomic<uint64_t> seen{0};
  std::atomic<uint64_t> allocs{0};  // the loop thread's count after its latest message

  void on_open(ConnId) override { ++opened; }
  void on_message(ConnId id, Opcode op, const char* d, size_t n) override {
    if (broadcast) {
      server->broadcast(op, std::string_view(d, n), 0);
    } else {
      server->send(id, op, std::string_view(d, n));
    }
    allocs.store(t_allocs, std::memory_order_relaxed);
    seen.fetch_add(1, std::memory_order_release);
  }
};

// Runs `round` (false: a client failed) for `warmup` messages, then in
// windows (see the top) until two in a row allocate nothing, at most
// `max_windows`. Returns each window's count; empty if a round failed.
std::vector<uint64_t> windows_until_quiet(CountingHandler& h, const std::function<bool()>& round,
                                          uint64_t warmup, uint64_t window_messages,
                                          int max_windows = 30) {
  using Clock = std::chrono::steady_clock;
  std::vector<uint64_t> counts;
  while (h.seen.load(std::memory_order_acquire) < warmup)
    if (!round()) return {};
  for (int w = 0; w < max_windows; ++w) {
    // Every round's replies have been read: the loop has handled every
    // message sent, so `allocs` is its count at a point between rounds.
    const uint64_t a0 = h.allocs.load(std::memory_order_relaxed);
    const uint64_t m0 = h.seen.load(std::memory_order_acquire);
    const auto t0 = Clock::now();
    while (h.seen.load(std::memory_order_acquire) - m0 < window_messages ||
           Clock::now() - t0 < std::chrono::milliseconds(300))
      if (!round()) return {};
    counts.push_back(h.allocs.load(std::memory_order_relaxed) - a0);
    const size_t k = counts.size();
    if (k >= 2 && counts[k - 1] == 0 && counts[k - 2] == 0) break;
  }
  return counts;
}

bool quiet(const std::vector<uint64_t>& c) {
  return c.size() >= 2 && c[c.size() - 1] == 0 && c[c.size() - 2] == 0;
}

std::string describe(const std::vector<uint64_t>& c) {
  std::string s;
  for (uint64_t n : c) s += (s.empty() ? "" : ", ") + std::to_string(n);
  return "allocations per window: [" + s + "]";
}

// 4 echo clients, rounds of 16 messages in flight each.
std::function<bool()> echo_rounds(std::vector<std::unique_ptr<WsClient>>& cs, const std::string& payload) {
  return [&cs, &payload] {
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k)
        if (!c->send_text(payload)) return false;
    for (auto& c : cs)
      for (int k = 0; k < 16; ++k) {
        auto f = c->read_message();
        if (!f || f->payload != payload) return false;
      }
    return true;
  };
}

TEST(HotPathAllocations, EchoAllocatesNothingInSteadyState) {
  CountingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  const std::string payload(32, 'e');
  const auto round = echo_rounds(cs, payload);
  const auto counts = windows_until_quiet(h, round, 2000, 2000);
  ASSERT_FALSE(counts.empty()) << "a client failed";
  EXPECT_TRUE(quiet(counts)) << "heap allocations on the loop thread in echo windows of 2000 messages: "
                             << describe(counts);
}

// With the metrics listener on and another thread reading the stats all
// along: counting and publishing the snapshot allocate nothing either.
TEST(HotPathAllocations, EchoWithMetricsOnAllocatesNothingInSteadyState) {
  CountingHandler h;
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
  const auto round = echo_rounds(cs, payload);
  const auto counts = windows_until_quiet(h, round, 2000, 2000);
  done = true;
  reader.join();
  ASSERT_FALSE(counts.empty()) << "a client failed";
  EXPECT_TRUE(quiet(counts)) << "heap allocations on the loop thread in echo windows of 2000 messages "
                                "with metrics on: "
                             << describe(counts);
}

// Bursts larger than a turn's message budget: the rest of each read is
// kept for the next turns in a buffer whose capacity is reused.
TEST(HotPathAllocations, BurstsOverTheTurnBudgetAllocateNothingInSteadyState) {
  CountingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  const std::string payload(24, 'q');
  std::string burst;
  for (int k = 0; k < 256; ++k) burst += WsClient::masked_frame(Opcode::Text, payload);
  auto round = [&] {
    if (!c.write_all(burst)) return false;  // 256 messages in one write: four turns
    for (int k = 0; k < 256; ++k) {
      auto f = c.read_message();
      if (!f || f->payload != payload) return false;
    }
    return true;
  };
  const auto counts = windows_until_quiet(h, round, 2560, 2560);
  ASSERT_FALSE(counts.empty()) << "the client failed";
  EXPECT_TRUE(quiet(counts)) << "heap allocations on the loop thread in windows of 2560 echoes in bursts of 256: "
                             << describe(counts);
}

TEST(HotPathAllocations, BroadcastAllocatesNothingInSteadyState) {
  CountingHandler h;
  h.broadcast = true;
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
  auto round = [&] {
    for (int k = 0; k < 8; ++k)
      if (!cs[0]->send_text(payload)) return false;
    for (auto& c : cs)
      for (int k = 0; k < 8; ++k) {
        auto f = c->read_message();
        if (!f || f->payload != payload) return false;
      }
    return true;
  };
  const auto counts = windows_until_quiet(h, round, 300, 300);
  ASSERT_FALSE(counts.empty()) << "a client failed";
  EXPECT_TRUE(quiet(counts)) << "heap allocations on the loop thread in windows of 300 broadcasts to 20 connections: "
                             << describe(counts);
}

}  // namespace
