// A small blocking WebSocket/HTTP client for end-to-end tests over real
// sockets on 127.0.0.1. Every read has a deadline, so a broken server fails
// a test instead of hanging it. Header-only; test code, not product code.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "protocol/frame.h"

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
  explicit TcpClient(uint16_t port, const char* host = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~TcpClient() { close(); }
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool write_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(size_t(n));
    }
    return true;
  }

  // Reads until `n` bytes are buffered; false on EOF/error/timeout.
  bool fill(size_t n, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (buf_.size() < n) {
      if (!wait_readable(deadline)) return false;
      char tmp[65536];
      ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
      if (r <= 0) {
        eof_ = true;
        return false;
      }
      buf_.append(tmp, size_t(r));
    }
    return true;
  }

  // Reads an HTTP response head (and a Content-Length body if any).
  std::optional<std::string> read_http_response(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!wait_readable(deadline)) return std::nullopt;
      char tmp[65536];
      ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
      if (r <= 0) return std::nullopt;
      buf_.append(tmp, size_t(r));
    }
    std::string head = buf_.substr(0, end + 4);
    size_t body = 0;
    auto pos = lower(head).find("\r\ncontent-length:");
    if (pos != std::string::npos && head.rfind("HEAD", 0) != 0)
      body = std::stoul(head.substr(pos + 17));
    if (is_head_request_) body = 0;
    if (!fill(end + 4 + body, timeout_ms)) return std::nullopt;
    std::string out = buf_.substr(0, end + 4 + body);
    buf_.erase(0, end + 4 + body);
    return out;
  }
  void expect_head_response(bool v) { is_head_request_ = v; }

  // True if the peer closes the connection (EOF or reset) within the
  // timeout; then closes our side too, as a real client does.
  bool wait_eof(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      if (!wait_readable(deadline)) return false;
      char tmp[65536];
      ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
      if (r <= 0) {
        close();
        return true;
      }
      buf_.append(tmp, size_t(r));
    }
  }

  std::string& buffer() { return buf_; }

  static std::string lower(std::string s) {
    for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }

 protected:
  bool wait_readable(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, int(left)) == 1;
  }

  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  bool is_head_request_ = false;
};

class WsClient : public TcpClient {
 public:
  explicit WsClient(uint16_t port, const char* host = "127.0.0.1") : TcpClient(port, host) {}

  // Performs the opening handshake; returns the HTTP status (101 on success).
  int handshake(std::string_view path = "/", std::string_view protocols = "",
                std::string_view extra_headers = "") {
    std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    if (!protocols.empty()) req += "Sec-WebSocket-Protocol: " + std::string(protocols) + "\r\n";
    req += std::string(extra_headers) + "\r\n";
    if (!write_all(req)) return -1;
    auto resp = read_http_response();
    if (!resp) return -1;
    response_ = *resp;
    return std::stoi(resp->substr(9, 3));
  }
  const std::string& response() const { return response_; }

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

  // Next server frame (unmasked), or nullopt on EOF/timeout.
  std::optional<Frame> read_frame(int timeout_ms = 5000) {
    if (!fill(2, timeout_ms)) return std::nullopt;
    auto b = [&](size_t i) { return uint8_t(buf_[i]); };
    Frame f;
    f.fin = b(0) & 0x80;
    f.op = protocol::Opcode(b(0) & 0x0f);
    uint64_t len = b(1) & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (!fill(4, timeout_ms)) return std::nullopt;
      len = (uint64_t(b(2)) << 8) | b(3);
      hdr = 4;
    } else if (len == 127) {
      if (!fill(10, timeout_ms)) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | b(2 + size_t(i));
      hdr = 10;
    }
    if (!fill(hdr + len, timeout_ms)) return std::nullopt;
    f.payload = buf_.substr(hdr, len);
    buf_.erase(0, hdr + len);
    return f;
  }

  // Skips pings; returns the next data or close frame.
  std::optional<Frame> read_message(int timeout_ms = 5000) {
    while (true) {
      auto f = read_frame(timeout_ms);
      if (!f || (f->op != protocol::Opcode::Ping && f->op != protocol::Opcode::Pong)) return f;
    }
  }

 private:
  std::string response_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace chatws::test
