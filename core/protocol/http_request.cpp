// Incremental HTTP/1.x request-head parser (RFC 9112 sections 2-3, 5).
//
// The size limit counts the whole head, request line through the final
// CRLFCRLF: a head of exactly max_head_size bytes is accepted, one more byte
// is a 431, decided as soon as that byte arrives (no terminator needed).
//
// Decisions:
// - Lines must end in CRLF. A bare LF (or a CR not followed by LF) is a 400:
//   RFC 9112 2.2 only allows accepting a lone LF, and one strict line ending
//   leaves no room for framing disagreements with a proxy in front of us.
// - Leading empty lines before the request line are not skipped (400).
// - obs-fold (a header line starting with SP/HTAB) is rejected (400), as
//   RFC 9112 5.2 allows.
// - An HTTP/1.1 request without Host, or with a second one, is a 400 (RFC
//   9112 3.2), decided here for static requests and upgrades alike. HTTP/1.0
//   predates Host and may omit it; an empty value is valid (a target
//   without authority).
// - No request bodies: Transfer-Encoding is 501, Content-Length other than 0
//   is 413, an unparsable or conflicting Content-Length is 400.
#include "protocol/http_request.h"

#include <cstdint>
#include <cstring>

namespace chatws::protocol {

namespace {

// tchar (RFC 9110 5.6.2): the characters of a method or header name.
bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// field-value characters: VCHAR, SP, HTAB, obs-text. No other controls.
bool is_field_value(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each non-empty element of a comma-separated list,
// trimmed of SP/HTAB; stops early when f returns true and returns that.
template <class F>
bool any_list_element(std::string_view list, F f) {
  while (true) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty() && f(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

const std::string_view* HttpRequest::find(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return &v;
  }
  return nullptr;
}

bool HttpRequest::has_token(std::string_view name, std::string_view token) const {
  for (const auto& [k, v] : headers) {
    if (!ascii_iequals(k, name)) continue;
    if (any_list_element(v, [&](std::string_view item) { return ascii_iequals(item, token); })) {
      return true;
    }
  }
  return false;
}

bool HttpRequest::has_token_exact(std::string_view name, std::string_view token) const {
  for (const auto& [k, v] : headers) {
    if (!ascii_iequals(k, name)) continue;
    if (any_list_element(v, [&](std::string_view item) { return item == token; })) return true;
  }
  return false;
}

bool HttpRequest::keep_alive() const {
  if (version_minor >= 1) return !has_token("Connection", "close");
  return has_token("Connection", "keep-alive") && !has_token("Connection", "close");
}

HttpRequestParser::Result HttpRequestParser::fail(int status, const char* why) {
  status_ = status;
  reason_ = why;
  return Result::Error;
}

HttpRequestParser::Result HttpRequestParser::feed(const char* data, size_t len) {
  if (status_ != 0) return Result::Error;
  if (len > 0) {
    // Integer, not pointer: the old buffer may be freed by append().
    const uintptr_t old_base = reinterpret_cast<uintptr_t>(buf_.data());
    buf_.append(data, len);
    if (done_ && reinterpret_cast<uintptr_t>(buf_.data()) != old_base) {
      // More bytes after a complete head (pipelining) moved the buffer: the
      // request's views must follow it.
      auto rebase = [&](std::string_view& view) {
        if (view.data() == nullptr) return;
        const size_t off = reinterpret_cast<uintptr_t>(view.data()) - old_base;
        view = std::string_view(buf_.data() + off, view.size());
      };
      rebase(req_.method);
      rebase(req_.target);
      rebase(req_.path);
      for (auto& [k, v] : req_.headers) {
        rebase(k);
        rebase(v);
      }
    }
  }
  if (done_) return Result::Complete;

  // Look for the end of the head only in bytes not scanned yet, and never
  // past the limit: a head that has not ended within max_ bytes is a 431
  // however much more arrives.
  const size_t limit = buf_.size() < max_ ? buf_.size() : max_;
  while (scanned_ < limit) {
    const void* hit = std::memchr(buf_.data() + scanned_, '\n', limit - scanned_);
    if (hit == nullptr) {
      scanned_ = limit;
      break;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(hit) - buf_.data());
    scanned_ = lf + 1;
    if (lf == 0 || buf_[lf - 1] != '\r') return fail(400, "bare LF in request head");
    // An empty line (CRLF right after the previous line's CRLF) ends the head.
    if (lf >= 3 && buf_[lf - 2] == '\n' && buf_[lf - 3] == '\r') {
      head_len_ = lf + 1;
      return parse_head(head_len_);
    }
    if (lf == 1) return fail(400, "empty line before the request line");
  }
  if (buf_.size() > max_) return fail(431, "request head too large");
  return Result::Incomplete;
}

HttpRequestParser::Result HttpRequestParser::parse_head(size_t head_len) {
  // head_len includes the final CRLFCRLF; every line ends in CRLF (checked
  // while scanning). Work line by line, excluding the terminating empty line.
  std::string_view head(buf_.data(), head_len - 2);
  auto next_line = [&head]() {
    size_t crlf = head.find("\r\n");  // always present (see above)
    std::string_view line = head.substr(0, crlf);
    head.remove_prefix(crlf + 2);
    return line;
  };

  // request-line = method SP request-target SP HTTP-version
  std::string_view line = next_line();
  for (unsigned char c : line) {
    if (c == '\r') return fail(400, "bare CR in request line");
  }
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return fail(400, "malformed request line");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "invalid method");
  if (target.empty()) return fail(400, "empty request target");
  for (unsigned char c : target) {
    // Visible ASCII only: no spaces, controls or raw non-ASCII bytes.
    if (c <= 0x20 || c >= 0x7F) return fail(400, "invalid character in request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || version[7] > '1') return fail(505, "only HTTP/1.0 and HTTP/1.1");

  req_.method = method;
  req_.target = target;
  req_.path = target.substr(0, target.find('?'));
  req_.version_minor = version[7] - '0';
  req_.headers.clear();

  // field-line = field-name ":" OWS field-value OWS
  bool have_host = false, have_length = false;
  std::string_view length_value;
  while (!head.empty()) {
    line = next_line();
    if (line.front() == ' ' || line.front() == '\t') return fail(400, "obsolete line folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without a colon");
    std::string_view name = line.substr(0, colon);
    // is_token also rejects whitespace between the name and the colon.
    if (!is_token(name)) return fail(400, "invalid header name");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) return fail(400, "invalid character in header value");
    req_.headers.emplace_back(name, value);

    if (ascii_iequals(name, "Host")) {
      if (have_host) return fail(400, "more than one Host header");
      have_host = true;
    } else if (ascii_iequals(name, "Transfer-Encoding")) {
      return fail(501, "Transfer-Encoding is not supported");
    } else if (ascii_iequals(name, "Content-Length")) {
      if (have_length && value != length_value) return fail(400, "conflicting Content-Length");
      have_length = true;
      length_value = value;
      if (value.empty()) return fail(400, "invalid Content-Length");
      bool zero = true;
      for (char c : value) {
        if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
        zero = zero && c == '0';
      }
      if (!zero) return fail(413, "request bodies are not accepted");
    }
  }
  if (!have_host && req_.version_minor >= 1) return fail(400, "missing Host header");
  done_ = true;
  return Result::Complete;
}

std::string_view HttpRequestParser::leftover() const {
  if (!done_) return {};
  return std::string_view(buf_).substr(head_len_);
}

void HttpRequestParser::reset_keep_leftover() {
  if (done_) buf_.erase(0, head_len_);
  req_ = HttpRequest();
  scanned_ = 0;
  head_len_ = 0;
  status_ = 0;
  reason_ = "";
  done_ = false;
}

}  // namespace chatws::protocol
