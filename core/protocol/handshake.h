// The WebSocket opening handshake (RFC 6455 section 4.2), server side. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "protocol/http_request.h"
#include "protocol/permessage_deflate.h"

namespace chatws::protocol {

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) via OpenSSL.
std::string compute_accept_key(std::string_view sec_websocket_key);

// True if the request asks for a WebSocket upgrade at all (has an Upgrade
// header naming websocket), so that a bad one gets a WebSocket-specific answer.
bool wants_websocket(const HttpRequest& req);

struct UpgradeConfig {
  std::vector<std::string> subprotocols;     // server preference order
  std::vector<std::string> allowed_origins;  // empty: any
  DeflatePolicy deflate;                     // permessage-deflate (off unless enabled)
};

struct UpgradeResult {
  int status = 0;             // 101 on success, else the HTTP error status
  std::string response;       // complete HTTP response bytes to write
  std::string subprotocol;    // chosen one ("" if none)
  std::string error;          // human-readable reason when status != 101
  bool deflate = false;       // permessage-deflate accepted, with these parameters
  DeflateParams deflate_params;
};

// Validate an upgrade request: GET, HTTP/1.1, Host, Upgrade: websocket,
// Connection with the upgrade token, Sec-WebSocket-Version: 13 (else 426 with
// Sec-WebSocket-Version: 13), a Sec-WebSocket-Key decoding to 16 bytes (else
// 400), Origin in the allow-list (else 403); choose the subprotocol and
// negotiate permessage-deflate (a malformed Sec-WebSocket-Extensions: 400).
UpgradeResult evaluate_upgrade(const HttpRequest& req, const UpgradeConfig& cfg);

// A complete HTTP error response with a short text/plain body; `extra_headers`
// is inserted verbatim (each line ending in CRLF). Always "Connection: close".
std::string http_error_response(int status, std::string_view message,
                                std::string_view extra_headers = {});

// Standard reason phrase ("Not Found"), or "Unknown".
const char* http_reason_phrase(int status);

}  // namespace chatws::protocol
