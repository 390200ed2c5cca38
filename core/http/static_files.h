// Static files under one root directory, for GET and HEAD. Resolves the
// request path safely: no escape from the root by "..", percent-encoded dots
// or slashes, or symlinks pointing outside.
#pragma once

#include <string>
#include <string_view>

#include "protocol/http_request.h"

namespace chatws::http {

struct StaticResponse {
  int status = 0;            // 200, 304?, 403, 404, 405, 500
  std::string head;          // status line + headers + CRLF
  std::string body;          // empty for HEAD and for errors with no body
};

class StaticFiles {
 public:
  // `root` may be empty: then every request gets 404.
  explicit StaticFiles(std::string root);

  // Build the response for a GET/HEAD request; `keep_alive` selects the
  // Connection header. Never throws.
  StaticResponse serve(const protocol::HttpRequest& req, bool keep_alive) const;

  // Content-Type for a file name by extension ("application/octet-stream" default).
  static const char* content_type(std::string_view filename);

 private:
  std::string root_;       // realpath of the root, "" if none
};

}  // namespace chatws::http
