// The TLS transport over a real socket pair, against OpenSSL's own client
// on a thread: handshake, gathered output in few records, pending ciphertext
// when the kernel is full, close_notify both ways, alerts for garbage,
// plain HTTP detected, old versions and renegotiation refused, resumption.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "support/test_certs.h"
#include "support/tls_client.h"

using namespace chatws::net;
using chatws::test::TestCerts;
using chatws::test::TlsClient;

namespace {

using Clock = std::chrono::steady_clock;

class TlsTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certs.ok());
    ASSERT_TRUE(certs.make_leaf("a", 0xA1));
    TlsConfig c;
    c.cert_file = certs.file("a.pem");
    c.key_file = certs.file("a.key");
    std::string err;
    ctx = TlsContext::create(c, &err);
    ASSERT_NE(ctx, nullptr) << err;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    server_fd = sv[0];
    client_fd = sv[1];
    int flags = fcntl(client_fd, F_GETFL);
    fcntl(client_fd, F_SETFL, flags & ~O_NONBLOCK);
    t.reset(TlsTransport::create(ctx->new_ssl(), server_fd, &staging));
    ASSERT_NE(t, nullptr);
  }
  void TearDown() override {
    release = true;
    if (client_thread.joinable()) client_thread.join();
    t.reset();
    if (client_thread.joinable()) client_thread.join();
    ::close(server_fd);
  }

  // Runs the server side of the handshake until it leaves Again (bounded).
  TlsHandshake drive_handshake(std::string* why = nullptr) {
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
      TlsHandshake h = t->handshake(why);
      if (h != TlsHandshake::Again) return h;
      pollfd p{server_fd, POLLIN, 0};
      ::poll(&p, 1, 100);
    }
    return TlsHandshake::Again;
  }
  // Reads plaintext on the server until `n` bytes arrived or the stream ends.
  std::string server_read(size_t n, ssize_t* last = nullptr) {
    std::string got;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (got.size() < n && Clock::now() < deadline) {
      char buf[65536];
      ssize_t r = t->read(buf, sizeof buf);
      if (last) *last = r;
      if (r > 0) {
        got.append(buf, size_t(r));
      } else if (r == kAgain) {
        pollfd p{server_fd, POLLIN, 0};
        ::poll(&p, 1, 100);
      } else {
        break;
      }
    }
    return got;
  }
  void start_client(std::function<void(TlsClient&)> body, TlsClient::Options o = {}) {
    if (o.ca_file.empty()) o.ca_file = certs.ca_cert();
    client_thread = std::thread([this, body, o] {
      TlsClient c;
      client_ok = c.connect(client_fd, o);
      client_error = c.error();
      if (client_ok) body(c);
      client_done = true;
      // Keep the socket open until the server side is done with it (a
      // close now could fail the server's last handshake write).
      auto until = Clock::now() + std::chrono::seconds(5);
      while (!release && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }

  TestCerts certs;
  std::unique_ptr<TlsContext> ctx;
  TlsStaging staging;
  std::unique_ptr<TlsTransport> t;
  int server_fd = -1, client_fd = -1;
  std::thread client_thread;
  std::atomic<bool> client_ok{false}, client_done{false}, release{false};
  std::string client_error;
};

TEST_F(TlsTransportTest, HandshakeThenBothDirections) {
  std::string received;
  start_client([&](TlsClient& c) {
    c.write_all("hello from the client");
    if (c.fill(5)) received = c.buffer().substr(0, 5);
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  EXPECT_TRUE(t->established());
  EXPECT_EQ(server_read(21), "hello from the client");
  iovec iov{const_cast<char*>("howdy"), 5};
  uint8_t scratch[16384];
  EXPECT_EQ(t->write_gathered(&iov, 1, scratch), 5);
  release = true;
  client_thread.join();
  EXPECT_TRUE(client_ok) << client_error;
  EXPECT_EQ(received, "howdy");
  EXPECT_TRUE(staging.bytes.empty());
}

// A loopback TCP connection (kernel TLS needs TCP): {server end
// non-blocking, client end blocking}.
bool tcp_pair(int* server, int* client) {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bool ok = l >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 1) == 0 &&
            ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  *client = ok ? ::socket(AF_INET, SOCK_STREAM, 0) : -1;
  ok = ok && *client >= 0 && ::connect(*client, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  *server = ok ? ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK) : -1;
  if (l >= 0) ::close(l);
  return ok && *server >= 0;
}

// SSL_OP_ENABLE_KTLS asked for where the kernel cannot take the keys (a
// TCP connection on a kernel without the "tls" ULP, as on the machine this
// was written on; elsewhere a Unix socket, which has no ULPs): OpenSSL asks
// the BIO to switch kTLS on, the socket BIO's setsockopt fails, and the
// records stay in user space, both ways, with nothing else changed.
TEST_F(TlsTransportTest, KernelTlsRefusedFallsBackToUserSpaceRecords) {
  TlsConfig c;
  c.cert_file = certs.file("a.pem");
  c.key_file = certs.file("a.key");
  c.ktls = KernelTls::On;
  std::string err;
  t.reset();
  ctx = TlsContext::create(c, &err);
  ASSERT_NE(ctx, nullptr) << err;
  EXPECT_TRUE(ctx->ktls());
  if (!kernel_tls_available()) {
    ::close(server_fd);
    ::close(client_fd);
    ASSERT_TRUE(tcp_pair(&server_fd, &client_fd));
  }
  t.reset(TlsTransport::create(ctx->new_ssl(), server_fd, &staging));
  std::string received;
  start_client([&](TlsClient& cl) {
    cl.write_all("hello over TCP");
    if (cl.fill(5)) received = cl.buffer().substr(0, 5);
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  EXPECT_TRUE(t->ktls_attempted());  // OpenSSL did try
  EXPECT_FALSE(t->ktls_send());
  EXPECT_FALSE(t->ktls_recv());
  EXPECT_EQ(server_read(14), "hello over TCP");
  iovec iov{const_cast<char*>("howdy"), 5};
  uint8_t scratch[16384];
  EXPECT_EQ(t->write_gathered(&iov, 1, scratch), 5);
  release = true;
  client_thread.join();
  EXPECT_TRUE(client_ok) << client_error;
  EXPECT_EQ(received, "howdy");
  EXPECT_TRUE(t->shutdown());
}

// Auto (the default) asks OpenSSL for kTLS only where the kernel offers it;
// without it the BIO is never asked.
TEST_F(TlsTransportTest, KernelTlsAutoFollowsTheKernel) {
  EXPECT_EQ(ctx->ktls(), kernel_tls_available());
  start_client([&](TlsClient&) {});
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  if (!kernel_tls_available()) {
    EXPECT_FALSE(t->ktls_attempted());
  }
}

// Small frames of one flush go out as one record, not one record each.
TEST_F(TlsTransportTest, GatheredFramesShareRecords) {
  std::atomic<int> app_records{0};
  std::string received;
  start_client([&](TlsClient& c) {
    SSL_set_msg_callback_arg(c.ssl(), &app_records);
    SSL_set_msg_callback(c.ssl(), [](int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
      // The inner type of each TLS 1.3 record received: 23 is application
      // data (the session ticket is a record too, of type 22).
      if (!write_p && content_type == SSL3_RT_INNER_CONTENT_TYPE && len >= 1 &&
          static_cast<const uint8_t*>(buf)[0] == SSL3_RT_APPLICATION_DATA)
        ++*static_cast<std::atomic<int>*>(arg);
    });
    if (c.fill(100 * 32 + 100000)) received = c.buffer();
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  std::string small(32, 's');
  iovec iov[100];
  for (auto& v : iov) v = {small.data(), small.size()};
  uint8_t scratch[16384];
  EXPECT_EQ(t->write_gathered(iov, 100, scratch), 3200);
  // 100000 bytes: whole 16 KiB records, 64 KiB per call.
  std::string big(100000, 'b');
  size_t off = 0;
  while (off < big.size()) {
    iovec one{big.data() + off, big.size() - off};
    ssize_t w = t->write_gathered(&one, 1, scratch);
    ASSERT_GT(w, 0);
    off += size_t(w);
    while (t->wants_write()) {
      pollfd p{server_fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      ASSERT_TRUE(t->flush());
    }
  }
  release = true;
  client_thread.join();
  ASSERT_TRUE(client_ok) << client_error;
  EXPECT_EQ(received, std::string(3200, 's') + big);
  // 1 record for the small frames + ceil(100000 / 16384) = 7 for the big one.
  EXPECT_EQ(app_records.load(), 1 + 7);
}

// The kernel takes part of the output: the rest waits in the transport (the
// plaintext is consumed) and goes out on later flushes, in order.
TEST_F(TlsTransportTest, PendingCiphertextWhenTheSocketIsFull) {
  int small = 4096;
  setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::atomic<bool> may_read{false};
  std::string received;
  const size_t total = 600000;
  start_client([&](TlsClient& c) {
    while (!may_read) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (c.fill(total)) received = c.buffer();
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  std::string data(total, '\0');
  for (size_t i = 0; i < total; ++i) data[i] = char('a' + i % 26);
  uint8_t scratch[16384];
  size_t off = 0;
  bool saw_pending = false;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while ((off < total || t->wants_write()) && Clock::now() < deadline) {
    if (t->wants_write()) {
      saw_pending = true;
      may_read = true;
      pollfd p{server_fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      ASSERT_TRUE(t->flush());
      continue;
    }
    iovec v{data.data() + off, total - off};
    ssize_t w = t->write_gathered(&v, 1, scratch);
    ASSERT_GT(w, 0);
    EXPECT_LE(size_t(w), TlsStaging::kPlainPerCall);
    off += size_t(w);
  }
  may_read = true;
  release = true;
  client_thread.join();
  EXPECT_TRUE(saw_pending);
  EXPECT_EQ(received.size(), total);
  EXPECT_TRUE(received == data);
}

// A read served wholly from records OpenSSL already holds has not looked
// at the socket: it must not report the socket drained. The event loop
// skips the edge of bytes that arrived meanwhile (the connection's turn was
// due anyway) and would never read them: Autobahn 9.4.2 and 9.6.2 over
// wss:// hung that way, with 300 KB sitting unread in the socket.
TEST_F(TlsTransportTest, ReadFromBufferedRecordsDoesNotClaimTheSocketDrained) {
  std::atomic<int> step{0};
  const std::string first(16000, 'a'), second(100, 'b');
  start_client([&](TlsClient& c) {
    c.write_all(first);  // one record
    while (step.load() == 0) std::this_thread::yield();
    c.write_all(second);  // in the server's socket once write_all returns
    step = 2;
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  // The first record, decrypted, partly read: the rest is buffered.
  char head[4096];
  ssize_t r = kAgain;
  for (auto until = Clock::now() + std::chrono::seconds(5); r == kAgain && Clock::now() < until;) {
    r = t->read(head, sizeof head);
    pollfd p{server_fd, POLLIN, 0};
    if (r == kAgain) ::poll(&p, 1, 100);
  }
  ASSERT_EQ(r, ssize_t(sizeof head));
  step = 1;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (step.load() != 2 && Clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(step.load(), 2);
  // The rest of the first record comes from OpenSSL's buffer; the second
  // record is still in the socket, so the socket is not drained.
  char buf[16000 - 4096];
  ASSERT_EQ(t->read(buf, sizeof buf), ssize_t(sizeof buf));
  EXPECT_FALSE(t->input_drained()) << "the second record would never be read";
  EXPECT_EQ(server_read(second.size()), second);
}

TEST_F(TlsTransportTest, ServerCloseNotifyReachesTheClient) {
  std::atomic<bool> notified{false};
  start_client([&](TlsClient& c) { notified = c.read_to_close_notify(); });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  EXPECT_TRUE(t->shutdown());
  EXPECT_TRUE(t->close_notify_sent());
  ::shutdown(server_fd, SHUT_WR);
  release = true;
  client_thread.join();
  EXPECT_TRUE(notified);
}

TEST_F(TlsTransportTest, ClientCloseNotifyIsACleanEnd) {
  start_client([&](TlsClient& c) { SSL_shutdown(c.ssl()); });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  ssize_t last = 1;
  server_read(1, &last);
  EXPECT_EQ(last, 0);
  EXPECT_TRUE(t->clean_close());
}

TEST_F(TlsTransportTest, BareEofIsAnEndButNotClean) {
  start_client([&](TlsClient& c) { ::shutdown(c.fd(), SHUT_WR); });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  ssize_t last = 1;
  server_read(1, &last);
  EXPECT_EQ(last, 0);
  EXPECT_FALSE(t->clean_close());
}

// Garbage where a record should be: the handshake fails with OpenSSL's
// reason and an alert record (type 21) goes back.
TEST_F(TlsTransportTest, GarbageGetsAnAlert) {
  const char junk[] = "\x16\x03\x01\x00\x05" "ABCDE";  // a "handshake" record with junk inside
  ASSERT_EQ(::send(client_fd, junk, sizeof junk - 1, 0), ssize_t(sizeof junk - 1));
  std::string why;
  EXPECT_EQ(drive_handshake(&why), TlsHandshake::Failed);
  EXPECT_FALSE(why.empty());
  uint8_t back[64];
  timeval tv{2, 0};
  setsockopt(client_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = ::recv(client_fd, back, sizeof back, 0);
  ASSERT_GE(n, 1);
  EXPECT_EQ(back[0], 21);  // alert
}

TEST_F(TlsTransportTest, PlainHttpIsRecognised) {
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::send(client_fd, req, sizeof req - 1, 0), 0);
  EXPECT_EQ(drive_handshake(), TlsHandshake::PlainHttp);
  EXPECT_TRUE(staging.bytes.empty());
}

TEST_F(TlsTransportTest, Tls11IsRefused) {
  TlsClient::Options o;
  o.max_version = TLS1_1_VERSION;
  start_client([](TlsClient&) {}, o);
  std::string why;
  EXPECT_EQ(drive_handshake(&why), TlsHandshake::Failed);
  release = true;
  client_thread.join();
  EXPECT_FALSE(client_ok);
  EXPECT_NE(why.find("unsupported protocol"), std::string::npos) << why;
}

TEST_F(TlsTransportTest, Tls10IsRefused) {
  TlsClient::Options o;
  o.max_version = TLS1_VERSION;
  start_client([](TlsClient&) {}, o);
  EXPECT_EQ(drive_handshake(), TlsHandshake::Failed);
  release = true;
  client_thread.join();
  EXPECT_FALSE(client_ok);
}

TEST_F(TlsTransportTest, Tls12RenegotiationIsRefused) {
  TlsClient::Options o;
  o.max_version = TLS1_2_VERSION;
  std::atomic<int> reneg_result{99};
  std::string after;
  start_client([&](TlsClient& c) {
    if (SSL_renegotiate(c.ssl()) != 1) {
      reneg_result = -1;
      return;
    }
    reneg_result = SSL_do_handshake(c.ssl());
  }, o);
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  EXPECT_STREQ(SSL_get_version(t->ssl()), "TLSv1.2");
  // The server reads the renegotiation ClientHello and refuses it.
  ssize_t last = 1;
  server_read(1, &last);
  release = true;
  client_thread.join();
  EXPECT_NE(reneg_result.load(), 1) << "renegotiation succeeded";
  EXPECT_EQ(SSL_get_secure_renegotiation_support(t->ssl()), 1);  // a secure client, refused anyway
}

// TLS 1.3 KeyUpdate asked by the client: the server's read answers it (its
// own KeyUpdate, sent from inside read()), and both directions go on under
// the new keys.
TEST_F(TlsTransportTest, Tls13KeyUpdateIsAnswered) {
  std::string after;
  std::atomic<bool> updated{false};
  std::atomic<int> server_key_updates{0};
  start_client([&](TlsClient& c) {
    SSL_set_msg_callback_arg(c.ssl(), &server_key_updates);
    SSL_set_msg_callback(c.ssl(), [](int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
      if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 1 &&
          static_cast<const uint8_t*>(buf)[0] == SSL3_MT_KEY_UPDATE)
        ++*static_cast<std::atomic<int>*>(arg);
    });
    updated = SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1;
    c.write_all("after the update");
    if (c.fill(4)) after = c.buffer().substr(0, 4);
  });
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  EXPECT_STREQ(SSL_get_version(t->ssl()), "TLSv1.3");
  EXPECT_EQ(server_read(16), "after the update");
  iovec v{const_cast<char*>("back"), 4};
  uint8_t scratch[16384];
  EXPECT_EQ(t->write_gathered(&v, 1, scratch), 4);
  release = true;
  client_thread.join();
  EXPECT_TRUE(updated);
  EXPECT_EQ(after, "back");
  EXPECT_EQ(server_key_updates.load(), 1);  // the server updated its keys too
}

TEST_F(TlsTransportTest, AlpnSelectsHttp11) {
  TlsClient::Options o;
  o.alpn = "http/1.1";
  start_client([](TlsClient&) {}, o);
  ASSERT_EQ(drive_handshake(), TlsHandshake::Done);
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(t->ssl(), &p, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), len), "http/1.1");
}

// Ticket resumption across connections, across one key rotation (the old key
// still opens tickets) but not two.
TEST(TlsResumption, TicketsResumeAcrossOneRotation) {
  TestCerts certs;
  ASSERT_TRUE(certs.ok());
  ASSERT_TRUE(certs.make_leaf("a", 0xA1));
  TlsConfig cfg;
  cfg.cert_file = certs.file("a.pem");
  cfg.key_file = certs.file("a.key");
  std::string err;
  auto ctx = TlsContext::create(cfg, &err);
  ASSERT_NE(ctx, nullptr) << err;
  TlsStaging staging;

  // One connection: returns whether it resumed; *next the session to reuse.
  auto connect_once = [&](SSL_SESSION* resume, SSL_SESSION** next) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) & ~O_NONBLOCK);
    std::unique_ptr<TlsTransport> t(TlsTransport::create(ctx->new_ssl(), sv[0], &staging));
    bool reused = false;
    std::thread client([&] {
      TlsClient c;
      TlsClient::Options o;
      o.ca_file = certs.ca_cert();
      o.session = resume;
      if (!c.connect(sv[1], o)) return;
      c.fill(1);  // the byte below; by then the ticket has arrived too
      reused = c.reused();
      *next = c.session();
      EXPECT_TRUE(SSL_SESSION_has_ticket(*next));
      SSL_shutdown(c.ssl());  // a session freed without close_notify is not resumable
    });
    auto deadline = Clock::now() + std::chrono::seconds(5);
    TlsHandshake h = TlsHandshake::Again;
    while (h == TlsHandshake::Again && Clock::now() < deadline) {
      h = t->handshake(nullptr);
      pollfd p{sv[0], POLLIN, 0};
      if (h == TlsHandshake::Again) ::poll(&p, 1, 50);
    }
    EXPECT_EQ(h, TlsHandshake::Done);
    uint8_t scratch[16384];
    iovec v{const_cast<char*>("x"), 1};
    t->write_gathered(&v, 1, scratch);
    client.join();
    t.reset();
    ::close(sv[0]);
    return reused;
  };
  SSL_SESSION* s1 = nullptr;
  EXPECT_FALSE(connect_once(nullptr, &s1));
  ASSERT_NE(s1, nullptr);
  SSL_SESSION* s2 = nullptr;
  EXPECT_TRUE(connect_once(s1, &s2));
  ctx->rotate_ticket_keys();
  SSL_SESSION* s3 = nullptr;
  EXPECT_TRUE(connect_once(s1, &s3));  // sealed under the previous key
  ctx->rotate_ticket_keys();
  ctx->rotate_ticket_keys();
  SSL_SESSION* s4 = nullptr;
  EXPECT_FALSE(connect_once(s1, &s4));  // its key is gone
  for (SSL_SESSION* s : {s1, s2, s3, s4})
    if (s) SSL_SESSION_free(s);
}

}  // namespace

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kMeasureHeap = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kMeasureHeap = false;
#else
constexpr bool kMeasureHeap = true;
#endif
#else
constexpr bool kMeasureHeap = true;
#endif

// Server-side TlsTransports, each with an OpenSSL client over a socketpair,
// driven in this thread (both ends are non-blocking).
class TlsPool {
 public:
  TlsPool() {
    ok_ = certs_.ok() && certs_.make_leaf("a", 0xA1);
    TlsConfig cfg;
    cfg.cert_file = certs_.file("a.pem");
    cfg.key_file = certs_.file("a.key");
    std::string err;
    ctx_ = TlsContext::create(cfg, &err);
    ok_ = ok_ && ctx_;
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_mode(client_ctx_, SSL_MODE_RELEASE_BUFFERS);
  }
  ~TlsPool() {
    free_clients();
    servers.clear();
    for (int fd : fds_) ::close(fd);
    SSL_CTX_free(client_ctx_);
  }
  bool ok() const { return ok_; }
  // A new connection, handshake done, one message each way.
  bool add() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return false;
    fds_.insert(fds_.end(), {sv[0], sv[1]});
    servers.emplace_back(TlsTransport::create(ctx_->new_ssl(), sv[0], &staging_));
    SSL* c = SSL_new(client_ctx_);
    SSL_set_fd(c, sv[1]);
    SSL_set_connect_state(c);
    clients_.push_back(c);
    bool done = false;
    for (int k = 0; k < 50 && !done; ++k) {
      SSL_do_handshake(c);
      done = servers.back()->handshake(nullptr) == TlsHandshake::Done && SSL_is_init_finished(c);
    }
    return done && exchange(servers.size() - 1);
  }
  // A message each way on connection i (the first also takes the ticket).
  bool exchange(size_t i) {
    if (SSL_write(clients_[i], "ping", 4) != 4) return false;
    char buf[64];
    ssize_t n = kAgain;
    for (int k = 0; k < 10 && n == kAgain; ++k) n = servers[i]->read(buf, sizeof buf);
    iovec v{const_cast<char*>("pong"), 4};
    if (n != 4 || servers[i]->write_gathered(&v, 1, scratch_) != 4) return false;
    return SSL_read(clients_[i], buf, sizeof buf) == 4 && !servers[i]->wants_write();
  }
  // The clients' share of the heap goes; the servers' stays.
  void free_clients() {
    for (SSL* c : clients_) SSL_free(c);
    clients_.clear();
  }

  std::vector<std::unique_ptr<TlsTransport>> servers;

 private:
  TestCerts certs_;
  bool ok_ = false;
  std::unique_ptr<TlsContext> ctx_;
  SSL_CTX* client_ctx_ = nullptr;
  TlsStaging staging_;
  std::vector<SSL*> clients_;
  std::vector<int> fds_;
  uint8_t scratch_[16384];
};

// An idle TLS connection keeps no record buffers (SSL_MODE_RELEASE_BUFFERS,
// pending ciphertext freed): its heap is the SSL object and its keys. A
// held read or write buffer is ~17 KiB each, so the bound below fails with
// either. (OpenSSL 3.0's SSL object alone is ~7.6 KB: see BENCHMARKS.md and
// bench/tools/tls_memory.cpp for the breakdown.)
TEST(TlsIdleMemory, AnIdleConnectionHoldsNoRecordBuffers) {
  TlsPool pool;
  ASSERT_TRUE(pool.ok());
  constexpr int kConns = 200;
  // One connection first: OpenSSL's one-time allocations are not per connection.
  ASSERT_TRUE(pool.add());
  const size_t base = mallinfo2().uordblks;
  for (int i = 0; i < kConns; ++i) ASSERT_TRUE(pool.add());
  pool.free_clients();
  const size_t after = mallinfo2().uordblks;
  const size_t per_conn = after > base ? (after - base) / kConns : 0;
  RecordProperty("server_heap_bytes_per_idle_tls_connection", int(per_conn));
  std::printf("heap per idle TLS connection (server side): %zu bytes\n", per_conn);
  if (kMeasureHeap) {
    EXPECT_LT(per_conn, 16u * 1024);
  }
}

// A connection busy for a whole tick keeps OpenSSL's record buffers from
// record to record (no malloc/free of ~17 KiB per record); the first tick
// that finds it quiet frees them again.
TEST(TlsIdleMemory, BusyConnectionsKeepRecordBuffersUntilAQuietTick) {
  TlsPool pool;
  ASSERT_TRUE(pool.ok());
  constexpr int kConns = 20;
  ASSERT_TRUE(pool.add());
  for (int i = 0; i < kConns; ++i) ASSERT_TRUE(pool.add());
  const size_t idle = mallinfo2().uordblks;
  for (size_t i = 1; i < pool.servers.size(); ++i) {
    EXPECT_FALSE(pool.servers[i]->keeps_buffers());
    pool.servers[i]->tick(true);
    EXPECT_TRUE(pool.servers[i]->keeps_buffers());
    ASSERT_TRUE(pool.exchange(i));  // both buffers set up, and now kept
  }
  const size_t busy = mallinfo2().uordblks;
  const size_t kept = busy > idle ? (busy - idle) / kConns : 0;
  std::printf("record buffers kept per busy TLS connection: %zu bytes\n", kept);
  for (size_t i = 1; i < pool.servers.size(); ++i) {
    pool.servers[i]->tick(false);
    EXPECT_FALSE(pool.servers[i]->keeps_buffers());
  }
  const size_t quiet = mallinfo2().uordblks;
  if (kMeasureHeap) {
    EXPECT_GT(kept, 12u * 1024);  // a record buffer is ~16.7 KiB
    EXPECT_LT(quiet, idle + kConns * 1024u);
  }
  // Still a working connection, back in release mode.
  for (size_t i = 1; i < pool.servers.size(); ++i) ASSERT_TRUE(pool.exchange(i));
  EXPECT_LT(mallinfo2().uordblks, idle + kConns * 1024u);
}

}  // namespace
