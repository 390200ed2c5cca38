// permessage-deflate (RFC 7692) negotiation, server side. Pure: the
// Sec-WebSocket-Extensions values of a request in, the parameters in use and
// the exact response header value out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chatws::protocol {

// What the server is willing to do.
struct DeflatePolicy {
  bool enabled = false;
  // Always answer server_no_context_takeover (the shared mode: one deflate of
  // a frame serves every receiver), even when the client did not ask.
  bool server_no_context_takeover = false;
  // Always answer client_no_context_takeover (the client resets its
  // compressor per message: the server keeps no inflate window).
  bool client_no_context_takeover = false;
  // The largest window the server compresses with (9..15; zlib cannot
  // compress raw deflate with a 256-byte window, so an offer demanding
  // server_max_window_bits=8 is declined).
  uint8_t server_window_bits = 15;
  // The window asked of the client when its offer allows it (a
  // client_max_window_bits parameter): bounds the server's inflate state.
  uint8_t client_window_bits = 15;
};

// The parameters in use on a connection, as negotiated.
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  uint8_t server_max_window_bits = 15;  // the server compresses within this window
  uint8_t client_max_window_bits = 15;  // the client does (inflate needs this much)
};

struct DeflateNegotiation {
  enum class Outcome : uint8_t {
    None,      // not offered, or every offer declined: no extension
    Accepted,  // `params` in use; `response` is the header value to send
    Fail,      // malformed header: fail the handshake (400, `error`)
  };
  Outcome outcome = Outcome::None;
  DeflateParams params;
  std::string response;  // e.g. "permessage-deflate; server_no_context_takeover"
  std::string error;
};

// Chooses the first acceptable permessage-deflate offer among all the
// values of Sec-WebSocket-Extensions (in header order, each a
// comma-separated list). Other extensions are ignored. An offer with an
// unknown parameter, a parameter given twice or an invalid value is declined
// (RFC 7692 5, 7.1): the next offer is considered. A value that does not
// parse as an extension list (RFC 6455 9.1) fails the handshake. Nothing is
// read when the policy is not enabled.
DeflateNegotiation negotiate_deflate(const std::vector<std::string_view>& header_values,
                                     const DeflatePolicy& policy);

}  // namespace chatws::protocol
