// The server on a TLS port, end to end over 127.0.0.1 with OpenSSL's client:
// WebSocket and static files over one port, close_notify, the hostile
// clients of the handshake (silent, byte by byte, plain HTTP, garbage) with
// a good client served meanwhile, the connection limit, certificate reload
// under live connections, and two loops sharing sessions and the reload.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "support/test_certs.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;
using namespace std::string_literals;

namespace {

class LogHandler : public RecordingHandler {
 public:
  void on_log(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back({level, std::string(message)});
  }
  size_t count(std::string_view part) {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (auto& l : lines) n += l.second.find(part) != std::string::npos;
    return n;
  }
  std::mutex mu;
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class TlsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certs.ok());
    ASSERT_TRUE(certs.make_leaf("a", 0xA1));
    ASSERT_TRUE(certs.make_leaf("b", 0xB2));
    std::filesystem::create_directory(certs.file("www"));
    std::ofstream(certs.file("www/index.html")) << "<h1>over tls</h1>";
    h.on_msg = [this](ConnId id, Opcode op, const char* d, size_t n) {
      h.server->send(id, op, std::string_view(d, n));
    };
  }
  ServerConfig config() {
    ServerConfig c;
    c.tls.cert_file = certs.file("a.pem");
    c.tls.key_file = certs.file("a.key");
    c.static_dir = certs.file("www");
    return c;
  }
  void start(ServerConfig c) {
    st = std::make_unique<ServerThread>(c, &h);
    ASSERT_NE(st->server, nullptr) << st->error;
    h.server = st->server.get();
  }
  // What a browser offers: the test CA trusted, ALPN http/1.1.
  TlsClient::Options trust() {
    TlsClient::Options o;
    o.ca_file = certs.ca_cert();
    o.alpn = "http/1.1";
    return o;
  }
  // wss:// to the server: TLS, then the upgrade.
  bool connect(WsClient& w) { return w.connect_tls(st->port(), trust()); }
  // TLS only, no HTTP yet.
  bool tls_only(WsClient& w) { return w.open(st->port()) && w.start_tls(trust()); }
  // A well-behaved client: TLS, upgrade, one echo.
  void expect_served(const std::string& text = "still served") {
    WsClient w;
    ASSERT_TRUE(connect(w)) << w.error();
    ASSERT_TRUE(w.send_text(text));
    EXPECT_EQ(w.read_text(), text);
  }

  TestCerts certs;
  LogHandler h;
  std::unique_ptr<ServerThread> st;
};

TEST_F(TlsE2E, WebSocketEchoOverTls) {
  start(config());
  WsClient w;
  ASSERT_TRUE(connect(w)) << w.error();
  EXPECT_EQ(w.tls()->peer_serial(), "A1");
  for (std::string msg : {std::string("hi"), std::string(4096, 'x'), std::string(200000, 'y')}) {
    ASSERT_TRUE(w.send_text(msg));
    EXPECT_EQ(w.read_text(), msg);
  }
}

// A burst far above one turn's budget (kMessagesPerTurn) in a few records:
// the rest of each read is kept and handled over later turns, in order and
// complete, and another client is served in between.
TEST_F(TlsE2E, BurstOverManyTurnsArrivesInOrder) {
  start(config());
  WsClient flood, other;
  ASSERT_TRUE(connect(flood));
  ASSERT_TRUE(connect(other));
  constexpr int kBurst = 3000;
  std::string burst;
  for (int i = 0; i < kBurst; ++i) burst += WsClient::masked_frame(Opcode::Text, "m" + std::to_string(i));
  ASSERT_TRUE(flood.write_all(burst));  // ~30 KB: two records
  ASSERT_TRUE(other.send_text("me too"));
  EXPECT_EQ(other.read_text(), "me too");
  for (int i = 0; i < kBurst; ++i) {
    std::string got = flood.read_text();
    ASSERT_EQ(got, "m" + std::to_string(i));
  }
}

TEST_F(TlsE2E, StaticFilesAndUpgradeOnOnePort) {
  start(config());
  WsClient w;
  ASSERT_TRUE(tls_only(w)) << w.error();
  ASSERT_TRUE(w.write_all("GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto resp = w.read_http_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->rfind("HTTP/1.1 200", 0), 0u) << *resp;
  EXPECT_NE(resp->find("<h1>over tls</h1>"), std::string::npos);
  // Same connection, keep-alive, then the upgrade.
  EXPECT_EQ(w.handshake("/"), 101);
  ASSERT_TRUE(w.send_text("after the page"));
  EXPECT_EQ(w.read_text(), "after the page");
}

// A file far larger than the HTTP window streams over TLS in chunks, the
// records following the socket as it drains; a small socket buffer makes
// the transport hold ciphertext between writable edges.
TEST_F(TlsE2E, LargeStaticFileStreamsOverTls) {
  std::string big(3 * 1024 * 1024 + 123, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + (i * 7) % 26);
  std::ofstream(certs.file("www/big.bin"), std::ios::binary) << big;
  ServerConfig c = config();
  c.socket_send_buffer = 16 * 1024;
  start(c);
  WsClient w;
  ASSERT_TRUE(tls_only(w)) << w.error();
  ASSERT_TRUE(w.write_all("GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto resp = w.read_http_response();
  ASSERT_TRUE(resp) << w.error();
  ASSERT_EQ(resp->rfind("HTTP/1.1 200", 0), 0u) << resp->substr(0, 200);
  const std::string body = resp->substr(resp->find("\r\n\r\n") + 4);
  EXPECT_EQ(body.size(), big.size());
  EXPECT_TRUE(body == big);
  // Keep-alive: the connection serves the next request after the file.
  ASSERT_TRUE(w.write_all("GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto next = w.read_http_response();
  ASSERT_TRUE(next);
  EXPECT_NE(next->find("<h1>over tls</h1>"), std::string::npos);
}

TEST_F(TlsE2E, ServerCloseSendsCloseFrameThenCloseNotify) {
  start(config());
  WsClient w;
  ASSERT_TRUE(connect(w));
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  ConnId id = h.events()[0].id;
  ASSERT_EQ(st->server->close(id, 1000, "bye"), kOk);
  auto f = w.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Close);
  // Our close reply; the server then ends TLS with close_notify.
  const uint8_t mask[4] = {9, 9, 9, 9};
  ASSERT_TRUE(w.write_all(protocol::encode_masked_frame(Opcode::Close, protocol::close_payload(1000, ""), mask, true)));
  EXPECT_TRUE(w.wait_eof());
  EXPECT_TRUE(w.close_notified()) << w.error();
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
}

TEST_F(TlsE2E, ClientCloseNotifyEndsTheConnection) {
  start(config());
  WsClient w;
  ASSERT_TRUE(connect(w));
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  SSL_shutdown(w.tls()->ssl());
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
  EXPECT_EQ(h.events().back().code, 1006);  // no WebSocket close frame came
}

TEST_F(TlsE2E, SilentClientIsClosedAtTheHandshakeTimeout) {
  ServerConfig c = config();
  c.handshake_timeout_ms = 300;
  start(c);
  TcpClient silent(st->port());
  ASSERT_TRUE(silent.ok());
  expect_served();
  EXPECT_TRUE(silent.wait_eof(3000));
  EXPECT_TRUE(silent.buffer().empty());  // nothing to say in plain text
}

// A ClientHello dribbled one byte at a time: each byte is progress, but the
// deadline set at accept is not extended by it.
TEST_F(TlsE2E, ByteByByteClientHelloHitsTheDeadline) {
  ServerConfig c = config();
  c.handshake_timeout_ms = 400;
  start(c);
  // A real ClientHello, captured from OpenSSL's client over a socket pair.
  std::string hello;
  {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    std::thread t([&] {
      TlsClient cl;
      TlsClient::Options o;
      cl.connect(sv[1], o, 300);  // times out: nobody answers
    });
    char buf[4096];
    timeval tv{2, 0};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recv(sv[0], buf, sizeof buf, 0);
    ASSERT_GT(n, 10);
    hello.assign(buf, size_t(n));
    t.join();
    ::close(sv[0]);
  }
  TcpClient slow(st->port());
  auto start_t = std::chrono::steady_clock::now();
  bool closed = false;
  for (size_t i = 0; i + 1 < hello.size() && !closed; ++i) {
    if (!slow.write_all(hello.substr(i, 1))) break;
    pollfd p{slow.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) closed = slow.wait_eof(10);
    if (std::chrono::steady_clock::now() - start_t > std::chrono::seconds(5)) break;
  }
  if (!closed) closed = slow.wait_eof(3000);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start_t, std::chrono::seconds(4));
  expect_served();
}

TEST_F(TlsE2E, PlainHttpGetsAClearAnswerAndOneDebugLine) {
  start(config());
  TcpClient plain(st->port());
  ASSERT_TRUE(plain.write_all("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  auto resp = plain.read_http_response();
  ASSERT_TRUE(resp) << plain.error();
  EXPECT_EQ(resp->rfind("HTTP/1.1 400", 0), 0u) << *resp;
  EXPECT_NE(resp->find("use https://"), std::string::npos);
  EXPECT_TRUE(plain.wait_eof());
  expect_served();
  EXPECT_EQ(h.count("plain HTTP"), 1u);
  std::lock_guard<std::mutex> lock(h.mu);
  for (auto& l : h.lines) {
    if (l.second.find("plain HTTP") != std::string::npos) {
      EXPECT_EQ(l.first, LogLevel::Debug);
    }
  }
}

TEST_F(TlsE2E, GarbageRecordsGetAnAlertAndAClose) {
  start(config());
  TcpClient junk(st->port());
  // A record header saying "handshake, 300 bytes", then noise.
  std::string bad = "\x16\x03\x01\x01\x2c"s;
  bad += std::string(300, '\x5a');
  ASSERT_TRUE(junk.write_all(bad));
  EXPECT_TRUE(junk.wait_eof());
  ASSERT_GE(junk.buffer().size(), 1u);
  EXPECT_EQ(uint8_t(junk.buffer()[0]), 21);  // an alert record
  expect_served();
  EXPECT_EQ(h.count("TLS handshake"), 1u);
}

TEST_F(TlsE2E, GarbageAfterTheHandshakeIsAnAlertToo) {
  start(config());
  WsClient w;
  ASSERT_TRUE(connect(w));
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  // Raw bytes under OpenSSL: an application-data record that fails to decrypt.
  std::string rec = "\x17\x03\x03\x00\x20"s + std::string(32, '\x01');
  ASSERT_EQ(::send(w.fd(), rec.data(), rec.size(), MSG_NOSIGNAL), ssize_t(rec.size()));
  ASSERT_TRUE(h.wait_count(Event::Close, 1));
  EXPECT_EQ(h.events().back().code, 1006);
  expect_served();
}

TEST_F(TlsE2E, Tls11ClientIsRefusedOthersServed) {
  start(config());
  TcpClient old(st->port());
  TlsClient::Options o = trust();
  o.max_version = TLS1_1_VERSION;
  EXPECT_FALSE(old.start_tls(o));
  EXPECT_NE(old.error().find("alert"), std::string::npos) << old.error();
  expect_served();
}

// The server's order (AES-128-GCM first) wins over a client that prefers
// AES-256, except that a client listing ChaCha20 first (no AES hardware)
// gets ChaCha20; in TLS 1.3 and in TLS 1.2.
TEST_F(TlsE2E, CipherChoiceFollowsTheServerButLetsChaChaFirstClientsHaveIt) {
  start(config());
  struct Case {
    int max_version;
    std::string suites, ciphers, expect;
  };
  const std::string aes12 = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
  const std::string chacha12 = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" + aes12;
  for (const Case& k : {
           Case{0, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256", "", "TLS_AES_128_GCM_SHA256"},
           Case{0, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", "", "TLS_CHACHA20_POLY1305_SHA256"},
           Case{TLS1_2_VERSION, "", aes12, "AES128-GCM-SHA256"},
           Case{TLS1_2_VERSION, "", chacha12, "CHACHA20-POLY1305"},
       }) {
    WsClient w;
    TlsClient::Options o = trust();
    o.ciphersuites = k.suites;
    o.ciphers = k.ciphers;
    o.max_version = k.max_version;
    ASSERT_TRUE(w.open(st->port()));
    ASSERT_TRUE(w.start_tls(o)) << w.error();
    EXPECT_NE(w.tls()->cipher().find(k.expect), std::string::npos)
        << "offered " << k.suites << k.ciphers << ", got " << w.tls()->cipher();
    ASSERT_EQ(w.handshake("/"), 101);
    ASSERT_TRUE(w.send_text("chosen"));
    EXPECT_EQ(w.read_text(), "chosen");
  }
}

TEST_F(TlsE2E, ConnectionLimitAnswers503OverTls) {
  ServerConfig c = config();
  c.max_connections = 1;
  start(c);
  WsClient first;
  ASSERT_TRUE(connect(first));
  WsClient second;
  ASSERT_TRUE(tls_only(second)) << second.error();
  auto resp = second.read_http_response();
  ASSERT_TRUE(resp) << second.error();
  EXPECT_EQ(resp->rfind("HTTP/1.1 503", 0), 0u) << *resp;
  EXPECT_TRUE(second.wait_eof());
  EXPECT_TRUE(second.close_notified()) << second.error();
  ASSERT_TRUE(first.send_text("first still here"));
  EXPECT_EQ(first.read_text(), "first still here");
}

TEST_F(TlsE2E, ReloadKeepsLiveConnectionsAndServesTheNewCertificate) {
  start(config());
  WsClient old_conn;
  ASSERT_TRUE(connect(old_conn));
  EXPECT_EQ(old_conn.tls()->peer_serial(), "A1");
  std::string err;
  // A bad pair is refused with the reason; the old one stays.
  EXPECT_EQ(st->server->reload_tls(certs.file("a.pem"), certs.file("b.key"), "", &err), kEInval);
  EXPECT_NE(err.find("key values mismatch"), std::string::npos) << err;
  WsClient still_a;
  ASSERT_TRUE(connect(still_a));
  EXPECT_EQ(still_a.tls()->peer_serial(), "A1");
  // From this (non-loop) thread while the loop runs.
  ASSERT_EQ(st->server->reload_tls(certs.file("b.pem"), certs.file("b.key"), "", &err), kOk) << err;
  WsClient fresh;
  ASSERT_TRUE(connect(fresh));
  EXPECT_EQ(fresh.tls()->peer_serial(), "B2");
  for (WsClient* w : {&old_conn, &still_a, &fresh}) {
    ASSERT_TRUE(w->send_text("after reload"));
    EXPECT_EQ(w->read_text(), "after reload");
  }
}

// Several loops share one TLS context: a session from one loop resumes on
// the other, and a reload reaches every loop at once. Handoff makes the
// loops alternate (each connection to the one with fewer): each client
// here stays open, so consecutive ones land on different loops.
TEST_F(TlsE2E, SeveralLoopsResumeEachOthersSessionsAndReloadTogether) {
  ServerConfig c = config();
  c.threads = 2;
  c.accept_mode = ServerConfig::AcceptMode::Handoff;
  start(c);
  auto loop_of_open = [this](size_t k) {  // the loop of the k-th connection opened
    size_t seen = 0;
    for (const Event& e : h.events())
      if (e.kind == Event::Open && seen++ == k) return int(e.id % 2);
    return -1;
  };
  std::vector<std::unique_ptr<WsClient>> open;
  auto echo_over = [&](TlsClient::Options o, const char* serial) {
    open.push_back(std::make_unique<WsClient>());
    WsClient& w = *open.back();
    if (!w.connect_tls(st->port(), o)) return std::string("connect: ") + w.error();
    if (!w.send_text("hi") || w.read_text() != "hi") return std::string("no echo");
    if (w.tls()->peer_serial() != serial) return "serial " + w.tls()->peer_serial();
    return std::string();
  };
  ASSERT_EQ(echo_over(trust(), "A1"), "");  // loop 0; the echo brought the ticket along
  SSL_SESSION* session = open.back()->tls()->session();
  ASSERT_NE(session, nullptr);
  TlsClient::Options again = trust();
  again.session = session;
  for (int k = 1; k <= 4; ++k) {  // loops 1, 0, 1, 0
    ASSERT_EQ(echo_over(again, "A1"), "") << "connection " << k;
    EXPECT_TRUE(open.back()->tls()->reused()) << "connection " << k << " did not resume";
  }
  SSL_SESSION_free(session);
  ASSERT_TRUE(h.wait_count(Event::Open, 5));
  for (size_t k = 0; k < 5; ++k) EXPECT_EQ(loop_of_open(k), int(k % 2)) << "connection " << k;
  std::string err;
  ASSERT_EQ(st->server->reload_tls(certs.file("b.pem"), certs.file("b.key"), "", &err), kOk) << err;
  ASSERT_EQ(echo_over(trust(), "B2"), "");  // loop 1
  ASSERT_EQ(echo_over(trust(), "B2"), "");  // loop 0
  ASSERT_TRUE(h.wait_count(Event::Open, 7));
  EXPECT_EQ(loop_of_open(5), 1);
  EXPECT_EQ(loop_of_open(6), 0);
}

// The last record and the FIN in one segment (the client wrote and closed
// at once, without close_notify): the message is handled and the
// connection closed then, not at the idle timeout (see the plain case in
// test_hostile_e2e.cpp).
TEST_F(TlsE2E, LastRecordAndFinInOneSegmentAreBothTakenIn) {
  ServerConfig c = config();
  c.idle_timeout_ms = 60000;
  start(c);
  WsClient w;
  ASSERT_TRUE(connect(w)) << w.error();
  int on = 1, off = 0;
  ::setsockopt(w.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  ASSERT_TRUE(w.send_text("last words"));
  ASSERT_EQ(::shutdown(w.fd(), SHUT_WR), 0);
  ::setsockopt(w.fd(), IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  EXPECT_EQ(w.read_text(), "last words");
  ASSERT_TRUE(h.wait_count(Event::Close, 1)) << "the server kept the connection after its FIN";
  EXPECT_EQ(h.events().back().code, 1006);
  expect_served();
}

TEST_F(TlsE2E, ReloadWithoutTlsIsAStateError) {
  ServerConfig c;
  start(c);
  std::string err;
  EXPECT_EQ(st->server->reload_tls("", "", "", &err), kEState);
  EXPECT_FALSE(err.empty());
}

TEST_F(TlsE2E, BadCertificateFailsCreateBeforeBinding) {
  ServerConfig c = config();
  c.tls.key_file = certs.file("b.key");
  std::string err;
  int code = 0;
  auto s = Server::create(c, &h, &err, &code);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(code, kEInval);
  EXPECT_NE(err.find(certs.file("b.key")), std::string::npos) << err;
}

TEST_F(TlsE2E, GracefulStopSendsGoingAwayOverTls) {
  start(config());
  WsClient w;
  ASSERT_TRUE(connect(w));
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  std::thread stopper([&] { st->stop(); });
  auto f = w.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Close);
  EXPECT_EQ((uint8_t(f->payload[0]) << 8) | uint8_t(f->payload[1]), 1001);
  const uint8_t mask[4] = {9, 9, 9, 9};
  w.write_all(protocol::encode_masked_frame(Opcode::Close, protocol::close_payload(1001, ""), mask, true));
  stopper.join();
}

}  // namespace
