// Incremental HTTP/1.1 request-head parser with limits. Pure, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chatws::protocol {

// ASCII case-insensitive equality (header names, tokens).
bool ascii_iequals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string_view method;   // views into the parser's buffer
  std::string_view target;   // raw request-target, e.g. "/rooms/a?x=1"
  std::string_view path;     // target without query, still percent-encoded
  int version_minor = 1;     // HTTP/1.<minor>
  std::vector<std::pair<std::string_view, std::string_view>> headers;  // values trimmed

  // First header with this name (ASCII case-insensitive), or nullptr.
  const std::string_view* find(std::string_view name) const;
  // True if a comma-separated header (all occurrences) holds `token` (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;
  // Same, comparing the token case-sensitively (e.g. subprotocol names).
  bool has_token_exact(std::string_view name, std::string_view token) const;
  bool keep_alive() const;   // HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive
};

class HttpRequestParser {
 public:
  enum class Result { Incomplete, Complete, Error };

  explicit HttpRequestParser(size_t max_head_size = 8192) : max_(max_head_size) {}

  // Append bytes. Returns Complete once the head (up to CRLFCRLF) is parsed,
  // Error on malformed input (error_status() 400, also for an HTTP/1.1 head
  // without Host; 431 over the limit, 505 for a version other than HTTP/1.x,
  // 501 for Transfer-Encoding, 413 for a body), Incomplete otherwise. Bytes after the head are kept and reported
  // by leftover() (pipelined request or early WebSocket frames).
  Result feed(const char* data, size_t len);

  const HttpRequest& request() const { return req_; }
  int error_status() const { return status_; }
  const char* error_reason() const { return reason_; }
  std::string_view leftover() const;
  // Forget the parsed request, keeping leftover bytes as the start of the next.
  // Then feed(nullptr, 0) parses a request already complete in those bytes.
  void reset_keep_leftover();

 private:
  Result parse_head(size_t head_len);
  Result fail(int status, const char* why);

  size_t max_;
  std::string buf_;
  size_t scanned_ = 0;      // bytes of buf_ already searched for CRLFCRLF
  size_t head_len_ = 0;
  HttpRequest req_;
  int status_ = 0;
  const char* reason_ = "";
  bool done_ = false;
};

}  // namespace chatws::protocol
