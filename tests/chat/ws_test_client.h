// A small blocking WebSocket client for end-to-end tests: real TCP socket to
// 127.0.0.1, the opening handshake, masked client frames, and a reader of
// the server's unmasked frames with a deadline on every wait.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/handshake.h"

namespace chatws::test {

struct WsMessage {
  protocol::Opcode op = protocol::Opcode::Text;
  std::string payload;
};

class WsTestClient {
 public:
  WsTestClient() = default;
  ~WsTestClient() { disconnect(); }
  WsTestClient(const WsTestClient&) = delete;
  WsTestClient& operator=(const WsTestClient&) = delete;

  // Connects and performs the opening handshake. Returns true on 101 with a
  // correct Sec-WebSocket-Accept; otherwise false, with status() and body()
  // holding the server's answer (or error() a local failure).
  bool connect(uint16_t port, const std::string& path, const std::string& subprotocol,
               int timeout_ms = 5000) {
    disconnect();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail("connect");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                      "\r\nSec-WebSocket-Version: 13\r\n";
    if (!subprotocol.empty()) req += "Sec-WebSocket-Protocol: " + subprotocol + "\r\n";
    req += "\r\n";
    if (!write_all(req)) return fail("write");
    const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!read_some(deadline)) return fail("reading handshake response");
    }
    const std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    status_ = head.size() > 12 ? std::atoi(head.c_str() + 9) : 0;
    headers_ = head;
    if (status_ != 101) {
      // Error answers are "Connection: close": the body runs to EOF.
      while (read_some(deadline)) {
      }
      body_ = buf_;
      buf_.clear();
      return false;
    }
    subprotocol_ = header("sec-websocket-protocol");
    if (header("sec-websocket-accept") != protocol::compute_accept_key(key)) return fail("bad accept key");
    return true;
  }

  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
    closed_ = false;
  }

  int status() const { return status_; }
  const std::string& body() const { return body_; }
  const std::string& subprotocol() const { return subprotocol_; }
  const std::string& error() const { return error_; }
  bool closed() const { return closed_; }
  uint16_t close_code() const { return close_code_; }

  bool send(protocol::Opcode op, std::string_view payload) {
    std::uniform_int_distribution<int> byte(0, 255);
    uint8_t mask[4];
    for (auto& m : mask) m = static_cast<uint8_t>(byte(rng_));
    return write_all(protocol::encode_masked_frame(op, payload, mask));
  }
  bool send_text(std::string_view s) { return send(protocol::Opcode::Text, s); }
  // Bytes as they are (e.g. several frames in one TCP write).
  bool send_raw(std::string_view bytes) { return write_all(bytes); }
  static std::string masked_frame(protocol::Opcode op, std::string_view payload) {
    const uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    return protocol::encode_masked_frame(op, payload, mask);
  }
  bool send_binary(std::string_view s) { return send(protocol::Opcode::Binary, s); }

  // The next data message (text or binary), reassembling fragments and
  // answering pings. False on timeout, close frame (closed() is then true)
  // or a broken connection.
  bool recv(WsMessage* out, int timeout_ms = 5000) {
    const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string message;
    protocol::Opcode message_op = protocol::Opcode::Text;
    for (;;) {
      uint8_t op_byte;
      std::string payload;
      if (!read_frame(&op_byte, &payload, deadline)) return false;
      const bool fin = op_byte & 0x80;
      const auto op = static_cast<protocol::Opcode>(op_byte & 0x0F);
      switch (op) {
        case protocol::Opcode::Ping:
          send(protocol::Opcode::Pong, payload);
          continue;
        case protocol::Opcode::Pong:
          continue;
        case protocol::Opcode::Close:
          closed_ = true;
          close_code_ = payload.size() >= 2
                            ? static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                                    static_cast<uint8_t>(payload[1]))
                            : 1005;
          return false;
        case protocol::Opcode::Text:
        case protocol::Opcode::Binary:
          message_op = op;
          message = std::move(payload);
          break;
        case protocol::Opcode::Continuation:
          message += payload;
          break;
        default:
          error_ = "unknown opcode";
          return false;
      }
      if (fin) {
        out->op = message_op;
        out->payload = std::move(message);
        return true;
      }
    }
  }

  // The next text message's payload, or "" (with a test-visible marker) on
  // failure.
  std::string recv_text(int timeout_ms = 5000) {
    WsMessage m;
    if (!recv(&m, timeout_ms)) return closed_ ? "<closed>" : "<timeout>";
    if (m.op != protocol::Opcode::Text) return "<binary>";
    return m.payload;
  }

 private:
  using clock = std::chrono::steady_clock;

  bool fail(const char* what) {
    error_ = std::string(what) + ": " + std::strerror(errno);
    return false;
  }

  std::string header(const std::string& lower_name) const {
    std::string lower = headers_;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto p = lower.find("\r\n" + lower_name + ":");
    if (p == std::string::npos) return {};
    p += 2 + lower_name.size() + 1;
    auto e = headers_.find("\r\n", p);
    std::string v = headers_.substr(p, e - p);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v;
  }

  bool write_all(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Appends whatever arrives before the deadline; false on timeout/EOF.
  bool read_some(clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) {
        error_ = "timeout";
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;  // loop re-checks the deadline
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = n == 0 ? "connection closed" : std::strerror(errno);
        return false;
      }
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }

  bool need(size_t n, clock::time_point deadline) {
    while (buf_.size() < n) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  bool read_frame(uint8_t* op_byte, std::string* payload, clock::time_point deadline) {
    if (!need(2, deadline)) return false;
    const auto b0 = static_cast<uint8_t>(buf_[0]);
    const auto b1 = static_cast<uint8_t>(buf_[1]);
    if (b1 & 0x80) {
      error_ = "server frame is masked";
      return false;
    }
    size_t hdr = 2;
    uint64_t len = b1 & 0x7F;
    if (len == 126) hdr = 4;
    if (len == 127) hdr = 10;
    if (!need(hdr, deadline)) return false;
    if (hdr > 2) {
      len = 0;
      for (size_t i = 2; i < hdr; ++i) len = (len << 8) | static_cast<uint8_t>(buf_[i]);
    }
    if (!need(hdr + len, deadline)) return false;
    *op_byte = b0;
    payload->assign(buf_, hdr, len);
    buf_.erase(0, hdr + len);
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  int status_ = 0;
  std::string headers_, body_, subprotocol_, error_;
  bool closed_ = false;
  uint16_t close_code_ = 0;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace chatws::test
