// Server side of the WebSocket opening handshake (RFC 6455 4.2.1, 4.2.2).
//
// Decisions:
// - An upgrade over HTTP/1.0 is a 400 ("upgrade requires HTTP/1.1"), not a
//   505: HTTP/1.0 itself is supported, only the upgrade is not.
// - Sec-WebSocket-Key must be exactly 24 base64 characters ending in "=="
//   (the only form that decodes to 16 bytes); it may appear only once.
// - Origin comparison is ASCII case-insensitive (scheme and host are).
// - Host is not checked here: the request parser already answers an
//   HTTP/1.1 head without it with 400, for every request (RFC 9112 3.2).
// - Subprotocols are matched case-sensitively: the client checks that the
//   answer is one of the names it offered, byte for byte.
#include "protocol/handshake.h"

#include <openssl/evp.h>

#include <string>
#include <utility>

namespace chatws::protocol {

namespace {

constexpr char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

// 16 bytes encode to 22 base64 characters plus "==".
bool is_16_byte_base64(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (!is_base64_char(key[i])) return false;
  }
  return true;
}

size_t count_headers(const HttpRequest& req, std::string_view name) {
  size_t n = 0;
  for (const auto& h : req.headers) n += ascii_iequals(h.first, name);
  return n;
}

UpgradeResult reject(int status, std::string why, std::string_view extra = {}) {
  UpgradeResult r;
  r.status = status;
  r.response = http_error_response(status, why, extra);
  r.error = std::move(why);
  return r;
}

}  // namespace

std::string compute_accept_key(std::string_view sec_websocket_key) {
  std::string input;
  input.reserve(sec_websocket_key.size() + sizeof(kGuid) - 1);
  input.append(sec_websocket_key);
  input.append(kGuid, sizeof(kGuid) - 1);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

bool wants_websocket(const HttpRequest& req) { return req.has_token("Upgrade", "websocket"); }

UpgradeResult evaluate_upgrade(const HttpRequest& req, const UpgradeConfig& cfg) {
  if (req.method != "GET") return reject(405, "WebSocket upgrade requires GET", "Allow: GET\r\n");
  if (req.version_minor != 1) return reject(400, "upgrade requires HTTP/1.1");
  if (!req.has_token("Upgrade", "websocket")) return reject(400, "missing Upgrade: websocket");
  if (!req.has_token("Connection", "upgrade")) return reject(400, "missing Connection: Upgrade");

  const std::string_view* version = req.find("Sec-WebSocket-Version");
  if (version == nullptr || *version != "13" || count_headers(req, "Sec-WebSocket-Version") != 1) {
    // RFC 6455 4.4: name the version we speak. RFC 9110 15.5.22: a 426
    // carries an Upgrade header.
    return reject(426, "unsupported WebSocket version",
                  "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
  }

  const std::string_view* key = req.find("Sec-WebSocket-Key");
  if (key == nullptr || count_headers(req, "Sec-WebSocket-Key") != 1 || !is_16_byte_base64(*key)) {
    return reject(400, "invalid Sec-WebSocket-Key");
  }

  if (!cfg.allowed_origins.empty()) {
    const std::string_view* origin = req.find("Origin");
    bool allowed = false;
    if (origin != nullptr) {
      for (const auto& o : cfg.allowed_origins) {
        if (ascii_iequals(*origin, o)) {
          allowed = true;
          break;
        }
      }
    }
    if (!allowed) return reject(403, "origin not allowed");
  }

  DeflateNegotiation pmd;
  if (cfg.deflate.enabled) {
    std::vector<std::string_view> ext;
    for (const auto& h : req.headers) {
      if (ascii_iequals(h.first, "Sec-WebSocket-Extensions")) ext.push_back(h.second);
    }
    pmd = negotiate_deflate(ext, cfg.deflate);
    if (pmd.outcome == DeflateNegotiation::Outcome::Fail) return reject(400, pmd.error);
  }

  UpgradeResult r;
  r.status = 101;
  for (const auto& p : cfg.subprotocols) {
    if (!p.empty() && req.has_token_exact("Sec-WebSocket-Protocol", p)) {
      r.subprotocol = p;
      break;
    }
  }
  r.response.reserve(160);
  r.response.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
  r.response.append(compute_accept_key(*key));
  r.response.append("\r\n");
  if (!r.subprotocol.empty()) {
    r.response.append("Sec-WebSocket-Protocol: ");
    r.response.append(r.subprotocol);
    r.response.append("\r\n");
  }
  if (pmd.outcome == DeflateNegotiation::Outcome::Accepted) {
    r.deflate = true;
    r.deflate_params = pmd.params;
    r.response.append("Sec-WebSocket-Extensions: ");
    r.response.append(pmd.response);
    r.response.append("\r\n");
  }
  r.response.append("\r\n");
  return r;
}

std::string http_error_response(int status, std::string_view message,
                                std::string_view extra_headers) {
  std::string out;
  out.reserve(128 + message.size() + extra_headers.size());
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(http_reason_phrase(status));
  out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  out.append(std::to_string(message.size() + 1));
  out.append("\r\nConnection: close\r\n");
  out.append(extra_headers);
  out.append("\r\n");
  out.append(message);
  out.push_back('\n');
  return out;
}

const char* http_reason_phrase(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    // Every 4xx and 5xx of RFC 9110 section 15 and RFC 6585 / 7725: an
    // upgrade hook may reject with any of them.
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
  }
}

}  // namespace chatws::protocol
