// What the host's upgrade hook sees (UpgradeRequest) and answers
// (UpgradeVerdict), and the checks an answer must pass before anything of it
// is sent. Included by server.h; the engine side is upgrade_hook.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/request_view.h"

namespace chatws {

using ConnId = uint64_t;

// Views into the connection's request head and strings built for the hook;
// valid only during ServerHandler::on_upgrade_request.
struct UpgradeRequest {
  ConnId id = 0;                  // names the request in Server::resolve_upgrade
  std::string_view method;
  std::string path;               // percent-decoded
  std::string_view raw_path;      // as sent, without the query
  std::string_view query;         // after '?', raw ("" if none)
  protocol::NameValues params;    // query parameters, decoded, in order
  const std::vector<std::pair<std::string_view, std::string_view>>* headers = nullptr;
  protocol::NameValues cookies;
  std::string remote_address;
  uint16_t remote_port = 0;
  std::vector<std::string> offered;  // subprotocols the client offered
  std::string_view subprotocol;      // the one chatws chose ("" if none)
};

struct UpgradeVerdict {
  enum Kind : uint8_t { Accept, Reject, Pending };
  Kind kind = Accept;
  bool has_identity = false;
  std::string identity;           // Accept: bound to the connection for its life
  void* user_data = nullptr;      // Accept: the connection's user data
  int status = 0;                 // Reject: 400-599
  std::string reason;             // Reject: reason phrase ("" : the standard one)
  std::string body;               // Reject: text/plain body
  protocol::NameValues headers;   // Accept and Reject: extra response headers
  std::string invalid;            // set by a binding that could not read the host's answer
};

// Limits of an answer (each checked by validate_verdict).
inline constexpr size_t kMaxIdentityBytes = 1024;
inline constexpr size_t kMaxReasonBytes = 128;
inline constexpr size_t kMaxBodyBytes = 4096;
inline constexpr size_t kMaxExtraHeaders = 32;
inline constexpr size_t kMaxHeaderBytes = 4096;  // one header's name + value

// "" if the verdict may be sent, else why not (a message for the host).
// Rejects: a status outside 400-599, a reason with controls or over
// kMaxReasonBytes, a body over kMaxBodyBytes, an identity that is empty, not
// UTF-8, holds a control character or is over kMaxIdentityBytes, a header
// name that is not a token or is one chatws writes itself (Content-Length,
// Connection, Upgrade, Sec-WebSocket-*, Transfer-Encoding), a header value
// with CR, LF or another control, more than kMaxExtraHeaders headers.
std::string validate_verdict(const UpgradeVerdict& v);

// "Name: value\r\n" for each extra header (already validated).
std::string header_lines(const protocol::NameValues& headers);

// The complete response of a rejection (already validated): its status and
// reason, the extra headers, Content-Length, Connection: close, the body.
std::string reject_response(const UpgradeVerdict& v);

// The 101 response `accept` with `extra` header lines inserted before its
// final CRLF.
std::string with_headers(std::string_view accept, std::string_view extra);

}  // namespace chatws
