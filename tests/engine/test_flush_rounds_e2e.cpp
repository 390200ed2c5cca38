// A long flush list (a fan-out to many connections) is written over a few
// loop iterations, new input being read in between, and a connection whose
// queue would pass max_output_buffer before its turn is written through at
// once instead of being called slow. Real sockets on 127.0.0.1; the loop is
// driven one iteration at a time with Server::poll() so each step is exact.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// 64 connections: the list is written in 4 iterations of 16 (the engine's
// kFlushSteps and kFlushMinStep).
constexpr int kClients = 64;
constexpr int kStep = 16;

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A server driven by the test thread, and clients connected to it.
struct Stepped {
  RecordingHandler h;
  std::unique_ptr<Server> server;
  std::vector<std::unique_ptr<WsClient>> clients;

  explicit Stepped(ServerConfig cfg = {}) {
    std::string err;
    int code = 0;
    server = Server::create(cfg, &h, &err, &code);
    EXPECT_TRUE(server) << err;
    h.server = server.get();
  }

  // Connects n clients; a helper thread runs the loop meanwhile (the
  // handshakes need it), then hands the loop back to the test thread.
  void connect(int n) {
    std::atomic<bool> done{false};
    std::thread loop([&] {
      while (!done.load()) server->poll(10);
    });
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<WsClient>(server->port()));
      EXPECT_EQ(clients.back()->handshake(), 101);
    }
    EXPECT_TRUE(h.wait_count(Event::Open, size_t(n)));
    done.store(true);
    loop.join();
    // An iteration on this thread makes it the loop's owner: broadcast()
    // from it then runs at once and returns the receiver count.
    EXPECT_GE(server->poll(0), 0);
  }

  // Clients with unread bytes, once at least `at_least` have some (the
  // kernel hands written bytes over at once on loopback; the wait only
  // covers a deferred softirq). More than `at_least` means the server wrote
  // to more connections than expected.
  int with_data(int at_least) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (;;) {
      std::vector<pollfd> waiting;
      int n = 0;
      for (auto& c : clients) {
        if (!c->ok()) continue;
        if (readable(c->fd(), 0)) ++n;
        else waiting.push_back({c->fd(), POLLIN, 0});
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (n >= at_least || waiting.empty() || left.count() <= 0) return n;
      ::poll(waiting.data(), waiting.size(), int(left.count()));  // until one more has data
    }
  }
};

TEST(FlushRounds, FanOutIsWrittenOverSeveralIterationsWithInputReadBetween) {
  Stepped s;
  s.connect(kClients);
  // The host relays every message it receives to everyone.
  s.h.on_msg = [&](ConnId, Opcode op, const char* d, size_t n) { s.server->broadcast(op, {d, n}, 0); };

  ASSERT_EQ(s.server->broadcast(Opcode::Text, "first", 0), kClients);
  ASSERT_GE(s.server->poll(0), 0);
  ASSERT_EQ(s.with_data(kStep), kStep);  // one step of the round, not all 64

  // A client still waiting for "first" speaks: the next iteration reads it
  // before the round is over.
  WsClient* late = nullptr;
  for (auto& c : s.clients)
    if (!readable(c->fd(), 0)) late = c.get();
  ASSERT_NE(late, nullptr);
  ASSERT_TRUE(late->send_text("second"));
  int polls = 0;
  while (s.h.count(Event::Message) == 0 && polls < 200) {
    ASSERT_GE(s.server->poll(10), 0);
    ++polls;
  }
  ASSERT_EQ(s.h.count(Event::Message), 1u);
  // It was read mid-round: one more step of "first" per iteration, and
  // some clients still without it (normally polls == 1: 32 of 64).
  const int out = (1 + polls) * kStep;
  ASSERT_LT(out, kClients) << polls << " iterations to read the message";
  EXPECT_EQ(s.with_data(out), out);

  // The loop keeps going without waiting until everyone has both, in order.
  for (int i = 0; i < 20; ++i) ASSERT_GE(s.server->poll(0), 0);
  for (auto& c : s.clients) {
    auto a = c->read_message(2000);
    ASSERT_TRUE(a) << c->error();
    EXPECT_EQ(a->payload, "first");
    auto b = c->read_message(2000);
    ASSERT_TRUE(b) << c->error();
    EXPECT_EQ(b->payload, "second");
  }
  EXPECT_EQ(s.h.count(Event::Close), 0u);
}

// Past 4 x kFlushMinStep the step grows with the list: about a quarter each.
TEST(FlushRounds, ALongerListIsWrittenInFourSteps) {
  constexpr int kMany = 100;
  Stepped s;
  s.connect(kMany);
  ASSERT_EQ(s.server->broadcast(Opcode::Text, "to all", 0), kMany);
  for (int step = 1; step <= 4; ++step) {
    ASSERT_GE(s.server->poll(0), 0);
    ASSERT_EQ(s.with_data(25 * step), 25 * step) << "after iteration " << step;
  }
}

TEST(FlushRounds, ConnectionsThatDieWhileWaitingTheirTurnAreDroppedFromTheList) {
  Stepped s;
  s.connect(kClients);
  ASSERT_EQ(s.server->broadcast(Opcode::Text, "to all", 0), kClients);
  ASSERT_GE(s.server->poll(0), 0);
  ASSERT_EQ(s.with_data(kStep), kStep);

  // Reset half of those still waiting (RST, not FIN: the next read fails).
  int reset = 0;
  for (auto& c : s.clients) {
    if (reset == (kClients - kStep) / 2 || readable(c->fd(), 0)) continue;
    linger lg{1, 0};
    ::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    c->close();
    ++reset;
  }
  for (int i = 0; i < 200 && s.h.count(Event::Close) < size_t(reset); ++i) ASSERT_GE(s.server->poll(10), 0);
  ASSERT_EQ(s.h.count(Event::Close), size_t(reset));
  for (int i = 0; i < 20; ++i) ASSERT_GE(s.server->poll(0), 0);

  // Every survivor gets the message exactly once; the loop is idle again.
  for (auto& c : s.clients) {
    if (!c->ok()) continue;
    auto m = c->read_message(2000);
    ASSERT_TRUE(m) << c->error();
    EXPECT_EQ(m->payload, "to all");
    EXPECT_FALSE(readable(c->fd(), 0));
  }
  EXPECT_EQ(s.server->connection_count(), size_t(kClients - reset));
}

// A host with its own event loop calls poll() only when fd() is readable:
// after an iteration that left part of the list unwritten, fd() must be
// readable at once, not at the next timer tick.
TEST(FlushRounds, HostLoopWaitingOnTheFdIsWokenForTheRestOfTheList) {
  Stepped s;
  s.connect(kClients);
  ASSERT_EQ(s.server->broadcast(Opcode::Text, "to all", 0), kClients);
  int iterations = 0;
  for (;;) {
    ASSERT_GE(s.server->poll(0), 0);
    ++iterations;
    if (s.with_data(kStep * iterations < kClients ? kStep * iterations : kClients) == kClients) break;
    ASSERT_LT(iterations, 10);
    ASSERT_TRUE(readable(s.server->fd(), 0)) << "after iteration " << iterations;
  }
  EXPECT_EQ(iterations, kClients / kStep);
}

// The same host sending between iterations (e.g. asyncio code calling
// broadcast() outside a handler): the output is queued directly, and fd()
// must turn readable so the host runs the iteration that writes it.
TEST(FlushRounds, OutputQueuedBetweenIterationsMakesTheFdReadable) {
  Stepped s;
  s.connect(2);
  ASSERT_GE(s.server->poll(0), 0);  // takes any due timer event now
  ASSERT_EQ(s.server->broadcast(Opcode::Text, "from the host", 0), 2);
  ASSERT_TRUE(readable(s.server->fd(), 0));
  ASSERT_GE(s.server->poll(0), 0);
  for (auto& c : s.clients) {
    auto m = c->read_message(2000);
    ASSERT_TRUE(m) << c->error();
    EXPECT_EQ(m->payload, "from the host");
  }
}

// A burst to one client that reads normally, larger than its output cap,
// queued within one iteration: it is written through to the kernel, not
// taken for a slow reader (which would close it 1008 or drop messages).
TEST(FlushRounds, BurstOverTheOutputCapToAReadingClientIsWrittenThrough) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.max_output_buffer = 64 * 1024;
  // The kernel's autotuning: the burst is written through to a send buffer
  // that grows with it. With the default SO_SNDBUF (96 KiB) the kernel holds
  // about 200 KB and a burst beyond that plus the cap is a slow reader's by
  // design (the bound on a never-reading client's kernel memory).
  cfg.socket_send_buffer = 0;
  constexpr int kMessages = 100;  // 100 x 4 KiB: six times the cap
  std::vector<int> results;
  std::mutex mu;
  h.on_msg = [&](ConnId id, Opcode, const char* d, size_t n) {
    if (std::string_view(d, n) != "burst") return;
    const std::string chunk(4096, 'b');
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < kMessages; ++i) results.push_back(h.server->send(id, Opcode::Binary, chunk));
  };
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(c.send_text("burst"));
  for (int i = 0; i < kMessages; ++i) {
    auto m = c.read_message(5000);
    ASSERT_TRUE(m) << "message " << i << ": " << c.error();
    ASSERT_EQ(m->op, Opcode::Binary) << "message " << i;
    ASSERT_EQ(m->payload.size(), 4096u);
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(results.size(), size_t(kMessages));
  for (int r : results) EXPECT_GE(r, 0) << "a send failed: " << r;
  EXPECT_EQ(h.count(Event::Close), 0u);
}

}  // namespace
