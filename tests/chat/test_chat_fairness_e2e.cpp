// One client flooding a room does not starve the others: while a flooder
// posts a fixed burst of messages into /rooms/a as fast as its socket takes
// them, a probe in /rooms/b keeps completing round trips (send, see its own
// message delivered). The measure is a count, not a time: how many round
// trips the probe completes while the server works through the burst.
// Before every connection's work per iteration was bounded, the burst was
// handled in a few long iterations and the probe got through a handful; the
// real rates and latencies are measured by bench/fairness.py.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "chat_harness.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

using Clock = std::chrono::steady_clock;

bool join(WsClient& c, uint16_t port, const std::string& path) {
  if (!c.connect(port, path, "chatws.v1")) return false;
  return c.read_text().find("\"type\":\"hello\"") != std::string::npos;
}

// Sends one message and reads until it comes back; false on anything else.
bool round_trip(WsClient& c, int i) {
  const std::string text = "probe " + std::to_string(i);
  if (!c.send_text("{\"user\":\"probe\",\"text\":\"" + text + "\"}")) return false;
  const std::string f = c.read_text(10000);
  return f.find("\"text\":\"" + text + "\"") != std::string::npos;
}

TEST(ChatFairness, ProbeInAnotherRoomKeepsGoingWhileAFloodIsHandled) {
  ChatHarness h;
  ASSERT_TRUE(h.start(chat::ChatConfig{})) << h.error();
  WsClient flooder, probe;
  ASSERT_TRUE(join(flooder, h.port(), "/rooms/a"));
  ASSERT_TRUE(join(probe, h.port(), "/rooms/b"));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(round_trip(probe, -1 - i));  // warm

  constexpr int kFlood = 40000;
  std::string burst;
  for (int i = 0; i < kFlood; ++i)
    burst += WsClient::masked_frame(protocol::Opcode::Text,
                                    "{\"user\":\"flood\",\"text\":\"f" + std::to_string(i) + "\"}");
  // The flooder's writer and the reader of its own deliveries (every member
  // of the room gets each message, the sender included), on threads of
  // their own over the raw socket.
  std::atomic<bool> flood_done{false}, flood_started{false};
  std::atomic<int> delivered{0};
  std::thread reader([&] {
    std::string buf;
    char tmp[65536];
    const std::string last = "\"text\":\"f" + std::to_string(kFlood - 1) + "\"";
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      const ssize_t n = ::recv(flooder.fd(), tmp, sizeof tmp, 0);
      if (n <= 0) break;
      flood_started = true;
      // Only the new bytes and enough before them to hold a split match.
      const size_t from = buf.size() > last.size() ? buf.size() - last.size() : 0;
      buf.append(tmp, size_t(n));
      if (buf.find(last, from) != std::string::npos) {
        delivered = kFlood;
        break;
      }
      if (buf.size() > 4096) buf.erase(0, buf.size() - last.size());
    }
    flood_done = true;
  });
  timeval tv{30, 0};
  setsockopt(flooder.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::thread writer([&] {
    size_t off = 0;
    while (off < burst.size()) {
      const ssize_t n = ::send(flooder.fd(), burst.data() + off, burst.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += size_t(n);
    }
  });

  // Once the server is handling the flood (it is behind: the burst is far
  // more than it handles in a turn), the probe goes.
  const auto start_by = Clock::now() + std::chrono::seconds(10);
  while (!flood_started && Clock::now() < start_by) std::this_thread::yield();
  int round_trips = 0;
  bool ok = true;
  while (!flood_done && ok) ok = round_trip(probe, round_trips++);
  writer.join();
  reader.join();
  ASSERT_TRUE(ok) << "the probe's round trip " << round_trips << " failed";
  ASSERT_EQ(delivered.load(), kFlood) << "the flood did not go through";
  std::printf("[ info ] %d probe round trips while %d flood messages were handled\n", round_trips, kFlood);
  // 40,000 messages at 64 per turn are at least 625 iterations, each of
  // which may serve the probe; allow for a loaded machine.
  EXPECT_GE(round_trips, 60);
}

}  // namespace
}  // namespace chatws::test
