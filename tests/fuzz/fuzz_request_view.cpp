// Fuzz target: what the upgrade hook is shown of a request (issue 12), from
// any bytes a client sends: the parsed head, then the percent-decoded path,
// the query parameters, the cookies and the offered subprotocols. Checks
//   - decoding never yields a NUL, and fails exactly on a '%' not followed
//     by two hex digits or one that decodes to NUL (checked against a
//     reference decoder written differently);
//   - every query parameter and cookie name is non-empty (cookies) and free
//     of the separators it was split on;
//   - the cookies and offered subprotocols come only from their headers;
//   - an answer built from request values (headers echoed back) passes or
//     fails validate_verdict exactly by the CR/LF/control rule, and a
//     passing one's response has no bytes outside its own lines.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/http_request.h"
#include "protocol/request_view.h"
#include "server/upgrade_types.h"

namespace {

using namespace chatws;
using namespace chatws::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The reference: index-based, no early returns in the loop.
bool reference_decode(std::string_view in, bool plus, std::string* out) {
  bool ok = true;
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    size_t step = 1;
    if (c == '%') {
      int hi = i + 1 < in.size() ? hex(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        ok = false;
        break;
      }
      c = static_cast<char>(hi * 16 + lo);
      step = 3;
    } else if (plus && c == '+') {
      c = ' ';
    }
    if (c == '\0') ok = false;
    out->push_back(c);
    i += step;
  }
  return ok;
}

void check_decode(std::string_view s, bool plus) {
  std::string a, b;
  bool ra = percent_decode(s, plus, &a);
  bool rb = reference_decode(s, plus, &b);
  check(ra == rb);
  if (ra) {
    check(a == b);
    check(a.find('\0') == std::string::npos);
  }
}

bool has_control(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Raw decoding of the whole input, both ways.
  check_decode(bytes.substr(0, 512), false);
  check_decode(bytes.substr(0, 512), true);

  HttpRequestParser parser(8192);
  if (parser.feed(bytes.data(), bytes.size()) != HttpRequestParser::Result::Complete) return 0;
  const HttpRequest& req = parser.request();
  check_decode(req.path, false);
  std::string_view query = query_of(req.target);
  check(query.find('#') == std::string_view::npos);
  NameValues params;
  if (parse_query(query, &params)) {
    for (const auto& [n, v] : params) {
      check(n.find('\0') == std::string::npos && v.find('\0') == std::string::npos);
    }
  }
  NameValues cookies;
  parse_cookies(req, &cookies);
  bool any_cookie_header = false;
  for (const auto& [n, v] : req.headers) any_cookie_header |= ascii_iequals(n, "cookie");
  check(any_cookie_header || cookies.empty());
  for (const auto& [n, v] : cookies) {
    check(!n.empty());
    check(n.find(';') == std::string::npos && v.find(';') == std::string::npos);
    check(n.find('=') == std::string::npos);
  }
  for (const std::string& p : offered_subprotocols(req)) {
    check(!p.empty() && p.find(',') == std::string::npos);
  }

  // Echo the request's headers back (plus one value from the raw input):
  // valid exactly when no value holds a control character.
  UpgradeVerdict v;
  v.kind = UpgradeVerdict::Reject;
  v.status = 401;
  bool expect_ok = true;
  for (const auto& [n, val] : req.headers) {
    if (v.headers.size() == kMaxExtraHeaders) break;
    std::string name = "X-" + std::string(n);  // never one chatws writes itself
    v.headers.emplace_back(name, std::string(val));
    if (has_control(val) || name.size() + val.size() > kMaxHeaderBytes) expect_ok = false;
  }
  std::string raw(bytes.substr(0, 64));
  if (v.headers.size() < kMaxExtraHeaders) {
    v.headers.emplace_back("X-Raw", raw);
    if (has_control(raw)) expect_ok = false;
  }
  std::string why = validate_verdict(v);
  check(why.empty() == expect_ok);
  if (why.empty()) {
    std::string resp = reject_response(v);
    // Lines: status, 3 of chatws's, one per header, the blank one.
    size_t crlf = 0;
    for (size_t at = resp.find("\r\n"); at != std::string::npos; at = resp.find("\r\n", at + 2))
      ++crlf;
    check(crlf == 4 + v.headers.size() + 1);
    check(resp.find('\n') == resp.find("\r\n") + 1);
  }
  return 0;
}
