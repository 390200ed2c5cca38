// Accepting when the process has no descriptor left: the listener must not
// spin, and accepting resumes once descriptors come back. The server is
// driven with Server::poll() from the test thread, so nothing is accepted
// before the test has taken the descriptors away.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using Clock = std::chrono::steady_clock;

namespace {

struct IterationCounter : RecordingHandler {
  uint64_t iterations = 0;  // loop thread = this thread (poll())
  void on_iteration_end() override { ++iterations; }
};

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

// Lowers RLIMIT_NOFILE for the scope: with a soft limit of 0 no descriptor
// can be created at all, so the server cannot accept, nor shed (its spare
// descriptor, once given up, cannot be reopened).
struct NoDescriptors {
  rlimit old{};
  bool ok = false;
  NoDescriptors() {
    getrlimit(RLIMIT_NOFILE, &old);
    rlimit none = old;
    none.rlim_cur = 0;
    ok = setrlimit(RLIMIT_NOFILE, &none) == 0;
  }
  void restore() {
    if (ok) setrlimit(RLIMIT_NOFILE, &old);
    ok = false;
  }
  ~NoDescriptors() { restore(); }
};

TEST(AcceptExhaustion, ListenerDoesNotSpinWhenItCannotShedAndResumesAfter) {
  IterationCounter h;
  std::string err;
  int code = 0;
  auto server = Server::create(ServerConfig{}, &h, &err, &code);
  ASSERT_TRUE(server) << err;
  h.server = server.get();

  // Connected (the kernel completes the handshake into the backlog) and the
  // upgrade request written, all before the descriptors run out.
  WsClient c;
  ASSERT_TRUE(c.open(server->port()));
  const std::string upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " + std::string(WsClient::kKey) +
                              "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ASSERT_TRUE(c.write_all(upgrade));

  NoDescriptors none;
  ASSERT_TRUE(none.ok);
  // Observe the loop for a fixed window while the connection stays pending.
  // A level-triggered listener that keeps failing makes every poll() return
  // at once: tens of thousands of iterations; paused, it wakes only for its
  // retries (about every 100 ms) and timer ticks.
  const auto window = std::chrono::milliseconds(400);
  const double cpu0 = process_cpu_ms();
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < window) ASSERT_GE(server->poll(50), 0);
  const double cpu_ms = process_cpu_ms() - cpu0;
  const uint64_t spun = h.iterations;
  EXPECT_LE(spun, 40u) << "loop iterations in " << window.count() << " ms without descriptors (CPU "
                       << cpu_ms << " ms)";
  EXPECT_EQ(h.count(Event::Open), 0u);
  none.restore();

  // Descriptors are back: the pending connection is accepted and upgraded.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (h.count(Event::Open) == 0 && Clock::now() < deadline) ASSERT_GE(server->poll(50), 0);
  ASSERT_EQ(h.count(Event::Open), 1u) << "not accepted after descriptors came back";
  auto resp = c.read_http_response(2000);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->rfind("HTTP/1.1 101", 0), 0u) << *resp;
  std::printf("[ info ] %llu iterations, %.1f ms CPU in %lld ms without descriptors\n",
              static_cast<unsigned long long>(spun), cpu_ms, static_cast<long long>(window.count()));
}

}  // namespace
