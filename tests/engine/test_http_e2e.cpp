// End-to-end HTTP front tests over real sockets: static files, keep-alive,
// traversal attempts, and every status the upgrade path can answer.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;

namespace {

struct HttpFixture : ::testing::Test {
  std::string root, outside;
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;

  void SetUp() override {
    char tmpl[] = "/tmp/chatws-http-XXXXXX";
    std::string base = mkdtemp(tmpl);
    root = base + "/www";
    outside = base + "/secret.txt";
    mkdir(root.c_str(), 0755);
    mkdir((root + "/sub").c_str(), 0755);
    std::ofstream(root + "/index.html") << "<h1>chat</h1>";
    std::ofstream(root + "/app.js") << "console.log(1)";
    std::ofstream(root + "/sub/style.css") << "body{}";
    std::ofstream(outside) << "top secret";
    ASSERT_EQ(symlink(outside.c_str(), (root + "/leak.txt").c_str()), 0);
    ServerConfig cfg;
    cfg.static_dir = root;
    cfg.subprotocols = {"json"};
    cfg.allowed_origins = {"http://good.example"};
    cfg.max_request_size = 1024;
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
  }
  void TearDown() override {
    st.reset();
    std::string cmd = "rm -rf '" + root.substr(0, root.size() - 4) + "'";
    (void)std::system(cmd.c_str());
  }

  // One request on a fresh connection; returns the whole response.
  std::string get(const std::string& request_text) {
    TcpClient c(st->port());
    EXPECT_TRUE(c.write_all(request_text));
    auto r = c.read_http_response();
    return r ? *r : std::string("<no response>");
  }
  static std::string req(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
  }
  static int status(const std::string& resp) {
    return resp.size() > 12 ? std::atoi(resp.c_str() + 9) : 0;
  }
  static std::string ws_headers(const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==",
                                const std::string& version = "13") {
    return "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + key +
           "\r\nSec-WebSocket-Version: " + version + "\r\nOrigin: http://good.example\r\n";
  }
};

TEST_F(HttpFixture, ServesIndexWithContentType) {
  std::string r = get(req("/"));
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(r.find("Content-Type: text/html"), std::string::npos);
  EXPECT_NE(r.find("<h1>chat</h1>"), std::string::npos);
  r = get(req("/app.js"));
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(r.find("javascript"), std::string::npos);
  r = get(req("/sub/style.css?v=3"));
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(r.find("text/css"), std::string::npos);
}

TEST_F(HttpFixture, KeepAliveServesSeveralRequestsOnOneConnection) {
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all(req("/") + req("/app.js")));  // pipelined
  auto a = c.read_http_response();
  auto b = c.read_http_response();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->find("<h1>chat</h1>"), std::string::npos);
  EXPECT_NE(b->find("console.log"), std::string::npos);
  ASSERT_TRUE(c.write_all(req("/sub/style.css")));
  auto d = c.read_http_response();
  ASSERT_TRUE(d);
  EXPECT_EQ(status(*d), 200);
}

TEST_F(HttpFixture, TraversalAttemptsNeverLeaveTheRoot) {
  for (const char* target : {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2e/secret.txt",
                             "/sub/../../secret.txt", "/..%2fsecret.txt", "/leak.txt",
                             "/sub/%2e%2e/%2e%2e/secret.txt"}) {
    std::string r = get(req(target));
    int s = status(r);
    EXPECT_TRUE(s == 400 || s == 403 || s == 404) << target << " -> " << r;
    EXPECT_EQ(r.find("top secret"), std::string::npos) << target;
  }
}

TEST_F(HttpFixture, HeadHasNoBodyAndOtherMethodsGet405) {
  TcpClient c(st->port());
  c.expect_head_response(true);
  ASSERT_TRUE(c.write_all("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_http_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(status(*r), 200);
  EXPECT_EQ(r->find("<h1>"), std::string::npos);
  std::string p = get("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(status(p), 405);
  EXPECT_NE(p.find("Allow: GET, HEAD"), std::string::npos);
}

TEST_F(HttpFixture, OversizedAndMalformedRequests) {
  EXPECT_EQ(status(get(req("/", "X-Big: " + std::string(2000, 'a') + "\r\n"))), 431);
  EXPECT_EQ(status(get("GARBAGE\r\n\r\n")), 400);
  EXPECT_EQ(status(get("GET / HTTP/2.0\r\nHost: x\r\n\r\n")), 505);
  // Oversized head that never ends: answered without waiting for CRLFCRLF.
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all("GET / HTTP/1.1\r\nX: " + std::string(3000, 'b')));
  auto r = c.read_http_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(status(*r), 431);
}

// RFC 9112 3.2: an HTTP/1.1 request without Host is a 400, for a file as
// for an upgrade, and the connection is closed; HTTP/1.0 needs no Host.
TEST_F(HttpFixture, Http11WithoutHostIs400) {
  TcpClient c(st->port());
  ASSERT_TRUE(c.write_all("GET /index.html HTTP/1.1\r\n\r\n"));
  auto r = c.read_http_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(status(*r), 400);
  EXPECT_NE(r->find("missing Host header"), std::string::npos) << *r;
  EXPECT_EQ(r->find("<h1>chat</h1>"), std::string::npos);
  EXPECT_TRUE(c.wait_eof());
  std::string u = get("GET / HTTP/1.1\r\n" + ws_headers() + "\r\n");
  EXPECT_EQ(status(u), 400);
  EXPECT_NE(u.find("missing Host header"), std::string::npos) << u;
  EXPECT_EQ(status(get("GET /index.html HTTP/1.0\r\n\r\n")), 200);
}

TEST_F(HttpFixture, UpgradeErrorsGetSpecificStatuses) {
  EXPECT_EQ(status(get(req("/", ws_headers("short")))), 400);
  std::string r = get(req("/", ws_headers("dGhlIHNhbXBsZSBub25jZQ==", "8")));
  EXPECT_EQ(status(r), 426);
  EXPECT_NE(r.find("Sec-WebSocket-Version: 13"), std::string::npos);
  std::string bad_origin = ws_headers();
  bad_origin.replace(bad_origin.find("good"), 4, "evil");
  EXPECT_EQ(status(get(req("/", bad_origin))), 403);
  EXPECT_EQ(status(get("POST / HTTP/1.1\r\nHost: x\r\n" + ws_headers() + "\r\n")), 405);
  EXPECT_EQ(status(get("GET / HTTP/1.1\r\n" + ws_headers() + "\r\n")), 400);  // no Host
  // And a good one, choosing the configured subprotocol.
  r = get(req("/", ws_headers() + "Sec-WebSocket-Protocol: chat, json\r\n"));
  EXPECT_EQ(status(r), 101);
  EXPECT_NE(r.find("Sec-WebSocket-Protocol: json\r\n"), std::string::npos);
}

TEST(HttpNoStaticDir, PlainGetToWebSocketOnlyServerGets426) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  TcpClient c(st.port());
  ASSERT_TRUE(c.write_all("GET /chat HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_http_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->substr(9, 3), "426");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpTimeouts, SlowHeadersAreCutOffAfterTheHandshakeTimeout) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.handshake_timeout_ms = 200;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  TcpClient slow(st.port());
  ASSERT_TRUE(slow.write_all("GET / HTTP/1.1\r\nHo"));
  auto r = slow.read_http_response(3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->substr(9, 3), "408");
  EXPECT_TRUE(slow.wait_eof(3000));
  // Others are unaffected.
  WsClient ok(st.port());
  EXPECT_EQ(ok.handshake(), 101);
}

TEST(HttpLimits, ConnectionsOverTheLimitGet503AndListenerKeepsWorking) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.max_connections = 2;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  WsClient a(st.port()), b(st.port());
  ASSERT_EQ(a.handshake(), 101);
  ASSERT_EQ(b.handshake(), 101);
  WsClient c(st.port());
  EXPECT_EQ(c.handshake(), 503);
  EXPECT_TRUE(c.wait_eof());
  a.close();
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
  WsClient d(st.port());
  EXPECT_EQ(d.handshake(), 101);
}

}  // namespace
