#include "handshake_client.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <random>

namespace chatws::bench {
namespace {

constexpr size_t kMaxResponseHead = 16 * 1024;

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, int(len));
  out.resize(size_t(n));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string make_websocket_key() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    // The key only has to be unpredictable enough for proxies; a PRNG suffices
    // should the system RNG be unavailable.
    static std::mt19937_64 rng{std::random_device{}()};
    for (auto& b : raw) b = static_cast<unsigned char>(rng());
  }
  return base64(raw, sizeof raw);
}

std::string make_upgrade_request(std::string_view host, int port, std::string_view path,
                                 std::string_view key, std::string_view subprotocol,
                                 std::string_view extensions) {
  std::string r;
  r.reserve(256);
  r.append("GET ").append(path).append(" HTTP/1.1\r\n");
  r.append("Host: ").append(host).append(":").append(std::to_string(port)).append("\r\n");
  r.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  r.append("Sec-WebSocket-Key: ").append(key).append("\r\n");
  r.append("Sec-WebSocket-Version: 13\r\n");
  if (!subprotocol.empty()) r.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
  if (!extensions.empty()) r.append("Sec-WebSocket-Extensions: ").append(extensions).append("\r\n");
  r.append("\r\n");
  return r;
}

std::string expected_accept(std::string_view key) {
  std::string in(key);
  in += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return base64(digest, sizeof digest);
}

HandshakeCheck check_upgrade_response(std::string_view received, std::string_view key) {
  HandshakeCheck c;
  size_t end = received.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (received.size() > kMaxResponseHead) {
      c.status = HandshakeCheck::Failed;
      c.error = "response head too large";
    }
    return c;
  }
  c.header_bytes = end + 4;
  std::string_view head = received.substr(0, end);
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.1 101 Switching Protocols"
  if (status_line.size() < 12 || status_line.substr(0, 9) != "HTTP/1.1 " ||
      status_line.substr(9, 3) != "101") {
    c.status = HandshakeCheck::Failed;
    c.error = "unexpected status line: " + std::string(status_line);
    return c;
  }
  bool accept_ok = false, upgrade_ok = false;
  const std::string want = expected_accept(key);
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Sec-WebSocket-Accept")) accept_ok = value == want;
    else if (iequals(name, "Upgrade")) upgrade_ok = iequals(value, "websocket");
  }
  if (!accept_ok) {
    c.status = HandshakeCheck::Failed;
    c.error = "missing or wrong Sec-WebSocket-Accept";
  } else if (!upgrade_ok) {
    c.status = HandshakeCheck::Failed;
    c.error = "missing Upgrade: websocket";
  } else {
    c.status = HandshakeCheck::Ok;
  }
  return c;
}

}  // namespace chatws::bench
