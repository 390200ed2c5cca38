// Static files under one root directory, for GET and HEAD. Resolves the
// request path safely: no escape from the root by "..", percent-encoded dots
// or slashes, or symlinks pointing outside.
#pragma once

#include <string>
#include <string_view>

#include "http/file_body.h"
#include "protocol/http_request.h"

namespace chatws::http {

struct StaticResponse {
  int status = 0;            // 200, 206, 304, 400, 403, 404, 405, 412, 416, 500
  std::string head;          // status line + headers + CRLF
  std::string body;          // a short text (errors); empty for HEAD
  FileBody file;             // if valid(): the file bytes that follow the head
};

class StaticFiles {
 public:
  // `root` may be empty: then every request gets 404.
  explicit StaticFiles(std::string root);

  // Build the response for a GET/HEAD request; `keep_alive` selects the
  // Connection header. A file's bytes are not read here: the response holds
  // the open file (see FileBody), whatever its size. Never throws.
  StaticResponse serve(const protocol::HttpRequest& req, bool keep_alive) const;

  // Content-Type for a file name by extension ("application/octet-stream" default).
  static const char* content_type(std::string_view filename);

 private:
  std::string root_;       // realpath of the root, "" if none
};

}  // namespace chatws::http
