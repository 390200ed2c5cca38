// Static files over real sockets, streamed: a large file downloads byte for
// byte, ranges and conditional requests answer as RFC 9110 says, pipelined
// requests after a file wait their turn (an upgrade included), and a file
// that changes while it is sent, or a download that stalls, ends the
// connection instead of sending a response that lies about its length.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "support/descriptors.h"
#include "support/pattern_file.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kBig = 8ull << 20;  // 512 chunks, 128 windows

struct StaticStream : ::testing::Test {
  fs::path base;
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;

  void SetUp() override {
    char tmpl[] = "/tmp/chatws-stream-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base = tmpl;
    ASSERT_TRUE(write_pattern_file((base / "big.bin").string(), kBig));
    ASSERT_TRUE(write_pattern_file((base / "small.bin").string(), 1000));
    std::ofstream(base / "index.html") << "<h1>chat</h1>";
  }
  void start(ServerConfig cfg = {}) {
    cfg.static_dir = base.string();
    handler.on_msg = [this](ConnId id, Opcode op, const char* d, size_t n) {
      handler.server->send(id, op, std::string_view(d, n));
    };
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
  }
  void TearDown() override {
    st.reset();
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  static std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
  }
  static std::string header(const std::string& head, const std::string& name) {
    const std::string key = "\r\n" + name + ": ";
    const size_t at = head.find(key);
    if (at == std::string::npos) return "<missing>";
    const size_t from = at + key.size();
    return head.substr(from, head.find("\r\n", from) - from);
  }
};

TEST_F(StaticStream, LargeFileDownloadsByteForByte) {
  start();
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all(get("/big.bin")));
  CheckedResponse r = read_checked_response(c, 0);
  EXPECT_EQ(r.status(), 200) << r.head;
  EXPECT_EQ(r.length, kBig);
  EXPECT_TRUE(r.complete()) << "received " << r.received << ", first mismatch " << r.mismatch;
  EXPECT_EQ(header(r.head, "Accept-Ranges"), "bytes");
  EXPECT_EQ(header(r.head, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(header(r.head, "ETag").front(), '"');
  // The connection stays usable after it.
  ASSERT_TRUE(c.write_all(get("/small.bin")));
  CheckedResponse next = read_checked_response(c, 0);
  EXPECT_EQ(next.status(), 200);
  EXPECT_TRUE(next.complete());
  EXPECT_EQ(next.length, 1000u);
}

TEST_F(StaticStream, ConnectionCloseDownloadEndsWithTheFile) {
  start();
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all(get("/big.bin", "Connection: close\r\n")));
  CheckedResponse r = read_checked_response(c, 0);
  EXPECT_EQ(header(r.head, "Connection"), "close");
  EXPECT_TRUE(r.complete()) << r.received;
  EXPECT_TRUE(c.wait_eof());
  EXPECT_TRUE(c.buffer().empty());
}

TEST_F(StaticStream, RangesAreByteExact) {
  start();
  TcpClient c(st->port());
  struct Case {
    std::string range;
    uint64_t first, last;
  };
  const Case cases[] = {
      {"bytes=0-0", 0, 0},
      {"bytes=16383-16385", 16383, 16385},  // across the chunk boundary
      {"bytes=65530-131080", 65530, 131080},  // across windows
      {"bytes=1000000-", 1000000, kBig - 1},
      {"bytes=-70000", kBig - 70000, kBig - 1},
      {"bytes=" + std::to_string(kBig - 1) + "-" + std::to_string(kBig + 500), kBig - 1, kBig - 1},
  };
  // Pipelined, all in one write: every answer in order.
  std::string all;
  for (const Case& k : cases) all += get("/big.bin", "Range: " + k.range + "\r\n");
  ASSERT_TRUE(c.write_all(all));
  for (const Case& k : cases) {
    CheckedResponse r = read_checked_response(c, k.first);
    EXPECT_EQ(r.status(), 206) << k.range << "\n" << r.head;
    EXPECT_EQ(header(r.head, "Content-Range"), "bytes " + std::to_string(k.first) + "-" +
                                                   std::to_string(k.last) + "/" + std::to_string(kBig))
        << k.range;
    EXPECT_EQ(r.length, k.last - k.first + 1) << k.range;
    EXPECT_TRUE(r.complete()) << k.range << ": " << r.received << " mismatch " << r.mismatch;
  }
  // Unsatisfiable: 416 with the size; several ranges: the whole file.
  ASSERT_TRUE(c.write_all(get("/small.bin", "Range: bytes=1000-\r\n") +
                          get("/small.bin", "Range: bytes=0-1,5-6\r\n")));
  auto unsat = c.read_http_response();
  ASSERT_TRUE(unsat);
  EXPECT_EQ(unsat->substr(0, 12), "HTTP/1.1 416");
  EXPECT_EQ(header(*unsat, "Content-Range"), "bytes */1000");
  CheckedResponse whole = read_checked_response(c, 0);
  EXPECT_EQ(whole.status(), 200);
  EXPECT_TRUE(whole.complete());
  EXPECT_EQ(whole.length, 1000u);
}

TEST_F(StaticStream, ConditionalRequests) {
  start();
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all(get("/big.bin", "Range: bytes=0-9\r\n")));
  CheckedResponse first = read_checked_response(c, 0);
  ASSERT_EQ(first.status(), 206);
  const std::string etag = header(first.head, "ETag");
  const std::string modified = header(first.head, "Last-Modified");
  ASSERT_NE(etag, "<missing>");
  ASSERT_NE(modified, "<missing>");

  // 304s carry no body: the next response on the connection follows at once.
  ASSERT_TRUE(c.write_all(get("/big.bin", "If-None-Match: " + etag + "\r\n") +
                          get("/big.bin", "If-Modified-Since: " + modified + "\r\n") +
                          get("/big.bin", "If-None-Match: \"other\"\r\nRange: bytes=5-9\r\n")));
  for (int i = 0; i < 2; ++i) {
    CheckedResponse r = read_checked_response(c, 0, 10000, false);
    EXPECT_EQ(r.status(), 304) << r.head;
    EXPECT_EQ(header(r.head, "ETag"), etag);
  }
  CheckedResponse changed = read_checked_response(c, 5);
  EXPECT_EQ(changed.status(), 206);
  EXPECT_TRUE(changed.complete());

  // If-Range: the range only for the same version, else the whole file.
  ASSERT_TRUE(c.write_all(get("/small.bin", "Range: bytes=10-19\r\nIf-Range: \"stale\"\r\n")));
  CheckedResponse stale = read_checked_response(c, 0);
  EXPECT_EQ(stale.status(), 200);
  EXPECT_TRUE(stale.complete());
  EXPECT_EQ(stale.length, 1000u);

  ASSERT_TRUE(c.write_all(get("/big.bin", "If-Match: \"other\"\r\n")));
  auto failed = c.read_http_response();
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->substr(0, 12), "HTTP/1.1 412");
}

TEST_F(StaticStream, HeadOfALargeFileHasItsHeadersOnly) {
  start();
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all("HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" + get("/small.bin")));
  CheckedResponse head = read_checked_response(c, 0, 10000, false);
  EXPECT_EQ(head.status(), 200);
  EXPECT_EQ(header(head.head, "Content-Length"), std::to_string(kBig));
  CheckedResponse next = read_checked_response(c, 0);  // right after, no body between
  EXPECT_EQ(next.status(), 200);
  EXPECT_TRUE(next.complete());
  EXPECT_EQ(next.length, 1000u);
}

// An upgrade (and a frame) pipelined behind a file, in one write: the 101
// comes only after the last byte of the file, then the echo.
TEST_F(StaticStream, UpgradeBehindAFileWaitsForIt) {
  start();
  WsClient c(st->port());
  const std::string upgrade =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ASSERT_TRUE(c.write_all(get("/big.bin", "Range: bytes=0-2999999\r\n") + upgrade +
                          WsClient::masked_frame(Opcode::Text, "after the file")));
  CheckedResponse file = read_checked_response(c, 0);
  EXPECT_EQ(file.status(), 206);
  EXPECT_TRUE(file.complete()) << file.received;
  auto up = c.read_http_response();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->substr(0, 12), "HTTP/1.1 101");
  EXPECT_EQ(c.read_text(), "after the file");
}

// A client that sends its requests and half-closes (shutdown SHUT_WR, as
// `nc -N` does) gets every answer before the server closes: the FIN is not
// a reason to drop responses still queued or requests still waiting.
TEST_F(StaticStream, HalfClosedClientGetsEveryResponse) {
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  start(cfg);
  TcpClient c(st->port());
  constexpr int kRequests = 400;
  std::string all = get("/big.bin", "Range: bytes=0-299999\r\n");
  for (int i = 0; i < kRequests; ++i) all += get("/small.bin");
  ASSERT_TRUE(c.write_all(all));
  ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
  CheckedResponse file = read_checked_response(c, 0);
  EXPECT_EQ(file.status(), 206);
  EXPECT_TRUE(file.complete()) << file.received;
  int answered = 0;
  for (; answered < kRequests; ++answered) {
    CheckedResponse r = read_checked_response(c, 0);
    if (r.status() != 200 || !r.complete()) break;
  }
  EXPECT_EQ(answered, kRequests);
  EXPECT_TRUE(c.wait_eof()) << "the server kept the half-closed connection open";
}

// The file shrinks while it is sent: the response ends short of its
// Content-Length and the connection closes; what came is the file's bytes.
TEST_F(StaticStream, FileThatShrinksWhileSentEndsTheConnection) {
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  start(cfg);
  TcpClient c(st->port());
  c.set_receive_buffer(16384);
  ASSERT_TRUE(c.write_all(get("/big.bin")));
  ASSERT_TRUE(c.fill(200000));  // the download is under way
  fs::resize_file(base / "big.bin", 0);
  CheckedResponse r = read_checked_response(c, 0);
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.length, kBig);
  EXPECT_TRUE(r.eof) << "the response was not cut";
  EXPECT_LT(r.received, kBig / 2);
  EXPECT_EQ(r.mismatch, UINT64_MAX) << "wrong bytes before the cut";
  // A new request for it gets the file as it is now.
  TcpClient again(st->port());
  ASSERT_TRUE(again.write_all(get("/big.bin")));
  auto now = again.read_http_response();
  ASSERT_TRUE(now);
  EXPECT_EQ(header(*now, "Content-Length"), "0");
}

// A client that asks for a file and stops reading is cut off once no byte
// has moved for the idle timeout (the server closes the file); others are
// served meanwhile.
TEST_F(StaticStream, StalledDownloadIsCutAfterTheIdleTimeout) {
  ServerConfig cfg;
  cfg.socket_send_buffer = 16384;
  cfg.idle_timeout_ms = 300;
  cfg.handshake_timeout_ms = 300;
  start(cfg);
  TcpClient stalled(st->port());
  stalled.set_receive_buffer(16384);
  ASSERT_TRUE(stalled.write_all(get("/big.bin")));
  ASSERT_TRUE(stalled.fill(1));
  TcpClient other(st->port());
  ASSERT_TRUE(other.write_all(get("/small.bin")));
  EXPECT_TRUE(read_checked_response(other, 0).complete());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_until([&] { return descriptors_open_to(base / "big.bin") == 0; }, 5000))
      << "the stalled download still holds the file";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(200)) << "cut before the timeout";
  // Reading now drains what was in flight, then the connection ends.
  CheckedResponse r = read_checked_response(stalled, 0, 5000);
  EXPECT_TRUE(r.eof);
  EXPECT_LT(r.received, kBig / 2);
  EXPECT_EQ(r.mismatch, UINT64_MAX);
}

}  // namespace
