// Fuzz target: the HTTP request-head parser and the upgrade decision.
//
// Input: 4 bytes split seed, 1 byte head-size limit, then the bytes a client
// sends. The bytes are parsed twice, whole and in pieces (feeding on after
// the head is complete, as pipelined bytes arrive). Checks
//   - both give the same result, error status, request fields and leftover;
//   - an error status is one the parser documents, a complete head is within
//     the limit and its views point into the parser's buffer;
//   - evaluate_upgrade() on a complete request answers 101 or an HTTP error
//     with a well-formed status line, and 101 only with a valid accept key;
//   - pipelined requests in the leftover parse one after another.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_split.h"
#include "protocol/handshake.h"
#include "protocol/http_request.h"

namespace {

using chatws::protocol::HttpRequest;
using chatws::protocol::HttpRequestParser;
using Result = HttpRequestParser::Result;

void check(bool ok) {
  if (!ok) std::abort();
}

// What a parse produced, copied out of the parser's views.
struct Outcome {
  Result result = Result::Incomplete;
  int status = 0;
  std::string method, target, path;
  int version_minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string leftover;

  bool operator==(const Outcome& o) const {
    return result == o.result && status == o.status && method == o.method &&
           target == o.target && path == o.path && version_minor == o.version_minor &&
           headers == o.headers && leftover == o.leftover;
  }
};

Outcome outcome_of(const HttpRequestParser& p, Result r) {
  Outcome o;
  o.result = r;
  o.status = p.error_status();
  if (r == Result::Error) {
    check(o.status == 400 || o.status == 413 || o.status == 431 || o.status == 501 ||
          o.status == 505);
  }
  if (r != Result::Complete) return o;
  const HttpRequest& q = p.request();
  o.method = q.method;
  o.target = q.target;
  o.path = q.path;
  o.version_minor = q.version_minor;
  for (const auto& [k, v] : q.headers) o.headers.emplace_back(k, v);
  o.leftover = p.leftover();
  check(!o.method.empty() && !o.target.empty());
  check(o.target.compare(0, o.path.size(), o.path) == 0);
  check(o.version_minor == 0 || o.version_minor == 1);
  return o;
}

void check_upgrade(const HttpRequest& req) {
  (void)req.keep_alive();
  const bool wants = chatws::protocol::wants_websocket(req);
  chatws::protocol::UpgradeConfig cfg;
  cfg.subprotocols = {"json", "chatws.v1"};
  chatws::protocol::UpgradeResult r = chatws::protocol::evaluate_upgrade(req, cfg);
  check(r.response.compare(0, 9, "HTTP/1.1 ") == 0);
  const size_t head_end = r.response.find("\r\n\r\n");
  check(head_end != std::string::npos);
  if (r.status == 101) {
    check(wants);
    const std::string_view* key = req.find("Sec-WebSocket-Key");
    check(key != nullptr);
    const std::string accept = chatws::protocol::compute_accept_key(*key);
    check(r.response.find("Sec-WebSocket-Accept: " + accept + "\r\n") < head_end);
    check(head_end + 4 == r.response.size());  // no body after a 101
    check(r.subprotocol.empty() || r.subprotocol == "json" || r.subprotocol == "chatws.v1");
  } else {
    check(r.status >= 400 && r.status <= 599 && !r.error.empty());
  }
  cfg.allowed_origins = {"http://127.0.0.1:8080"};
  r = chatws::protocol::evaluate_upgrade(req, cfg);
  check(r.status == 101 || (r.status >= 400 && r.status <= 599));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chatws::fuzz::Splitter split(chatws::fuzz::take_u32(data, size, 4));
  const uint32_t limit_sel = chatws::fuzz::take_u32(data, size, 1);
  // Small limits reach the 431 path with small inputs; 0 is the default.
  const size_t max_head = limit_sel == 0 ? 8192 : limit_sel * 8;
  const char* bytes = reinterpret_cast<const char*>(data);

  HttpRequestParser whole(max_head);
  const Result r1 = whole.feed(bytes, size);
  const Outcome o1 = outcome_of(whole, r1);

  HttpRequestParser pieces(max_head);
  Result r2 = Result::Incomplete;
  size_t fed = 0;
  while (fed < size) {
    const size_t n = split.next(size - fed);
    r2 = pieces.feed(bytes + fed, n);
    fed += n;
    if (r2 == Result::Error) break;
  }
  if (size == 0) r2 = pieces.feed(nullptr, 0);
  const Outcome o2 = outcome_of(pieces, r2);
  check(o1 == o2);

  if (r1 != Result::Complete) return 0;
  check(size - o1.leftover.size() <= max_head);
  check_upgrade(whole.request());

  // Pipelined requests: each reset parses the next head from the leftover.
  for (int i = 0; i < 64; ++i) {
    const size_t before = whole.leftover().size();
    whole.reset_keep_leftover();
    const Result r = whole.feed(nullptr, 0);
    const Outcome o = outcome_of(whole, r);
    if (r != Result::Complete) break;
    check(o.leftover.size() < before);
    check_upgrade(whole.request());
  }
  return 0;
}
