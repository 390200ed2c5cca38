// A WebSocket client over TlsClient for end-to-end tests: TCP connect to
// 127.0.0.1, TLS handshake trusting the test CA, the opening handshake,
// masked frames out, server frames in. Blocking with timeouts.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "protocol/frame.h"
#include "support/tls_client.h"

namespace chatws::test {

inline int tcp_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class TlsWsClient {
 public:
  struct Frame {
    uint8_t opcode = 0;
    std::string payload;
  };

  // TLS only (no HTTP yet).
  bool tls_connect(uint16_t port, const std::string& ca, SSL_SESSION* resume = nullptr) {
    int fd = tcp_connect(port);
    if (fd < 0) return false;
    TlsClient::Options o;
    o.ca_file = ca;
    o.alpn = "http/1.1";
    o.session = resume;
    return tls.connect(fd, o);
  }
  // TLS, then the upgrade; true on 101.
  bool connect(uint16_t port, const std::string& ca, const std::string& path = "/") {
    if (!tls_connect(port, ca)) return false;
    return upgrade(path) == 101;
  }
  int upgrade(const std::string& path = "/") {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    if (!tls.write_all(req)) return -1;
    auto head = read_head();
    if (!head || head->size() < 12) return -1;
    return std::atoi(head->c_str() + 9);
  }
  // An HTTP response head (and its Content-Length body), or nullopt.
  std::optional<std::string> read_head() {
    std::string& b = tls.buffer();
    size_t end;
    while ((end = b.find("\r\n\r\n")) == std::string::npos)
      if (!tls.fill(b.size() + 1)) return std::nullopt;
    std::string head = b.substr(0, end + 4);
    size_t body = 0;
    auto p = head.find("Content-Length: ");
    if (p != std::string::npos) body = std::strtoul(head.c_str() + p + 16, nullptr, 10);
    if (!tls.fill(end + 4 + body)) return std::nullopt;
    std::string out = b.substr(0, end + 4 + body);
    b.erase(0, end + 4 + body);
    return out;
  }
  bool send(protocol::Opcode op, const std::string& payload) {
    const uint8_t mask[4] = {1, 2, 3, 4};
    return tls.write_all(protocol::encode_masked_frame(op, payload, mask, true));
  }
  bool send_text(const std::string& s) { return send(protocol::Opcode::Text, s); }
  std::optional<Frame> read_frame() {
    std::string& b = tls.buffer();
    if (!tls.fill(2)) return std::nullopt;
    size_t len = uint8_t(b[1]) & 0x7F, hdr = 2;
    if (len == 126) {
      if (!tls.fill(4)) return std::nullopt;
      len = (size_t(uint8_t(b[2])) << 8) | uint8_t(b[3]);
      hdr = 4;
    } else if (len == 127) {
      if (!tls.fill(10)) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | uint8_t(b[2 + i]);
      hdr = 10;
    }
    if (!tls.fill(hdr + len)) return std::nullopt;
    Frame f{uint8_t(uint8_t(b[0]) & 0x0F), b.substr(hdr, len)};
    b.erase(0, hdr + len);
    return f;
  }
  std::string read_text() {
    auto f = read_frame();
    return f ? f->payload : "<" + tls.error() + ">";
  }

  TlsClient tls;
};

}  // namespace chatws::test
