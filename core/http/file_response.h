// What a GET or HEAD of a static file answers, decided from the request's
// headers and the file's metadata alone: validators (ETag, Last-Modified),
// conditional requests (RFC 9110 13), byte ranges (RFC 9110 14) and the
// response head. Pure: no I/O, the clock is a parameter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/http_request.h"

namespace chatws::http {

// The version of a file a response describes, as fstat() saw it.
struct FileVersion {
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t inode = 0;
  bool operator==(const FileVersion&) const = default;
};

// The strong entity tag of a version, quoted: "<size>-<mtime ns>-<inode>" in
// lowercase hex. Any change of size, modification time or inode changes it.
std::string entity_tag(const FileVersion& v);

// IMF-fixdate (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(int64_t unix_seconds);
// Any of the three HTTP-date forms (IMF-fixdate, RFC 850, asctime); false
// for anything else. A two-digit RFC 850 year below 70 is 20xx, else 19xx.
bool parse_http_date(std::string_view s, int64_t* unix_seconds);

struct ByteRange {
  uint64_t first = 0;
  uint64_t length = 0;
};

enum class RangeKind {
  Whole,          // no Range, or one the server ignores (the whole file, 200)
  Partial,        // one satisfiable byte range (206)
  Unsatisfiable,  // no byte of the range exists (416)
};

// Interprets a Range field value for a representation of `size` bytes. One
// range spec ("a-b", "a-", "-n") is served; a malformed value, another unit
// or several ranges are ignored (RFC 9110 14.2 allows a server to answer
// those with the whole representation).
RangeKind parse_range(std::string_view value, uint64_t size, ByteRange* out);

// A head: status line, Content-Type, Content-Length, Cache-Control: no-cache,
// X-Content-Type-Options: nosniff, Connection, then `extra` (whole lines).
std::string response_head(int status, std::string_view type, uint64_t length, bool keep_alive,
                          std::string_view extra = {});

// The answer to a GET or HEAD of a regular file.
struct FileAnswer {
  int status = 200;      // 200, 206, 304, 412 or 416
  std::string head;
  std::string body;      // the short text of a 412/416 (empty for HEAD)
  uint64_t offset = 0;   // the bytes of the file that follow the head:
  uint64_t length = 0;   // [offset, offset + length), none for HEAD/304/412/416
};

// Evaluates If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
// Range and If-Range in the order RFC 9110 13.2.2 gives, for a file of
// version `v` served as `type`, at time `now` (Last-Modified is never later
// than now). Every file response carries Accept-Ranges, ETag, Last-Modified
// and Date.
FileAnswer answer_file(const protocol::HttpRequest& req, const FileVersion& v, std::string_view type,
                       bool keep_alive, int64_t now);

}  // namespace chatws::http
