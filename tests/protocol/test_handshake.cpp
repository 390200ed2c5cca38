// The opening handshake: accept key, upgrade validation, error responses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/handshake.h"
#include "protocol/http_request.h"

namespace chatws::protocol {
namespace {

using Result = HttpRequestParser::Result;

TEST(Handshake, AcceptKeyRfcSection1_3Example) {
  EXPECT_EQ(compute_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, AcceptKeyOtherKnownValue) {
  // RFC 6455 4.2.2 mentions this one only as a key; the value below was
  // computed independently (python: base64(sha1(key + GUID))).
  EXPECT_EQ(compute_accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

// Builds a request through the real parser so the views are realistic.
class Req {
 public:
  explicit Req(const std::string& text) : text_(text) {
    EXPECT_EQ(parser_.feed(text_.data(), text_.size()), Result::Complete) << text_;
  }
  const HttpRequest& get() const { return parser_.request(); }

 private:
  std::string text_;
  HttpRequestParser parser_;
};

std::string upgrade_request(const std::string& extra = "",
                            const std::string& omit = "",
                            const std::string& request_line = "GET /chat HTTP/1.1") {
  std::vector<std::pair<std::string, std::string>> h = {
      {"Host", "server.example.com"},
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"Sec-WebSocket-Version", "13"},
  };
  std::string s = request_line + "\r\n";
  for (const auto& [k, v] : h) {
    if (k != omit) s += k + ": " + v + "\r\n";
  }
  return s + extra + "\r\n";
}

TEST(Handshake, RfcExampleSucceeds) {
  Req r(upgrade_request("Origin: http://example.com\r\n"
                        "Sec-WebSocket-Protocol: chat, superchat\r\n"));
  EXPECT_TRUE(wants_websocket(r.get()));
  UpgradeConfig cfg;
  cfg.subprotocols = {"superchat", "chat"};
  UpgradeResult u = evaluate_upgrade(r.get(), cfg);
  EXPECT_EQ(u.status, 101);
  EXPECT_EQ(u.subprotocol, "superchat") << "server preference order wins";
  EXPECT_EQ(u.response,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: superchat\r\n"
            "\r\n");
  EXPECT_TRUE(u.error.empty());
}

TEST(Handshake, NoCommonSubprotocolStillSucceedsWithoutHeader) {
  Req r(upgrade_request("Sec-WebSocket-Protocol: mqtt\r\n"));
  UpgradeConfig cfg;
  cfg.subprotocols = {"json"};
  UpgradeResult u = evaluate_upgrade(r.get(), cfg);
  EXPECT_EQ(u.status, 101);
  EXPECT_EQ(u.subprotocol, "");
  EXPECT_EQ(u.response.find("Sec-WebSocket-Protocol"), std::string::npos);
  EXPECT_NE(u.response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
            std::string::npos);
}

TEST(Handshake, SubprotocolFromSeveralHeadersCaseSensitive) {
  Req r(upgrade_request("Sec-WebSocket-Protocol: JSON, a\r\n"
                        "Sec-WebSocket-Protocol: b ,json\r\n"));
  UpgradeConfig cfg;
  cfg.subprotocols = {"x", "json", "b"};
  UpgradeResult u = evaluate_upgrade(r.get(), cfg);
  EXPECT_EQ(u.status, 101);
  EXPECT_EQ(u.subprotocol, "json");
  EXPECT_NE(u.response.find("\r\nSec-WebSocket-Protocol: json\r\n"), std::string::npos);

  Req upper(upgrade_request("Sec-WebSocket-Protocol: JSON\r\n"));
  cfg.subprotocols = {"json"};
  EXPECT_EQ(evaluate_upgrade(upper.get(), cfg).subprotocol, "")
      << "the client checks the answer byte for byte";
}

TEST(Handshake, ClientOffersNothingServerHasList) {
  Req r(upgrade_request());
  UpgradeConfig cfg;
  cfg.subprotocols = {"json"};
  UpgradeResult u = evaluate_upgrade(r.get(), cfg);
  EXPECT_EQ(u.status, 101);
  EXPECT_EQ(u.subprotocol, "");
}

TEST(Handshake, HeaderValuesAreCaseInsensitiveTokens) {
  Req r("GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\n"
        "connection: keep-alive,  UPGRADE\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
        "sec-websocket-version: 13\r\n\r\n");
  EXPECT_EQ(evaluate_upgrade(r.get(), {}).status, 101);
}

struct FailCase {
  const char* name;
  std::string request;
  int status;
  UpgradeConfig cfg = {};
};

void PrintTo(const FailCase& c, std::ostream* os) { *os << c.name; }

class HandshakeFailure : public ::testing::TestWithParam<FailCase> {};

TEST_P(HandshakeFailure, Status) {
  const auto& c = GetParam();
  Req r(c.request);
  UpgradeResult u = evaluate_upgrade(r.get(), c.cfg);
  EXPECT_EQ(u.status, c.status);
  EXPECT_FALSE(u.error.empty());
  EXPECT_TRUE(u.subprotocol.empty());
  const std::string status_line = "HTTP/1.1 " + std::to_string(c.status) + " ";
  EXPECT_EQ(u.response.compare(0, status_line.size(), status_line), 0) << u.response;
  EXPECT_NE(u.response.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(u.response.find("Sec-WebSocket-Accept"), std::string::npos);
  if (c.status == 426) {
    EXPECT_NE(u.response.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  }
  if (c.status == 405) {
    EXPECT_NE(u.response.find("\r\nAllow: GET\r\n"), std::string::npos);
  }
}

UpgradeConfig origins(std::vector<std::string> o) {
  UpgradeConfig c;
  c.allowed_origins = std::move(o);
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    All, HandshakeFailure,
    ::testing::Values(
        FailCase{"post", upgrade_request("", "", "POST /chat HTTP/1.1"), 405},
        FailCase{"head", upgrade_request("", "", "HEAD /chat HTTP/1.1"), 405},
        FailCase{"http10", upgrade_request("", "", "GET /chat HTTP/1.0"), 400},
        // No Host: the request parser's 400 (test_http_request.cpp).
        FailCase{"no_upgrade", upgrade_request("", "Upgrade"), 400},
        FailCase{"upgrade_other", upgrade_request("Upgrade: h2c\r\n", "Upgrade"), 400},
        FailCase{"no_connection", upgrade_request("", "Connection"), 400},
        FailCase{"connection_keepalive_only",
                 upgrade_request("Connection: keep-alive\r\n", "Connection"), 400},
        FailCase{"no_version", upgrade_request("", "Sec-WebSocket-Version"), 426},
        FailCase{"version_8",
                 upgrade_request("Sec-WebSocket-Version: 8\r\n", "Sec-WebSocket-Version"), 426},
        FailCase{"version_list",
                 upgrade_request("Sec-WebSocket-Version: 13, 8\r\n", "Sec-WebSocket-Version"),
                 426},
        FailCase{"version_twice", upgrade_request("Sec-WebSocket-Version: 13\r\n"), 426},
        FailCase{"no_key", upgrade_request("", "Sec-WebSocket-Key"), 400},
        FailCase{"key_short",
                 upgrade_request("Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n", "Sec-WebSocket-Key"),
                 400},
        FailCase{"key_17_bytes",
                 upgrade_request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE=\r\n",
                                 "Sec-WebSocket-Key"),
                 400},
        FailCase{"key_bad_char",
                 upgrade_request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ*==\r\n",
                                 "Sec-WebSocket-Key"),
                 400},
        FailCase{"key_no_padding",
                 upgrade_request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n",
                                 "Sec-WebSocket-Key"),
                 400},
        FailCase{"key_twice", upgrade_request("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
                 400},
        FailCase{"origin_missing", upgrade_request(), 403, origins({"http://example.com"})},
        FailCase{"origin_not_listed", upgrade_request("Origin: http://evil.example\r\n"), 403,
                 origins({"http://example.com", "https://example.com"})}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(Handshake, OriginAllowListAccepts) {
  Req r(upgrade_request("Origin: https://Example.com\r\n"));
  const UpgradeConfig cfg = origins({"http://example.com", "https://example.com"});
  EXPECT_EQ(evaluate_upgrade(r.get(), cfg).status, 101);
  EXPECT_EQ(evaluate_upgrade(r.get(), {}).status, 101) << "empty list: any origin";
}

TEST(Handshake, WantsWebsocket) {
  EXPECT_TRUE(wants_websocket(Req(upgrade_request()).get()));
  EXPECT_FALSE(wants_websocket(Req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").get()));
  EXPECT_TRUE(wants_websocket(Req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo, WEBSOCKET\r\n\r\n").get()));
}

TEST(HttpErrorResponse, ExactBytes) {
  EXPECT_EQ(http_error_response(404, "no such page"),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 13\r\n"
            "Connection: close\r\n"
            "\r\n"
            "no such page\n");
  EXPECT_EQ(http_error_response(426, "", "Sec-WebSocket-Version: 13\r\n"),
            "HTTP/1.1 426 Upgrade Required\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 1\r\n"
            "Connection: close\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
            "\n");
}

TEST(HttpErrorResponse, ReasonPhrases) {
  EXPECT_STREQ(http_reason_phrase(400), "Bad Request");
  EXPECT_STREQ(http_reason_phrase(403), "Forbidden");
  EXPECT_STREQ(http_reason_phrase(405), "Method Not Allowed");
  EXPECT_STREQ(http_reason_phrase(413), "Content Too Large");
  EXPECT_STREQ(http_reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(http_reason_phrase(501), "Not Implemented");
  EXPECT_STREQ(http_reason_phrase(505), "HTTP Version Not Supported");
  // What an upgrade hook rejects with (issue 12): its reason defaults to these.
  EXPECT_STREQ(http_reason_phrase(401), "Unauthorized");
  EXPECT_STREQ(http_reason_phrase(407), "Proxy Authentication Required");
  EXPECT_STREQ(http_reason_phrase(451), "Unavailable For Legal Reasons");
  EXPECT_STREQ(http_reason_phrase(502), "Bad Gateway");
  EXPECT_STREQ(http_reason_phrase(511), "Network Authentication Required");
  EXPECT_STREQ(http_reason_phrase(299), "Unknown");
}

}  // namespace
}  // namespace chatws::protocol

namespace chatws::protocol {
namespace {

UpgradeConfig deflate_cfg() {
  UpgradeConfig cfg;
  cfg.subprotocols = {"chat"};
  cfg.deflate.enabled = true;
  cfg.deflate.server_no_context_takeover = true;
  cfg.deflate.client_no_context_takeover = true;
  return cfg;
}

TEST(HandshakeDeflate, ExactResponseWithTheExtension) {
  Req r(upgrade_request("Sec-WebSocket-Protocol: chat\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
  UpgradeResult u = evaluate_upgrade(r.get(), deflate_cfg());
  ASSERT_EQ(u.status, 101);
  EXPECT_TRUE(u.deflate);
  EXPECT_TRUE(u.deflate_params.server_no_context_takeover);
  EXPECT_EQ(u.response,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; client_max_window_bits=15\r\n"
            "\r\n");
}

TEST(HandshakeDeflate, OffersAcrossSeveralHeaderLines) {
  Req r(upgrade_request("Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"));
  UpgradeResult u = evaluate_upgrade(r.get(), deflate_cfg());
  ASSERT_EQ(u.status, 101);
  EXPECT_TRUE(u.deflate);
  EXPECT_EQ(u.deflate_params.server_max_window_bits, 10);
  EXPECT_NE(u.response.find("server_max_window_bits=10\r\n"), std::string::npos);
}

TEST(HandshakeDeflate, DeclinedOrOffMeansNoHeader) {
  Req bad(upgrade_request("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n"));
  UpgradeResult u = evaluate_upgrade(bad.get(), deflate_cfg());
  ASSERT_EQ(u.status, 101);
  EXPECT_FALSE(u.deflate);
  EXPECT_EQ(u.response.find("Sec-WebSocket-Extensions"), std::string::npos);
  Req ok(upgrade_request("Sec-WebSocket-Extensions: permessage-deflate\r\n"));
  u = evaluate_upgrade(ok.get(), UpgradeConfig{});
  ASSERT_EQ(u.status, 101);
  EXPECT_FALSE(u.deflate);
  EXPECT_EQ(u.response.find("Sec-WebSocket-Extensions"), std::string::npos);
}

TEST(HandshakeDeflate, MalformedExtensionsHeaderIs400) {
  Req r(upgrade_request("Sec-WebSocket-Extensions: permessage-deflate; =\r\n"));
  UpgradeResult u = evaluate_upgrade(r.get(), deflate_cfg());
  EXPECT_EQ(u.status, 400);
  EXPECT_EQ(u.response.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u);
  EXPECT_FALSE(u.deflate);
}

}  // namespace
}  // namespace chatws::protocol
