#include "chat/json_escape.h"

#include <charconv>
#include <cstdint>

namespace chatws::chat {

namespace {

// 0 = copy as is, otherwise the short escape letter ('u' = \u00XX).
constexpr char escape_of(unsigned char c) {
  switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default: return (c < 0x20 || c == 0x7F) ? 'u' : 0;
  }
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void append_json_string(std::string* out, std::string_view s) {
  out->reserve(out->size() + s.size() + 2);
  out->push_back('"');
  const char* p = s.data();
  const char* end = p + s.size();
  const char* run = p;  // start of the bytes not yet copied
  while (p != end) {
    const auto c = static_cast<unsigned char>(*p);
    const char e = escape_of(c);
    // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
    const bool line_sep = c == 0xE2 && end - p >= 3 && static_cast<unsigned char>(p[1]) == 0x80 &&
                          (static_cast<unsigned char>(p[2]) & 0xFE) == 0xA8;
    if (e == 0 && !line_sep) {
      ++p;
      continue;
    }
    out->append(run, p);
    if (line_sep) {
      out->append(static_cast<unsigned char>(p[2]) == 0xA8 ? "\\u2028" : "\\u2029");
      p += 3;
    } else if (e == 'u') {
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out->append(esc, 6);
      ++p;
    } else {
      out->push_back('\\');
      out->push_back(e);
      ++p;
    }
    run = p;
  }
  out->append(run, end);
  out->push_back('"');
}

void append_json_int(std::string* out, long long v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

}  // namespace chatws::chat
