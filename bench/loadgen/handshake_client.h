// Client side of the WebSocket opening handshake: builds the upgrade request
// and checks the server's answer (status 101 and Sec-WebSocket-Accept).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chatws::bench {

// A fresh random Sec-WebSocket-Key (base64 of 16 random bytes).
std::string make_websocket_key();

// The full upgrade request for `path` on `host:port`.
std::string make_upgrade_request(std::string_view host, int port, std::string_view path,
                                 std::string_view key, std::string_view subprotocol = {},
                                 std::string_view extensions = {});

// base64(SHA-1(key + GUID)) computed here with libcrypto, independently of
// the server library under test.
std::string expected_accept(std::string_view key);

struct HandshakeCheck {
  enum Status { Incomplete, Ok, Failed } status = Incomplete;
  size_t header_bytes = 0;  // bytes of the response head, incl. the blank line
  std::string error;
};

// Look at the bytes received so far. Incomplete until the blank line ending
// the head has arrived (bounded: a head over 16 KiB fails). Bytes after
// header_bytes are already WebSocket frames.
HandshakeCheck check_upgrade_response(std::string_view received, std::string_view key);

}  // namespace chatws::bench
