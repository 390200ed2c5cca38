// HttpRequestParser and HttpRequest helpers.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "protocol/http_request.h"

namespace chatws::protocol {
namespace {

using Result = HttpRequestParser::Result;

// Feeds `s` whole; returns the result.
Result parse(HttpRequestParser& p, const std::string& s) { return p.feed(s.data(), s.size()); }

// Feeds `s` one byte at a time; returns the first non-Incomplete result (or
// Incomplete) and the number of bytes fed until then.
std::pair<Result, size_t> parse_bytewise(HttpRequestParser& p, const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    Result r = p.feed(s.data() + i, 1);
    if (r != Result::Incomplete) return {r, i + 1};
  }
  return {Result::Incomplete, s.size()};
}

const std::string kSimple =
    "GET /chat/room?x=1&y=2 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Upgrade:websocket\r\n"
    "X-Spaces: \t padded value \t \r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "\r\n";

TEST(HttpRequest, ParsesRequestLineAndHeaders) {
  for (int mode = 0; mode < 2; ++mode) {
    HttpRequestParser p;
    if (mode == 0) {
      ASSERT_EQ(parse(p, kSimple), Result::Complete);
    } else {
      auto [r, n] = parse_bytewise(p, kSimple);
      ASSERT_EQ(r, Result::Complete);
      EXPECT_EQ(n, kSimple.size());
    }
    const HttpRequest& req = p.request();
    EXPECT_EQ(req.method, "GET");
    EXPECT_EQ(req.target, "/chat/room?x=1&y=2");
    EXPECT_EQ(req.path, "/chat/room");
    EXPECT_EQ(req.version_minor, 1);
    ASSERT_EQ(req.headers.size(), 4u);
    EXPECT_EQ(req.headers[1].first, "Upgrade");
    EXPECT_EQ(req.headers[1].second, "websocket");
    EXPECT_EQ(req.headers[2].second, "padded value");
    ASSERT_NE(req.find("host"), nullptr);
    EXPECT_EQ(*req.find("HOST"), "example.com");
    EXPECT_EQ(req.find("Missing"), nullptr);
    EXPECT_TRUE(req.has_token("connection", "upgrade"));
    EXPECT_TRUE(req.keep_alive());
    EXPECT_TRUE(p.leftover().empty());
  }
}

TEST(HttpRequest, AnyTokenMethodIsAccepted) {
  for (const char* m : {"POST", "DELETE", "PURGE", "X-CUSTOM!", "get"}) {
    HttpRequestParser p;
    std::string s = std::string(m) + " / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse(p, s), Result::Complete) << m;
    EXPECT_EQ(p.request().method, m);
  }
}

TEST(HttpRequest, Http10AndKeepAlive) {
  struct Case {
    std::string req;
    bool keep;
  };
  const Case cases[] = {
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n", false},
  };
  for (const auto& c : cases) {
    HttpRequestParser p;
    ASSERT_EQ(parse(p, c.req), Result::Complete) << c.req;
    EXPECT_EQ(p.request().keep_alive(), c.keep) << c.req;
  }
}

TEST(HttpRequest, LeftoverAndPipelining) {
  const std::string two =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n\x81";
  HttpRequestParser p;
  ASSERT_EQ(parse(p, two), Result::Complete);
  EXPECT_EQ(p.request().path, "/a");
  EXPECT_EQ(p.leftover(), "GET /b HTTP/1.1\r\nHost: h\r\n\r\n\x81");
  p.reset_keep_leftover();
  ASSERT_EQ(p.feed(nullptr, 0), Result::Complete);
  EXPECT_EQ(p.request().path, "/b");
  EXPECT_EQ(p.leftover(), "\x81");
}

TEST(HttpRequest, ViewsSurviveMoreBytesAfterCompletion) {
  HttpRequestParser p;
  ASSERT_EQ(parse(p, "GET /views HTTP/1.1\r\nHost: h\r\n\r\n"), Result::Complete);
  std::string more(100000, 'w');  // forces the buffer to reallocate
  EXPECT_EQ(parse(p, more), Result::Complete);
  EXPECT_EQ(p.request().path, "/views");
  EXPECT_EQ(*p.request().find("host"), "h");
  EXPECT_EQ(p.leftover().size(), more.size());
}

TEST(HttpRequest, ContentLengthZeroIsFine) {
  HttpRequestParser p;
  EXPECT_EQ(parse(p, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
            Result::Complete);
}

// RFC 9112 3.2: an HTTP/1.1 request without Host is a 400, whatever it asks
// for (a file or an upgrade); HTTP/1.0 predates Host and may omit it; an
// empty Host value is what a client sends for a target without authority.
TEST(HttpRequest, Http11RequiresHost) {
  for (const char* req : {"GET / HTTP/1.1\r\n\r\n", "GET /index.html HTTP/1.1\r\nX: a\r\n\r\n",
                          "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"}) {
    HttpRequestParser p;
    ASSERT_EQ(parse(p, req), Result::Error) << req;
    EXPECT_EQ(p.error_status(), 400) << req;
    EXPECT_STREQ(p.error_reason(), "missing Host header") << req;
  }
  for (const char* req : {"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
                          "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"}) {
    HttpRequestParser p;
    EXPECT_EQ(parse(p, req), Result::Complete) << req;
  }
}

struct StatusCase {
  const char* name;
  std::string req;
  int status;
};

void PrintTo(const StatusCase& c, std::ostream* os) { *os << c.name; }

class HttpRequestErrors : public ::testing::TestWithParam<StatusCase> {};

TEST_P(HttpRequestErrors, Status) {
  const auto& c = GetParam();
  {
    HttpRequestParser p;
    EXPECT_EQ(parse(p, c.req), Result::Error);
    EXPECT_EQ(p.error_status(), c.status);
    EXPECT_STRNE(p.error_reason(), "");
    EXPECT_EQ(p.feed("x", 1), Result::Error) << "stays failed";
  }
  {
    HttpRequestParser p;
    auto [r, n] = parse_bytewise(p, c.req);
    EXPECT_EQ(r, Result::Error);
    EXPECT_EQ(p.error_status(), c.status);
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, HttpRequestErrors,
    ::testing::Values(
        StatusCase{"bare_lf_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
        StatusCase{"bare_lf_end", "GET / HTTP/1.1\r\nHost: a\n\n", 400},
        StatusCase{"lone_lf_first", "\nGET / HTTP/1.1\r\n\r\n", 400},
        StatusCase{"leading_empty_line", "\r\nGET / HTTP/1.1\r\n\r\n", 400},
        StatusCase{"bare_cr_in_line", "GET /\r HTTP/1.1\r\n\r\n", 400},
        StatusCase{"no_spaces", "GET\r\n\r\n", 400},
        StatusCase{"one_space", "GET /\r\n\r\n", 400},
        StatusCase{"double_space", "GET  / HTTP/1.1\r\n\r\n", 400},
        StatusCase{"trailing_space", "GET / HTTP/1.1 \r\n\r\n", 400},
        StatusCase{"empty_method", " / HTTP/1.1\r\n\r\n", 400},
        StatusCase{"bad_method_char", "G(T / HTTP/1.1\r\n\r\n", 400},
        StatusCase{"control_in_target", std::string("GET /a\x01 HTTP/1.1\r\n\r\n"), 400},
        StatusCase{"non_ascii_target", "GET /\xC3\xA9 HTTP/1.1\r\n\r\n", 400},
        StatusCase{"bad_version_word", "GET / HTTX/1.1\r\n\r\n", 400},
        StatusCase{"bad_version_shape", "GET / HTTP/1.10\r\n\r\n", 400},
        StatusCase{"version_letters", "GET / HTTP/a.b\r\n\r\n", 400},
        StatusCase{"http2", "GET / HTTP/2.0\r\n\r\n", 505},
        StatusCase{"http09", "GET / HTTP/0.9\r\n\r\n", 505},
        StatusCase{"http12", "GET / HTTP/1.2\r\n\r\n", 505},
        StatusCase{"header_no_colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
        StatusCase{"space_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        StatusCase{"empty_header_name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400},
        StatusCase{"obs_fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},
        StatusCase{"control_in_value", std::string("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), 400},
        StatusCase{"nul_in_value", std::string("GET / HTTP/1.1\r\nX: a") + '\0' + "b\r\n\r\n", 400},
        StatusCase{"cr_in_value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
        StatusCase{"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
        StatusCase{"no_host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400},
        StatusCase{"transfer_encoding", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   501},
        StatusCase{"content_length", "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413},
        StatusCase{"content_length_bad", "GET / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", 400},
        StatusCase{"content_length_neg", "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        StatusCase{"content_length_empty", "GET / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
        StatusCase{"content_length_conflict",
                   "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n", 400}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(HttpRequest, RandomSplitsGiveTheSameRequest) {
  std::mt19937 rng(5);
  const std::string s = kSimple + "\x81\x85rest";
  for (int trial = 0; trial < 200; ++trial) {
    HttpRequestParser p;
    Result r = Result::Incomplete;
    for (size_t pos = 0; pos < s.size();) {
      size_t n = std::min<size_t>(1 + rng() % 12, s.size() - pos);
      r = p.feed(s.data() + pos, n);
      pos += n;
    }
    ASSERT_EQ(r, Result::Complete);
    EXPECT_EQ(p.request().target, "/chat/room?x=1&y=2");
    EXPECT_EQ(p.request().headers.size(), 4u);
    EXPECT_EQ(p.leftover(), "\x81\x85rest");
  }
}

// --- the head size limit ----------------------------------------------------

// A request whose head (through CRLFCRLF) is exactly `size` bytes.
std::string head_of_size(size_t size) {
  std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  std::string end = "\r\n\r\n";
  return start + std::string(size - start.size() - end.size(), 'p') + end;
}

TEST(HttpRequestLimit, ExactlyAtLimitIsAcceptedOneOverIs431) {
  for (size_t limit : {64u, 100u, 8192u}) {
    std::string at = head_of_size(limit);
    ASSERT_EQ(at.size(), limit);
    HttpRequestParser ok(limit);
    EXPECT_EQ(parse(ok, at), Result::Complete) << limit;
    HttpRequestParser ok_bytewise(limit);
    EXPECT_EQ(parse_bytewise(ok_bytewise, at).first, Result::Complete) << limit;

    std::string over = head_of_size(limit + 1);
    HttpRequestParser bad(limit);
    EXPECT_EQ(parse(bad, over), Result::Error);
    EXPECT_EQ(bad.error_status(), 431);
    HttpRequestParser bad_bytewise(limit);
    auto [r, n] = parse_bytewise(bad_bytewise, over);
    EXPECT_EQ(r, Result::Error);
    EXPECT_EQ(bad_bytewise.error_status(), 431);
    EXPECT_EQ(n, limit + 1) << "decided at the first byte over the limit";
  }
}

TEST(HttpRequestLimit, Over431EvenWithoutTerminator) {
  HttpRequestParser p(100);
  std::string s = "GET / HTTP/1.1\r\nX-Long: " + std::string(200, 'a');  // never ends
  EXPECT_EQ(parse(p, s), Result::Error);
  EXPECT_EQ(p.error_status(), 431);
  HttpRequestParser q(100);
  auto [r, n] = parse_bytewise(q, s);
  EXPECT_EQ(r, Result::Error);
  EXPECT_EQ(n, 101u);
}

TEST(HttpRequestLimit, LongRequestLineIs431) {
  HttpRequestParser p(64);
  EXPECT_EQ(parse(p, "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n"), Result::Error);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(HttpRequestLimit, BytesAfterHeadDoNotCountTowardsIt) {
  std::string req = head_of_size(100) + std::string(500, '\x82');
  HttpRequestParser p(100);
  EXPECT_EQ(parse(p, req), Result::Complete);
  EXPECT_EQ(p.leftover().size(), 500u);
}

TEST(HttpRequestLimit, IncompleteBelowLimitWaits) {
  HttpRequestParser p(100);
  EXPECT_EQ(parse(p, "GET / HTTP/1.1\r\nHost: a\r\n"), Result::Incomplete);
  EXPECT_EQ(parse(p, "\r"), Result::Incomplete);
  EXPECT_EQ(parse(p, "\n"), Result::Complete);
}

// --- has_token ----------------------------------------------------------------

HttpRequest with_headers(std::vector<std::pair<std::string_view, std::string_view>> h) {
  HttpRequest r;
  r.headers = std::move(h);
  return r;
}

TEST(HttpRequestTokens, HasTokenEdgeCases) {
  auto r = with_headers({{"Connection", "keep-alive,Upgrade"},
                         {"X-List", " , ,\t a \t, b c ,"},
                         {"connection", "  UPGRADE2 "},
                         {"Sec-WebSocket-Protocol", "chat, JSON"},
                         {"sec-websocket-protocol", "superchat"}});
  EXPECT_TRUE(r.has_token("Connection", "upgrade"));
  EXPECT_TRUE(r.has_token("CONNECTION", "Keep-Alive"));
  EXPECT_TRUE(r.has_token("Connection", "upgrade2")) << "second header with the same name";
  EXPECT_FALSE(r.has_token("Connection", "upgrad"));
  EXPECT_FALSE(r.has_token("Connection", "keep"));
  EXPECT_TRUE(r.has_token("X-List", "a"));
  EXPECT_TRUE(r.has_token("X-List", "b c")) << "inner spaces belong to the element";
  EXPECT_FALSE(r.has_token("X-List", "b"));
  EXPECT_FALSE(r.has_token("X-List", "")) << "empty elements are skipped";
  EXPECT_FALSE(r.has_token("Missing", "a"));
  EXPECT_TRUE(r.has_token("Sec-WebSocket-Protocol", "json"));
  EXPECT_TRUE(r.has_token("Sec-WebSocket-Protocol", "superchat"));
  EXPECT_FALSE(r.has_token_exact("Sec-WebSocket-Protocol", "json"));
  EXPECT_TRUE(r.has_token_exact("Sec-WebSocket-Protocol", "JSON"));
  EXPECT_TRUE(r.has_token_exact("sec-websocket-protocol", "superchat"));
}

TEST(HttpRequestTokens, AsciiIequals) {
  EXPECT_TRUE(ascii_iequals("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(ascii_iequals("abc", "abd"));
  EXPECT_FALSE(ascii_iequals("abc", "ab"));
  EXPECT_TRUE(ascii_iequals("", ""));
  EXPECT_FALSE(ascii_iequals("[", "{")) << "only letters fold";
}

}  // namespace
}  // namespace chatws::protocol
