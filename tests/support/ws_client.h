// The blocking HTTP/WebSocket client every end-to-end test uses, over real
// sockets on 127.0.0.1. Every wait has a deadline, so a broken server fails
// a test instead of hanging it. Header-only; test code, not product code.
//
//   TcpClient  raw bytes: write_all, HTTP responses, EOF detection; over
//              TLS after start_tls() (OpenSSL, trusting the test CA).
//   WsClient   adds the opening handshake (Sec-WebSocket-Accept verified,
//              subprotocol recorded), masked client frames, and readers of
//              the server's frames: read_frame (raw), read_message (whole
//              messages, pings answered), read_text (payload or a marker).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/handshake.h"
#include "support/tls_client.h"

namespace chatws::test {

struct Frame {
  protocol::Opcode op = protocol::Opcode::Continuation;
  bool fin = true;
  std::string payload;
  uint16_t close_code() const {
    return payload.size() >= 2 ? uint16_t((uint8_t(payload[0]) << 8) | uint8_t(payload[1])) : 1005;
  }
  std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

class TcpClient {
 public:
  using Clock = std::chrono::steady_clock;

  TcpClient() = default;
  explicit TcpClient(uint16_t port, const char* host = "127.0.0.1") { open(port, host); }
  ~TcpClient() { close(); }
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // Connects (dropping any previous connection and its buffered bytes);
  // false with error() set if the connection is refused.
  bool open(uint16_t port, const char* host = "127.0.0.1") {
    close();
    buf_.clear();
    error_.clear();
    eof_ = false;
    close_notified_ = false;
    port_ = port;
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      fail("connect");
      close();
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }

  // TLS over this connection: the handshake now (o: the CA to trust,
  // versions, ALPN, a session to resume), then every read and write goes
  // through it. False with error() holding OpenSSL's reason.
  bool start_tls(const TlsClient::Options& o, int timeout_ms = 5000) {
    tls_ = std::make_unique<TlsClient>();
    if (!tls_->connect(fd_, o, timeout_ms, /*own_fd=*/false)) {
      error_ = "tls: " + tls_->error();
      return false;
    }
    // Reads wait in poll() to their deadline, not in SSL_read (a ticket
    // record alone must not block a read that expects data).
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return true;
  }
  // The TLS session (peer certificate, resumption, the SSL itself); nullptr
  // before start_tls().
  TlsClient* tls() const { return tls_.get(); }
  // TLS: the stream ended with the server's close_notify, not a bare EOF.
  bool close_notified() const { return close_notified_; }

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // SO_RCVBUF: small, the client stops taking data soon, as a slow reader
  // does; raised again, a backlog drains quickly.
  bool set_receive_buffer(int bytes) {
    return ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0;
  }
  uint16_t port() const { return port_; }
  // Why the last operation failed ("timeout", "connection closed", ...).
  const std::string& error() const { return error_; }

  // Closes our side (without close_notify); bytes already received stay in buffer().
  void close() {
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool write_all(std::string_view data) {
    if (tls_) return tls_write_all(data);
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("send");
      data.remove_prefix(size_t(n));
    }
    return true;
  }

  // Reads until `n` bytes are buffered; false on EOF/error/timeout.
  bool fill(size_t n, int timeout_ms = 5000) { return fill_until(n, deadline_in(timeout_ms)); }

  // Reads an HTTP response head (and a Content-Length body if any).
  std::optional<std::string> read_http_response(int timeout_ms = 5000) {
    const auto deadline = deadline_in(timeout_ms);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!read_some(deadline)) return std::nullopt;
    }
    const std::string head = buf_.substr(0, end + 4);
    size_t body = 0;
    auto pos = lower(head).find("\r\ncontent-length:");
    if (pos != std::string::npos && !is_head_request_) body = std::strtoul(head.c_str() + pos + 17, nullptr, 10);
    if (!fill_until(end + 4 + body, deadline)) return std::nullopt;
    std::string out = buf_.substr(0, end + 4 + body);
    buf_.erase(0, end + 4 + body);
    return out;
  }
  // The next response answers a HEAD request: its Content-Length has no body.
  void expect_head_response(bool v) { is_head_request_ = v; }

  // True if the peer closes the connection (EOF or reset) within the
  // timeout; then closes our side too, as a real client does.
  bool wait_eof(int timeout_ms = 5000) {
    const auto deadline = deadline_in(timeout_ms);
    eof_ = false;
    while (read_some(deadline)) {
    }
    if (!eof_) return false;
    close();
    return true;
  }

  std::string& buffer() { return buf_; }

  static std::string lower(std::string s) {
    for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }

 protected:
  static Clock::time_point deadline_in(int timeout_ms) {
    return Clock::now() + std::chrono::milliseconds(timeout_ms);
  }

  bool fail(const char* what) {
    error_ = std::string(what) + ": " + std::strerror(errno);
    return false;
  }

  // Appends whatever one recv() brings before the deadline; false on
  // timeout (error() "timeout") or EOF/reset (eof_ set).
  bool read_some(Clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || fd_ < 0) {
        error_ = fd_ < 0 ? "not connected" : "timeout";
        return false;
      }
      if (!tls_ || !SSL_has_pending(tls_->ssl())) {
        pollfd p{fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, int(left));
        if (r <= 0) continue;  // EINTR or timeout: the loop re-checks the deadline
      }
      char tmp[65536];
      if (tls_) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(tls_->ssl(), tmp, sizeof tmp, &got) == 1) {
          buf_.append(tmp, got);
          return true;
        }
        const int e = SSL_get_error(tls_->ssl(), 0);
        if (e == SSL_ERROR_WANT_READ) continue;  // no whole data record yet (or a ticket)
        close_notified_ = e == SSL_ERROR_ZERO_RETURN;
        error_ = close_notified_ ? "connection closed (close_notify)" : "tls read: " + TlsClient::reason();
        eof_ = true;
        return false;
      }
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = n == 0 ? "connection closed" : std::string("recv: ") + std::strerror(errno);
        eof_ = true;
        return false;
      }
      buf_.append(tmp, size_t(n));
      return true;
    }
  }

  bool fill_until(size_t n, Clock::time_point deadline) {
    while (buf_.size() < n) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  // The socket is non-blocking under TLS: a write the kernel cannot take
  // yet waits for it (and is retried with the same bytes, as OpenSSL asks).
  bool tls_write_all(std::string_view data) {
    const auto deadline = deadline_in(5000);
    while (!data.empty()) {
      size_t w = 0;
      ERR_clear_error();
      if (SSL_write_ex(tls_->ssl(), data.data(), data.size(), &w) == 1) {
        data.remove_prefix(w);
        continue;
      }
      const int e = SSL_get_error(tls_->ssl(), 0);
      if ((e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) && Clock::now() < deadline) {
        pollfd p{fd_, short(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
        ::poll(&p, 1, 100);
        continue;
      }
      error_ = "tls write: " + TlsClient::reason();
      return false;
    }
    return true;
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::string buf_;
  std::string error_;
  bool eof_ = false;
  bool is_head_request_ = false;
  bool close_notified_ = false;
  std::unique_ptr<TlsClient> tls_;
};

class WsClient : public TcpClient {
 public:
  // RFC 6455's example key, so tests can also check the server's answer to
  // it literally (s3pPLMBiTxaQ9kYGzzhZRbK+xOo=).
  static constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

  WsClient() = default;
  explicit WsClient(uint16_t port, const char* host = "127.0.0.1") : TcpClient(port, host) {}

  // open() then handshake(): true on 101 with a correct Sec-WebSocket-Accept;
  // otherwise false, with status() and body() holding the server's answer
  // (or error() a local failure).
  bool connect(uint16_t port, std::string_view path = "/", std::string_view protocols = "",
               int timeout_ms = 5000) {
    status_ = 0;
    if (!open(port)) return false;
    return handshake(path, protocols, "", timeout_ms) == 101;
  }

  // connect() over TLS (wss://): open(), start_tls(o), then the handshake.
  bool connect_tls(uint16_t port, const TlsClient::Options& o, std::string_view path = "/", int timeout_ms = 5000) {
    status_ = 0;
    if (!open(port) || !start_tls(o, timeout_ms)) return false;
    return handshake(path, "", "", timeout_ms) == 101;
  }

  // Performs the opening handshake offering `protocols` (if not empty);
  // returns the HTTP status (101 on success), or -1 on a local failure or
  // a 101 whose Sec-WebSocket-Accept is wrong (error() says which).
  // `extra_headers` are whole "Name: value\r\n" lines.
  int handshake(std::string_view path = "/", std::string_view protocols = "", std::string_view extra_headers = "",
                int timeout_ms = 5000) {
    if (!send_handshake(path, protocols, extra_headers)) return -1;
    return finish_handshake(timeout_ms);
  }

  // handshake() in two steps, for tests that send many requests before the
  // server answers any: the request, then reading and checking the answer.
  bool send_handshake(std::string_view path = "/", std::string_view protocols = "",
                      std::string_view extra_headers = "") {
    status_ = 0;
    response_.clear();
    body_.clear();
    subprotocol_.clear();
    std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(kKey) +
                      "\r\nSec-WebSocket-Version: 13\r\n";
    if (!protocols.empty()) req += "Sec-WebSocket-Protocol: " + std::string(protocols) + "\r\n";
    req += std::string(extra_headers) + "\r\n";
    return write_all(req);
  }
  int finish_handshake(int timeout_ms = 5000) {
    const auto deadline = deadline_in(timeout_ms);
    auto resp = read_http_response(timeout_ms);
    if (!resp) return -1;
    response_ = *resp;
    const size_t head_end = response_.find("\r\n\r\n") + 4;
    if (response_.rfind("HTTP/1.1 ", 0) == 0 && response_.size() >= 12) status_ = std::atoi(response_.c_str() + 9);
    if (status_ != 101) {
      // An error answer without Content-Length is "Connection: close": its
      // body runs to EOF.
      if (header("content-length").empty()) {
        while (read_some(deadline)) {
        }
        response_ += buf_;
        buf_.clear();
      }
      body_ = response_.substr(head_end);
      return status_;
    }
    subprotocol_ = header("sec-websocket-protocol");
    if (header("sec-websocket-accept") != protocol::compute_accept_key(kKey)) {
      error_ = "bad Sec-WebSocket-Accept: " + header("sec-websocket-accept");
      return -1;
    }
    return status_;
  }

  int status() const { return status_; }
  // The whole handshake response (head and any body), and the body alone.
  const std::string& response() const { return response_; }
  const std::string& body() const { return body_; }
  // The subprotocol the server chose ("" if none).
  const std::string& subprotocol() const { return subprotocol_; }
  // A handshake response header's value, trimmed ("" if absent).
  std::string header(std::string_view name) const {
    // Up to and including the last header line's CRLF.
    const std::string head = lower(response_.substr(0, response_.find("\r\n\r\n") + 2));
    auto p = head.find("\r\n" + lower(std::string(name)) + ":");
    if (p == std::string::npos) return {};
    p += 2 + name.size() + 1;
    std::string v = response_.substr(p, head.find("\r\n", p) - p);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
    return v;
  }

  // A masked frame's bytes (fixed mask), e.g. to send several frames in
  // one TCP write with write_all().
  static std::string masked_frame(protocol::Opcode op, std::string_view payload, bool fin = true) {
    const uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    return protocol::encode_masked_frame(op, payload, mask, fin);
  }

  // The header of a masked frame announcing `len` payload bytes and the
  // first `sent` of them ('a' under a zero mask: valid text), as a client
  // that never finishes its message sends.
  static std::string partial_frame(protocol::Opcode op, uint64_t len, size_t sent) {
    static const uint8_t zero[4] = {0, 0, 0, 0};
    uint8_t h[protocol::kMaxFrameHeader];
    const size_t n = protocol::encode_masked_frame_header(h, op, len, zero, true);
    return std::string(reinterpret_cast<char*>(h), n) + std::string(sent, 'a');
  }

  // Reads frames until the server's close frame; its code, or 0 if none
  // came (EOF, timeout).
  uint16_t read_close_code(int timeout_ms = 5000) {
    for (int i = 0; i < 100000; ++i) {
      auto f = read_frame(timeout_ms);
      if (!f) return 0;
      if (f->op == protocol::Opcode::Close) return f->close_code();
    }
    return 0;
  }

  bool send_frame(protocol::Opcode op, std::string_view payload, bool fin = true) {
    uint8_t mask[4];
    for (auto& m : mask) m = uint8_t(rng_());
    return write_all(protocol::encode_masked_frame(op, payload, mask, fin));
  }
  bool send_text(std::string_view s) { return send_frame(protocol::Opcode::Text, s); }
  bool send_binary(std::string_view s) { return send_frame(protocol::Opcode::Binary, s); }
  bool send_close(uint16_t code, std::string_view reason = "") {
    return send_frame(protocol::Opcode::Close, protocol::close_payload(code, reason));
  }

  // The next server frame as sent, or nullopt on EOF/timeout or a masked
  // server frame (error() says which).
  std::optional<Frame> read_frame(int timeout_ms = 5000) { return read_frame_until(deadline_in(timeout_ms)); }

  // The next whole message: a text or binary message (fragments
  // reassembled) or a close frame. Pings are answered with pongs, as a real
  // client does; pongs are skipped. nullopt on EOF/timeout or a broken
  // fragment sequence (error() says which).
  std::optional<Frame> read_message(int timeout_ms = 5000) {
    const auto deadline = deadline_in(timeout_ms);
    std::optional<Frame> msg;
    for (;;) {
      auto f = read_frame_until(deadline);
      if (!f) return std::nullopt;
      switch (f->op) {
        case protocol::Opcode::Ping:
          send_frame(protocol::Opcode::Pong, f->payload);
          continue;
        case protocol::Opcode::Pong:
          continue;
        case protocol::Opcode::Close:
          return f;
        case protocol::Opcode::Text:
        case protocol::Opcode::Binary:
          if (msg) return broken("a new message inside a fragmented one");
          msg = std::move(f);
          break;
        case protocol::Opcode::Continuation:
          if (!msg) return broken("a continuation frame outside a message");
          msg->payload += f->payload;
          msg->fin = f->fin;
          break;
        default:
          return broken("unknown opcode");
      }
      if (msg->fin) return msg;
    }
  }

  // The next text message's payload; on failure a marker no test expects
  // ("<closed CODE>", "<binary>", "<no message: ERROR>"), so a comparison
  // fails with the reason in its output.
  std::string read_text(int timeout_ms = 5000) {
    auto m = read_message(timeout_ms);
    if (!m) return "<no message: " + error_ + ">";
    if (m->op == protocol::Opcode::Close) return "<closed " + std::to_string(m->close_code()) + ">";
    if (m->op != protocol::Opcode::Text) return "<binary>";
    return std::move(m->payload);
  }

 private:
  std::optional<Frame> broken(const char* why) {
    error_ = why;
    return std::nullopt;
  }

  std::optional<Frame> read_frame_until(Clock::time_point deadline) {
    if (!fill_until(2, deadline)) return std::nullopt;
    auto b = [&](size_t i) { return uint8_t(buf_[i]); };
    if (b(1) & 0x80) return broken("server frame is masked");
    Frame f;
    f.fin = b(0) & 0x80;
    f.op = protocol::Opcode(b(0) & 0x0f);
    uint64_t len = b(1) & 0x7f;
    size_t hdr = 2;
    if (len == 126) hdr = 4;
    if (len == 127) hdr = 10;
    if (!fill_until(hdr, deadline)) return std::nullopt;
    if (hdr > 2) {
      len = 0;
      for (size_t i = 2; i < hdr; ++i) len = (len << 8) | b(i);
    }
    if (!fill_until(hdr + len, deadline)) return std::nullopt;
    f.payload = buf_.substr(hdr, len);
    buf_.erase(0, hdr + len);
    return f;
  }

  int status_ = 0;
  std::string response_, body_, subprotocol_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace chatws::test
