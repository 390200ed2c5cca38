#include "server/upgrade_types.h"

#include <cstring>

#include "protocol/handshake.h"
#include "protocol/utf8.h"

namespace chatws {

namespace {

bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// VCHAR, SP, HTAB, obs-text: what a field value (or a reason phrase) may hold.
// CR and LF above all: one of them would let the host's string start a
// header or a body of its own (response splitting).
bool is_field_text(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  }
  return true;
}

bool reserved_header(std::string_view name) {
  using protocol::ascii_iequals;
  static constexpr std::string_view kOwn[] = {"content-length", "connection", "upgrade",
                                             "transfer-encoding", "content-type"};
  for (std::string_view own : kOwn) {
    if (ascii_iequals(name, own)) return true;
  }
  return name.size() >= 14 && ascii_iequals(name.substr(0, 14), "sec-websocket-");
}

}  // namespace

std::string validate_verdict(const UpgradeVerdict& v) {
  if (!v.invalid.empty()) return v.invalid;
  if (v.kind == UpgradeVerdict::Pending) return "";
  if (v.kind == UpgradeVerdict::Reject) {
    if (v.status < 400 || v.status > 599) return "reject status must be between 400 and 599";
    if (v.reason.size() > kMaxReasonBytes) return "reject reason is longer than 128 bytes";
    if (!is_field_text(v.reason)) return "reject reason holds CR, LF or another control character";
    if (v.body.size() > kMaxBodyBytes) return "reject body is longer than 4096 bytes";
  } else if (v.has_identity) {
    if (v.identity.empty()) return "identity is empty";
    if (v.identity.size() > kMaxIdentityBytes) return "identity is longer than 1024 bytes";
    if (!protocol::is_valid_utf8(v.identity.data(), v.identity.size()))
      return "identity is not valid UTF-8";
    for (unsigned char c : v.identity) {
      if (c < 0x20 || c == 0x7F) return "identity holds a control character";
    }
  }
  if (v.headers.size() > kMaxExtraHeaders) return "more than 32 extra headers";
  for (const auto& [name, value] : v.headers) {
    if (name.empty()) return "header name is empty";
    for (unsigned char c : name) {
      if (!is_tchar(c)) return "header name '" + name + "' is not an HTTP token";
    }
    if (reserved_header(name)) return "header '" + name + "' is written by chatws itself";
    if (!is_field_text(value))
      return "value of header '" + name + "' holds CR, LF or another control character";
    if (name.size() + value.size() > kMaxHeaderBytes)
      return "header '" + name + "' is longer than 4096 bytes";
  }
  return "";
}

std::string header_lines(const protocol::NameValues& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  return out;
}

std::string reject_response(const UpgradeVerdict& v) {
  std::string out = "HTTP/1.1 " + std::to_string(v.status) + " ";
  out.append(v.reason.empty() ? protocol::http_reason_phrase(v.status) : v.reason);
  out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  out.append(std::to_string(v.body.size()));
  out.append("\r\nConnection: close\r\n");
  out.append(header_lines(v.headers));
  out.append("\r\n");
  out.append(v.body);
  return out;
}

std::string with_headers(std::string_view accept, std::string_view extra) {
  std::string out(accept.substr(0, accept.size() - 2));  // before the final CRLF
  out.append(extra).append("\r\n");
  return out;
}

}  // namespace chatws
