// Every ready connection gets its turn: the work done for one connection in
// one loop iteration is bounded (one read, a bounded number of messages), so
// a client that floods cannot hold the loop while others wait. Driven with
// Server::poll() from the test thread, so iterations are counted exactly.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/server_impl.h"  // kMessagesPerTurn
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;
using Clock = std::chrono::steady_clock;

namespace {

// Records, per iteration, how many messages each connection had handled,
// and every payload in order per connection.
struct TurnCounter : ServerHandler {
  std::map<ConnId, uint64_t> in_iteration;
  std::map<ConnId, uint64_t> most_in_one_iteration;
  std::map<ConnId, uint64_t> total;
  std::map<ConnId, std::vector<std::string>> payloads;
  bool keep_payloads = false;
  uint64_t iterations = 0;
  // The other connections' totals when `watched` had its first message.
  ConnId watched = 0;
  std::map<ConnId, uint64_t> at_watched;

  void on_message(ConnId id, Opcode, const char* d, size_t n) override {
    if (id == watched && total[id] == 0) at_watched = total;
    ++in_iteration[id];
    ++total[id];
    if (keep_payloads) payloads[id].emplace_back(d, n);
  }
  // With `record`: each iteration's messages per connection (those with any).
  bool record = false;
  std::vector<std::map<ConnId, uint64_t>> history;

  void on_iteration_end() override {
    ++iterations;
    if (record) {
      history.emplace_back();
      for (auto& [id, n] : in_iteration)
        if (n) history.back()[id] = n;
    }
    for (auto& [id, n] : in_iteration) {
      auto& most = most_in_one_iteration[id];
      if (n > most) most = n;
      n = 0;
    }
  }
};

struct Driven {
  TurnCounter h;
  std::unique_ptr<Server> server;
  explicit Driven(ServerConfig cfg = {}) {
    std::string err;
    int code = 0;
    server = Server::create(cfg, &h, &err, &code);
    EXPECT_TRUE(server) << err;
  }
  // Polls until `done` or the deadline; false on timeout.
  template <class Pred>
  bool poll_until(Pred done, int timeout_ms = 10000) {
    const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
      if (Clock::now() > end) return false;
      if (server->poll(10) < 0) return false;
    }
    return true;
  }
  // A client upgraded (the loop driven until the server saw it open).
  std::unique_ptr<WsClient> client(size_t* opened) {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->open(server->port()));
    const std::string req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: " + std::string(WsClient::kKey) +
                            "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    EXPECT_TRUE(c->write_all(req));
    std::vector<ConnId> ids;
    EXPECT_TRUE(poll_until([&] {
      server->connection_ids(&ids);
      return ids.size() > *opened;
    }));
    ++*opened;
    auto resp = c->read_http_response();
    EXPECT_TRUE(resp && resp->rfind("HTTP/1.1 101", 0) == 0);
    return c;
  }
  ConnId newest_id() {
    std::vector<ConnId> ids;
    server->connection_ids(&ids);
    ConnId m = 0;
    for (ConnId id : ids) m = std::max(m, id);
    return m;
  }
};

// A burst of `n` small messages in one write, as a flooding client sends.
std::string burst(size_t n, size_t size = 16) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += WsClient::masked_frame(Opcode::Text, std::string(size, 'f'));
  return out;
}

TEST(Fairness, AFloodIsHandledInBoundedTurnsAndAProbeIsServedDuringIt) {
  Driven d;
  size_t opened = 0;
  auto flooder = d.client(&opened);
  const ConnId flood_id = d.newest_id();
  auto probe = d.client(&opened);
  const ConnId probe_id = d.newest_id();
  d.h.watched = probe_id;

  // 10,000 messages (220 KB) from the flooder, written by a thread of their
  // own (the loop runs here and the socket buffers do not hold them all).
  constexpr uint64_t kFlood = 10000;
  std::thread writer([&] { EXPECT_TRUE(flooder->write_all(burst(kFlood))); });
  // The flood has started: then the probe sends its one message.
  ASSERT_TRUE(d.poll_until([&] { return d.h.total[flood_id] > 0; }));
  const uint64_t flood_before_probe = d.h.total[flood_id];
  const uint64_t it0 = d.h.iterations;
  ASSERT_TRUE(probe->write_all(WsClient::masked_frame(Opcode::Text, "probe")));
  ASSERT_TRUE(d.poll_until([&] { return d.h.total[flood_id] == kFlood && d.h.total[probe_id] == 1; }));
  writer.join();

  // The probe did not wait for the flood: at most a few of the flooder's
  // turns came between its write and its turn (not the thousands of
  // messages that were in the flooder's socket).
  EXPECT_LE(d.h.at_watched[flood_id] - flood_before_probe, 256u)
      << "flood messages handled between the probe's write and its message";
  // One turn per iteration, none over the bound; so the flood took many.
  constexpr uint64_t kTurn = Server::Impl::kMessagesPerTurn;
  EXPECT_LE(d.h.most_in_one_iteration[flood_id], kTurn);
  EXPECT_GE(d.h.iterations - it0, (kFlood - flood_before_probe) / kTurn);
}

// The turn adapts: a bulk sender (its turn spent the whole budget) gets a
// short turn in the iterations where another connection is served, and the
// full one while nobody else is (fewer, fuller iterations: throughput).
TEST(Fairness, ABulkSendersTurnIsShortOnlyWhileOthersAreServed) {
  Driven d;
  size_t opened = 0;
  auto flooder = d.client(&opened);
  const ConnId flood_id = d.newest_id();
  auto probe = d.client(&opened);
  const ConnId probe_id = d.newest_id();

  // 3,000 messages (66 KB) in the server's socket at once: they fit the
  // loopback buffers, so the flooder has input left until all are handled.
  constexpr uint64_t kFlood = 3000;
  ASSERT_TRUE(flooder->write_all(burst(kFlood)));
  constexpr uint64_t kTurn = Server::Impl::kMessagesPerTurn;
  constexpr uint64_t kBulk = Server::Impl::kBulkTurn;
  static_assert(kBulk < kTurn);
  d.h.record = true;
  // Alone, it is served in full turns.
  ASSERT_TRUE(d.poll_until([&] { return d.h.total[flood_id] >= 4 * kTurn; }));
  // Then a probe sends one message at a time, the next once the last was
  // handled, while the flood goes on.
  constexpr uint64_t kProbes = 30;
  for (uint64_t i = 0; i < kProbes && d.h.total[flood_id] < kFlood - 2 * kTurn; ++i) {
    ASSERT_TRUE(probe->write_all(WsClient::masked_frame(Opcode::Text, "probe")));
    ASSERT_TRUE(d.poll_until([&] { return d.h.total[probe_id] == i + 1; }));
  }
  const uint64_t probes = d.h.total[probe_id];
  ASSERT_TRUE(d.poll_until([&] { return d.h.total[flood_id] == kFlood; }));

  uint64_t beside = 0, most_beside = 0, most_alone = 0;
  for (auto& it : d.h.history) {
    const uint64_t f = it.count(flood_id) ? it[flood_id] : 0;
    if (it.count(probe_id)) {
      ++beside;
      most_beside = std::max(most_beside, f);
    } else {
      most_alone = std::max(most_alone, f);
    }
  }
  EXPECT_GE(probes, 10u) << "the flood ended before the probe could check it";
  EXPECT_EQ(beside, probes) << "each probe message in an iteration of its own";
  EXPECT_LE(most_beside, kBulk) << "flood messages in an iteration where the probe was served";
  EXPECT_EQ(most_alone, kTurn) << "a bulk sender alone keeps the full turn";
}

TEST(Fairness, InputKeptBetweenTurnsArrivesWholeAndInOrder) {
  Driven d;
  d.h.keep_payloads = true;
  size_t opened = 0;
  auto c = d.client(&opened);
  const ConnId id = d.newest_id();
  // Small frames of every size around a turn's boundary, large ones that
  // span reads, fragmented ones and pings, in one stream.
  std::vector<std::string> expect;
  std::string stream;
  for (int i = 0; i < 3000; ++i) {
    std::string p = std::to_string(i) + ":" + std::string(size_t(i * 37 % 300), char('a' + i % 26));
    if (i % 500 == 499) p += std::string(200000, 'L');  // spans several reads
    if (i % 7 == 3) {
      const size_t half = p.size() / 2;
      stream += WsClient::masked_frame(Opcode::Text, p.substr(0, half), false);
      stream += WsClient::masked_frame(Opcode::Ping, "x");
      stream += WsClient::masked_frame(Opcode::Continuation, p.substr(half), true);
    } else {
      stream += WsClient::masked_frame(i % 2 ? Opcode::Binary : Opcode::Text, p);
    }
    expect.push_back(std::move(p));
  }
  std::thread writer([&] { EXPECT_TRUE(c->write_all(stream)); });
  const bool all = d.poll_until([&] { return d.h.total[id] == expect.size(); }, 20000);
  writer.join();
  ASSERT_TRUE(all) << d.h.total[id] << " of " << expect.size();
  ASSERT_EQ(d.h.payloads[id].size(), expect.size());
  for (size_t i = 0; i < expect.size(); ++i) ASSERT_EQ(d.h.payloads[id][i], expect[i]) << "message " << i;
}

}  // namespace
