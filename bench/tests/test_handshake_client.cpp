// The load generator's handshake check and latency histogram.
#include <gtest/gtest.h>

#include <string>

#include "handshake_client.h"
#include "latency_histogram.h"

namespace {

using namespace chatws::bench;

TEST(HandshakeClient, Rfc6455Example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(expected_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(HandshakeClient, KeyIsSixteenRandomBytes) {
  const std::string a = make_websocket_key(), b = make_websocket_key();
  EXPECT_EQ(a.size(), 24u);  // base64 of 16 bytes
  EXPECT_NE(a, b);
}

TEST(HandshakeClient, RequestHasTheRequiredHeaders) {
  const std::string r = make_upgrade_request("127.0.0.1", 8080, "/chat", "KEY", "json");
  EXPECT_EQ(r.rfind("GET /chat HTTP/1.1\r\n", 0), 0u);
  for (const char* h : {"Host: 127.0.0.1:8080\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
                        "Sec-WebSocket-Key: KEY\r\n", "Sec-WebSocket-Version: 13\r\n",
                        "Sec-WebSocket-Protocol: json\r\n"})
    EXPECT_NE(r.find(h), std::string::npos) << h;
  EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n");
}

TEST(HandshakeClient, ChecksStatusAndAccept) {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  const std::string good =
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: Upgrade\r\n"
      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
  auto c = check_upgrade_response(good, key);
  EXPECT_EQ(c.status, HandshakeCheck::Ok);
  EXPECT_EQ(good.substr(c.header_bytes), "\x81\x02hi");

  EXPECT_EQ(check_upgrade_response(good.substr(0, 40), key).status, HandshakeCheck::Incomplete);
  std::string wrong = good;
  wrong.replace(wrong.find("s3pP"), 4, "AAAA");
  EXPECT_EQ(check_upgrade_response(wrong, key).status, HandshakeCheck::Failed);
  EXPECT_EQ(check_upgrade_response("HTTP/1.1 403 Forbidden\r\n\r\n", key).status,
            HandshakeCheck::Failed);
  EXPECT_EQ(check_upgrade_response(std::string(20000, 'x'), key).status, HandshakeCheck::Failed);
}

TEST(LatencyHistogram, PercentilesWithinPrecision) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile(50), 0u);
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
  EXPECT_EQ(h.count(), 100000u);
  auto near = [](uint64_t got, double want) { return std::abs(double(got) - want) <= want * 0.02; };
  EXPECT_TRUE(near(h.percentile(50), 50e6)) << h.percentile(50);
  EXPECT_TRUE(near(h.percentile(99), 99e6)) << h.percentile(99);
  EXPECT_EQ(h.percentile(100), 100000000u);
  EXPECT_EQ(h.max(), 100000000u);
  h.clear();
  h.record(7);
  EXPECT_EQ(h.percentile(50), 7u);
}

}  // namespace
