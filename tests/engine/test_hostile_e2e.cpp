// Hostile clients against the engine, over real sockets on 127.0.0.1: each
// attack must end with the documented outcome (an HTTP status or a close
// code), leave the server serving a well-behaved client during and after
// the attack, and leave its memory near where it was.
//
// The server runs in this process, so its memory is this process's resident
// set (/proc/self/statm). Freed memory is handed back (malloc_trim) before
// measuring, and the margins are generous: the check is for growth in
// proportion to what the attacker sent, not for exact accounting. Under a
// sanitizer (quarantined frees, shadow memory) RSS says nothing, so only the
// behaviour is checked there.
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/echo_under_attack.h"
#include "support/process_memory.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;
using Clock = std::chrono::steady_clock;
using namespace std::string_literals;

namespace {

long ms_since(Clock::time_point t) {
  return long(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// A client whose receive buffer is small, so that what the server sends it
// backs up into the server's output queue after little data. The socket is
// also given a send timeout: a client that floods a server that has stopped
// reading gets an error instead of blocking the test forever.
std::unique_ptr<WsClient> non_reading_client(uint16_t port) {
  auto c = std::make_unique<WsClient>(port);
  c->set_receive_buffer(4096);
  timeval tv{5, 0};
  setsockopt(c->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return c;
}

uint8_t kMask[4] = {0x12, 0x34, 0x56, 0x78};

std::string frame(Opcode op, std::string_view payload, bool fin) {
  return protocol::encode_masked_frame(op, payload, kMask, fin);
}

// The echo server under attack, with its bystander (support/echo_under_attack.h).
// Each attack also with two event loops (threads = 2): the attacker and the
// bystander may then be on different loops, and neither loop may suffer;
// and with two loops fed by loop 0 (AcceptMode::Handoff), where the
// attacker's socket passes through loop 0 whichever loop serves it.
struct LoopSetup {
  unsigned threads;
  ServerConfig::AcceptMode accept;
};
struct Hostile : EchoUnderAttack, ::testing::WithParamInterface<LoopSetup> {
  void start(ServerConfig cfg) {
    cfg.threads = GetParam().threads;
    cfg.accept_mode = GetParam().accept;
    EchoUnderAttack::start(std::move(cfg));
  }
};
INSTANTIATE_TEST_SUITE_P(Loops, Hostile,
                         ::testing::Values(LoopSetup{1, ServerConfig::AcceptMode::ReusePort},
                                           LoopSetup{2, ServerConfig::AcceptMode::ReusePort},
                                           LoopSetup{2, ServerConfig::AcceptMode::Handoff}),
                         [](const auto& p) {
                           return "threads" + std::to_string(p.param.threads) +
                                  (p.param.accept == ServerConfig::AcceptMode::Handoff ? "_handoff" : "");
                         });

// Headers one byte per 100 ms: answered 408 and closed once the handshake
// timeout passes, long before the request could complete.
TEST_P(Hostile, SlowlorisGets408AfterTheHandshakeTimeout) {
  ServerConfig cfg;
  cfg.handshake_timeout_ms = 500;
  start(cfg);
  const std::string req =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  TcpClient slow(st->port());
  ASSERT_TRUE(slow.ok());
  const auto t0 = Clock::now();
  size_t sent = 0;
  bool answered = false;
  while (sent < req.size() && !answered) {
    if (!slow.write_all(std::string_view(&req[sent], 1))) break;  // closed under us
    ++sent;
    if (sent == 2) expect_echo(*bystander, "during slowloris");
    // The pacing of the attack itself: the next byte in 100 ms, unless the
    // server answers first.
    pollfd p{slow.fd(), POLLIN, 0};
    answered = ::poll(&p, 1, 100) == 1;
  }
  auto resp = slow.read_http_response(3000);
  const long elapsed = ms_since(t0);
  ASSERT_TRUE(resp) << "no answer after " << sent << " bytes";
  EXPECT_EQ(resp->substr(0, 12), "HTTP/1.1 408") << *resp;
  EXPECT_TRUE(slow.wait_eof(3000));
  EXPECT_LT(sent, req.size());
  EXPECT_GE(elapsed, 450);   // not before the timeout...
  EXPECT_LT(elapsed, 2500);  // ...and not long after it
  expect_serving("after slowloris");
}

// Connect and send nothing: closed after the handshake timeout.
TEST_P(Hostile, HalfOpenConnectionIsClosedAfterTheHandshakeTimeout) {
  ServerConfig cfg;
  cfg.handshake_timeout_ms = 500;
  start(cfg);
  TcpClient idle(st->port());
  ASSERT_TRUE(idle.ok());
  const auto t0 = Clock::now();
  expect_echo(*bystander, "during half-open");
  ASSERT_TRUE(idle.wait_eof(3000));
  const long elapsed = ms_since(t0);
  EXPECT_GE(elapsed, 450);
  EXPECT_LT(elapsed, 2500);
  // Whatever came before the FIN is a 408, or nothing.
  if (!idle.buffer().empty()) {
    EXPECT_EQ(idle.buffer().substr(0, 12), "HTTP/1.1 408");
  }
  expect_serving("after half-open");
}

// Bytes that are not HTTP: 400 and closed at once.
TEST_P(Hostile, GarbageBeforeTheHandshakeGets400) {
  start(ServerConfig{});
  const std::string garbage[] = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"s,  // TLS-ish
      "\x00\xff\xfe garbage \x01\x02\r\nmore: garbage\r\n\r\n"s,
      "GET\r\n\r\n",
      "\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n bad fold\r\n\r\n",
  };
  for (const std::string& g : garbage) {
    TcpClient c(st->port());
    ASSERT_TRUE(c.write_all(g));
    auto resp = c.read_http_response(3000);
    ASSERT_TRUE(resp) << ::testing::PrintToString(g);
    EXPECT_EQ(resp->substr(0, 12), "HTTP/1.1 400") << ::testing::PrintToString(g);
    EXPECT_TRUE(c.wait_eof(3000));
  }
  expect_serving("after garbage");
}

// A frame header announcing 2^62 bytes: closed with 1009 (or 1002) at once,
// before any payload, with nothing allocated for it.
TEST_P(Hostile, FrameHeaderAnnouncingTwoToThe62BytesIsRefusedAtOnce) {
  start(ServerConfig{});
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  std::string hdr = "\x82\xff";
  for (int i = 7; i >= 0; --i) hdr.push_back(char((uint64_t(1) << 62) >> (8 * i)));
  hdr.append(reinterpret_cast<const char*>(kMask), 4);
  hdr.append("the payload that never ends");
  ASSERT_TRUE(c.write_all(hdr));
  const uint16_t code = read_close(c, 2000);
  EXPECT_TRUE(code == 1009 || code == 1002) << code;
  EXPECT_TRUE(c.wait_eof(3000));
  EXPECT_TRUE(wait_close(code));
  expect_serving("after huge header");
  expect_memory_back(16 * kMiB, "2^62 header");
}

// Sends `count` one-byte fragments of one text message (never finished) in
// batches, until the server closes; returns the close code it sent.
uint16_t fragment_flood(WsClient& c, size_t count) {
  std::string batch;
  if (!c.write_all(frame(Opcode::Text, "a", false))) return 0;
  for (size_t sent = 1; sent < count;) {
    batch.clear();
    for (size_t i = 0; i < 1000 && sent < count; ++i, ++sent)
      batch += frame(Opcode::Continuation, "a", false);
    if (!c.write_all(batch)) break;  // the server has closed
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) break;  // its close frame is here
  }
  uint16_t code = 0;
  for (int i = 0; i < 100 && code == 0; ++i) {
    auto f = c.read_frame(3000);
    if (!f) break;
    if (f->op == Opcode::Close) code = f->close_code();
  }
  return code;
}

TEST_P(Hostile, FragmentFloodHitsTheFragmentLimit) {
  ServerConfig cfg;
  cfg.max_fragments = 1000;
  start(cfg);
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  EXPECT_EQ(fragment_flood(c, 100000), 1009);
  EXPECT_TRUE(wait_close(1009));
  EXPECT_EQ(handler.count(Event::Message), 1u);  // only the bystander's "before"
  expect_serving("after fragment flood");
  expect_memory_back(16 * kMiB, "1000-fragment limit");
}

TEST_P(Hostile, HundredThousandFragmentsHitTheDefaultLimit) {
  start(ServerConfig{});  // max_fragments 65536
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  EXPECT_EQ(fragment_flood(c, 100000), 1009);
  EXPECT_TRUE(wait_close(1009));
  EXPECT_EQ(handler.count(Event::Message), 1u);
  expect_serving("after 100k fragments");
  expect_memory_back(16 * kMiB, "100k fragments");
}

// Invalid UTF-8 whose bad sequence straddles two fragments: 1007 while the
// message is still unfinished (fail fast), not at its end.
TEST_P(Hostile, InvalidUtf8AcrossFragmentsFailsFast) {
  start(ServerConfig{});
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  // ED A0 80 would be U+D800, a surrogate: invalid from its second byte.
  ASSERT_TRUE(c.write_all(frame(Opcode::Text, "valid start \xED", false)));
  ASSERT_TRUE(c.write_all(frame(Opcode::Continuation, "\xA0\x80 and more", false)));
  // No final fragment is ever sent: the close must come anyway.
  EXPECT_EQ(read_close(c, 2000), 1007);
  EXPECT_TRUE(c.wait_eof(3000));
  EXPECT_TRUE(wait_close(1007));
  expect_serving("after invalid UTF-8");
}

// Pings from a client that never reads: its pongs queue up to the output
// cap, then the slow-consumer policy closes it with 1008; memory bounded.
TEST_P(Hostile, PingFloodFromANonReaderIsClosedAsTooSlow) {
  ServerConfig cfg;
  cfg.max_output_buffer = 64 * 1024;
  start(cfg);
  auto c = non_reading_client(st->port());
  ASSERT_EQ(c->handshake(), 101);
  std::string batch;
  for (int i = 0; i < 256; ++i) batch += frame(Opcode::Ping, std::string(125, 'p'), true);
  size_t peak = 0;
  bool closed = false;
  // At most ~100 MB of pings; the kernel buffers fill long before.
  for (int round = 0; round < 3000 && !closed; ++round) {
    if (!c->write_all(batch)) break;  // the server is gone from this socket
    closed = wait_close(1008, 0);
    if (round == 100) expect_echo(*bystander, "during ping flood");
    if (kMeasureMemory && round % 100 == 0) peak = std::max(peak, rss_bytes());
  }
  EXPECT_TRUE(wait_close(1008)) << "never closed as too slow";
  if (kMeasureMemory) {
    EXPECT_LT(peak, rss_before + 64 * kMiB) << "memory grew with the flood";
  }
  c.reset();
  expect_serving("after ping flood");
  expect_memory_back(16 * kMiB, "ping flood");
}

// Broadcasts while one client never reads: it is closed with 1008 once its
// queue passes max_output_buffer; every other client receives every message.
TEST_P(Hostile, NonReaderDuringBroadcastIsClosedOthersGetEverything) {
  ServerConfig cfg;
  cfg.max_output_buffer = 1 * kMiB;
  start(cfg);
  const ConnId bystander_id = handler.events().front().id;  // kept out of the broadcasts
  auto slow = non_reading_client(st->port());
  ASSERT_EQ(slow->handshake(), 101);

  constexpr int kReaders = 3;
  constexpr size_t kMsgSize = 32 * 1024;
  constexpr int kPerRound = 8;  // 256 KiB per round, well under the cap
  std::vector<std::unique_ptr<WsClient>> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.push_back(std::make_unique<WsClient>(st->port()));
    ASSERT_EQ(readers.back()->handshake(), 101);
  }
  ASSERT_TRUE(handler.wait_count(Event::Open, size_t(kReaders) + 2));

  // What the readers have received, complete and in order.
  struct Progress {
    std::mutex mu;
    std::condition_variable cv;
    int received[kReaders] = {};
    bool failed = false;
  } progress;
  auto prefix = [](int seq) { return std::to_string(1000000000 + seq) + ":"; };
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      for (int seq = 0;; ++seq) {
        auto f = readers[size_t(r)]->read_message(10000);
        if (f && f->op == Opcode::Text && f->payload == "end") return;
        const bool ok = f && f->op == Opcode::Binary && f->payload.size() == kMsgSize &&
                        f->payload.compare(0, 11, prefix(seq)) == 0;
        {
          std::lock_guard<std::mutex> lock(progress.mu);
          if (ok) ++progress.received[r];
          else progress.failed = true;
        }
        progress.cv.notify_all();
        if (!ok) return;
      }
    });
  }
  // Waits until every reader has `n` messages (or one failed); bounded.
  auto wait_all_have = [&](int n) {
    std::unique_lock<std::mutex> lock(progress.mu);
    return progress.cv.wait_for(lock, std::chrono::seconds(10), [&] {
      if (progress.failed) return true;
      for (int r = 0; r < kReaders; ++r)
        if (progress.received[r] < n) return false;
      return true;
    }) && !progress.failed;
  };

  int sent = 0;
  bool slow_closed = false;
  int rounds_after_close = 0;  // a few more, to see the others unaffected
  for (int round = 0; round < 1000 && rounds_after_close < 4; ++round) {
    for (int i = 0; i < kPerRound; ++i, ++sent) {
      std::string msg = prefix(sent);
      msg.resize(kMsgSize, char('a' + sent % 26));
      ASSERT_GE(st->server->broadcast(Opcode::Binary, msg, bystander_id), 0);
    }
    // Pace the rounds by the readers, which keep up; the non-reader cannot.
    if (!wait_all_have(sent)) break;
    if (!slow_closed) slow_closed = wait_close(1008, 0);
    if (slow_closed) ++rounds_after_close;
  }
  // The end marker lets the readers stop; a reader that failed has stopped.
  st->server->broadcast(Opcode::Text, "end", bystander_id);
  for (auto& t : threads) t.join();
  EXPECT_FALSE(progress.failed) << "a reader missed or got a broken message";
  EXPECT_TRUE(slow_closed) << "the non-reader was never closed";
  for (int r = 0; r < kReaders; ++r) EXPECT_EQ(progress.received[r], sent) << "reader " << r;
  // Exactly one connection was closed, the non-reader, as too slow.
  int closes = 0;
  for (auto& e : handler.events()) {
    if (e.kind != Event::Close) continue;
    ++closes;
    EXPECT_EQ(e.code, 1008);
  }
  EXPECT_EQ(closes, 1);
  slow.reset();
  expect_serving("after broadcast to a non-reader");
  expect_memory_back(32 * kMiB, "broadcast with a non-reader");
}

// A client whose FIN comes in the same segment as its last bytes (it wrote
// and closed at once): edge-triggered, that is one event, and a read that
// comes back short is not the end of the input. The server must read on to
// the EOF: before, it took the short read for "drained", no further edge
// came, and the connection stayed until a timeout (idle 60 s, or the
// linger deadline), holding its descriptor and its place under the limits.
namespace {
// Writes `bytes` and the FIN as one segment (TCP_CORK until the shutdown).
bool write_and_close(TcpClient& c, const std::string& bytes) {
  int on = 1, off = 0;
  ::setsockopt(c.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  const bool ok = c.write_all(bytes) && ::shutdown(c.fd(), SHUT_WR) == 0;
  ::setsockopt(c.fd(), IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  return ok;
}
}  // namespace

TEST_P(Hostile, LastBytesAndFinInOneSegmentAreBothTakenIn) {
  ServerConfig cfg;
  cfg.idle_timeout_ms = 60000;
  cfg.close_timeout_ms = 60000;  // so the linger deadline (after a 503) is a minute off too
  cfg.max_connections = 3;       // the bystander, and two more
  start(cfg);
  // A message, then the FIN: the message is handled, the connection closed (1006).
  WsClient last(st->port());
  ASSERT_EQ(last.handshake(), 101);
  ASSERT_TRUE(write_and_close(last, WsClient::masked_frame(Opcode::Text, "last words")));
  auto echo = last.read_message();
  ASSERT_TRUE(echo) << "the last message was not handled";
  EXPECT_EQ(echo->payload, "last words");
  EXPECT_TRUE(last.wait_eof()) << "the server kept the connection after its FIN";
  EXPECT_TRUE(wait_close(1006));
  // A close frame, then the FIN: the close handshake completes with its code.
  WsClient closing(st->port());
  ASSERT_EQ(closing.handshake(), 101);
  ASSERT_TRUE(write_and_close(closing, WsClient::masked_frame(Opcode::Close, std::string("\x03\xe8", 2))));
  EXPECT_EQ(read_close(closing), 1000);
  EXPECT_TRUE(closing.wait_eof());
  EXPECT_TRUE(wait_close(1000));
  // Refused at the limit (503 at accept, then lingering until the client's
  // FIN): its request and FIN in one segment; the server lets the socket go
  // at once, not at the linger deadline.
  WsClient a(st->port()), b(st->port());
  ASSERT_EQ(a.handshake(), 101);
  ASSERT_EQ(b.handshake(), 101);
  TcpClient refused(st->port());
  ASSERT_TRUE(write_and_close(refused, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"));
  EXPECT_TRUE(refused.wait_eof());
  StatsSnapshot s;
  for (int i = 0; i < 500; ++i) {  // bounded: the bug held it for the linger deadline, a minute
    st->server->stats(&s);
    if (s.c.connections_accepted == 6 && s.closing_connections == 0 && s.http_connections == 0) break;
    st->server->wake();
    handler.wait([](auto&) { return false; }, 2);
  }
  EXPECT_EQ(s.c.connections_accepted, 6u);
  EXPECT_EQ(s.closing_connections, 0u) << "the refused connection still lingers";
  EXPECT_EQ(s.http_connections, 0u);
  a.close();
  b.close();
  ASSERT_TRUE(handler.wait_count(Event::Close, 4));
  expect_serving("after clients that closed with their last bytes");
}

}  // namespace
