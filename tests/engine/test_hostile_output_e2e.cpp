// Hostile clients against what the server sends, over real sockets on
// 127.0.0.1: a client that never reads from its first byte (upgrade and
// frames in one write), pipelined HTTP floods from a client that reads late
// or never, and idle downloads of a large file. Each must leave the
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
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/descriptors.h"
#include "support/echo_under_attack.h"
#include "support/pattern_file.h"
#include "support/process_memory.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

namespace fs = std::filesystem;

// The echo server under attack (support/echo_under_attack.h), serving a
// temporary directory, with a descriptor baseline too.
struct HostileOutput : EchoUnderAttack {
  fs::path root;
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

  void start(ServerConfig cfg) {
    cfg.static_dir = root.string();
    EchoUnderAttack::start(cfg);
    fds_before = open_descriptors();
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
    closed = wait_close(1008, 0);
    if (kMeasureMemory && round % 8 == 0) peak = std::max(peak, rss_growth());
    if (round == 4) expect_echo(*bystander, "during the flood");
  }
  if (kMeasureMemory) {
    EXPECT_LT(peak, 16 * kMiB) << "memory grew with the flood";
  }
  ASSERT_TRUE(wait_close(1008, 5000)) << "never closed as too slow";
  // What it got: the 101, then whole echoes (the few the kernel took
  // before the cap), then the close frame.
  auto head = c.read_http_response();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->substr(0, 12), "HTTP/1.1 101");
  uint16_t code = 0;
  for (int i = 0; i < 16 && code == 0; ++i) {
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

// Files "f00".."f99", 4 KiB each, each with its own bytes; request i asks
// for file i % 100, so the responses of a flood are told apart in order.
constexpr int kFiles = 100;

std::string numbered_content(int i) {
  char id[16];
  std::snprintf(id, sizeof id, "file %02d\n", i % kFiles);
  std::string s(4096, char('a' + i % kFiles % 26));
  s.replace(0, std::strlen(id), id);
  return s;
}

void write_numbered_files(const fs::path& root) {
  for (int i = 0; i < kFiles; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "f%02d", i);
    std::ofstream(root / name, std::ios::binary) << numbered_content(i);
  }
}

std::string numbered_requests(int n) {
  std::string all;
  for (int i = 0; i < n; ++i) {
    char target[16];
    std::snprintf(target, sizeof target, "/f%02d", i % kFiles);
    all += HostileOutput::get(target);
  }
  return all;
}

// 1000 pipelined GETs (4 MB of responses, four times the output cap) from a
// client that reads only once it has sent them all: every response
// arrives, complete and in order, and the server holds a window of them at
// a time, not all.
TEST_F(HostileOutput, PipelinedFloodFromALateReaderGetsEveryResponseInOrder) {
  constexpr int kRequests = 1000;
  write_numbered_files(root);
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  start(cfg);
  TcpClient c(st->port());
  c.set_receive_buffer(64 * 1024);  // a sixtieth of what it asks for
  timeval tv{5, 0};
  setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ASSERT_TRUE(c.write_all(numbered_requests(kRequests)));
  expect_echo(*bystander, "during the pipelined flood");
  size_t peak = kMeasureMemory ? rss_growth() : 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = c.read_http_response();
    ASSERT_TRUE(r) << "response " << i << " of " << kRequests << " never came: " << c.error();
    ASSERT_EQ(r->substr(0, 12), "HTTP/1.1 200") << i;
    const std::string want = numbered_content(i);
    ASSERT_EQ(r->substr(r->size() - want.size()), want) << "response " << i << " out of order";
    if (kMeasureMemory && i % 100 == 0) peak = std::max(peak, rss_growth());
  }
  if (kMeasureMemory) {
    EXPECT_LT(peak, 8 * kMiB);
  }
  // The connection is still good for more.
  ASSERT_TRUE(c.write_all(get("/f07")));
  auto more = c.read_http_response();
  ASSERT_TRUE(more);
  EXPECT_EQ(more->substr(more->size() - 4096), numbered_content(7));
  c.close();
  expect_serving("after the pipelined flood");
  expect_descriptors_back("pipelined flood");
}

// The same flood from a client that never reads: the server stops reading
// it at the window, and closes it when nothing moves for the handshake
// timeout; memory stays bounded meanwhile.
TEST_F(HostileOutput, PipelinedFloodFromANonReaderIsClosedWhenItStalls) {
  constexpr int kRequests = 1000;
  write_numbered_files(root);
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  cfg.handshake_timeout_ms = 300;
  cfg.close_timeout_ms = 300;
  start(cfg);
  TcpClient c(st->port());
  c.set_receive_buffer(64 * 1024);
  timeval tv{5, 0};
  setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ASSERT_TRUE(c.write_all(numbered_requests(kRequests)));
  pollfd p{c.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "never answered";
  // Its server side is gone once only the client's own socket is left.
  EXPECT_TRUE(wait_until([&] { return open_descriptors() <= fds_before + 1; }, 5000))
      << "the stalled connection is still open";
  if (kMeasureMemory) {
    EXPECT_LT(rss_growth(), 8 * kMiB);
  }
  // It got whole responses, in order, fewer than it asked for, then the end.
  int got = 0;
  for (; got < kRequests; ++got) {
    auto r = c.read_http_response(3000);
    if (!r) break;
    if (r->substr(0, 12) != "HTTP/1.1 200") {
      EXPECT_EQ(r->substr(0, 12), "HTTP/1.1 408");
      break;
    }
    ASSERT_EQ(r->substr(r->size() - 4096), numbered_content(got));
  }
  EXPECT_LT(got, kRequests);
  EXPECT_TRUE(c.wait_eof(3000));
  expect_serving("after the stalled flood");
}

// Idle downloads: 12 clients ask for a 48 MB file and never read. Each holds
// at most a window of it (64 KiB) in the server, not the file; a full
// download meanwhile is byte-exact, and the files are closed once the
// clients go.
TEST_F(HostileOutput, IdleDownloadsOfALargeFileHoldAWindowEach) {
  constexpr uint64_t kSize = 48ull << 20;
  constexpr int kIdle = 12;
  ASSERT_TRUE(write_pattern_file((root / "big.bin").string(), kSize));
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  start(cfg);
  std::vector<std::unique_ptr<TcpClient>> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<TcpClient>(st->port()));
    idle.back()->set_receive_buffer(4096);
    ASSERT_TRUE(idle.back()->write_all(get("/big.bin")));
  }
  // Every one is being answered (the server read their requests).
  for (auto& c : idle) {
    pollfd p{c->fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
  }
  EXPECT_EQ(descriptors_open_to(root / "big.bin"), size_t(kIdle));
  // Each socket plus its file on the server side, and the client sockets.
  EXPECT_LE(open_descriptors(), fds_before + 3 * kIdle);
  size_t peak = kMeasureMemory ? rss_growth() : 0;
  expect_echo(*bystander, "during the idle downloads");
  // A reader downloads the whole file meanwhile, byte for byte.
  TcpClient reader(st->port());
  ASSERT_TRUE(reader.write_all(get("/big.bin")));
  CheckedResponse r = read_checked_response(reader, 0);
  EXPECT_EQ(r.status(), 200);
  EXPECT_TRUE(r.complete()) << r.received << " of " << kSize << ", mismatch at " << r.mismatch;
  if (kMeasureMemory) {
    peak = std::max(peak, rss_growth());
    // A window per connection (and the kernel's socket buffers, which are
    // not in RSS): about 1 MiB; the whole file would be 48 MB each.
    EXPECT_LT(peak, 8 * kMiB) << kIdle << " idle downloads";
  }
  reader.close();
  idle.clear();
  expect_serving("after the idle downloads");
  EXPECT_TRUE(wait_until([&] { return descriptors_open_to(root / "big.bin") == 0; }, 5000));
  expect_descriptors_back("idle downloads");
}

}  // namespace
