// permessage-deflate negotiation (RFC 7692 7), byte for byte.
#include <gtest/gtest.h>

#include "protocol/permessage_deflate.h"

namespace chatws::protocol {
namespace {

using Outcome = DeflateNegotiation::Outcome;

DeflatePolicy shared_policy() {
  DeflatePolicy p;
  p.enabled = true;
  p.server_no_context_takeover = true;
  p.client_no_context_takeover = true;
  return p;
}

DeflatePolicy plain_policy() {
  DeflatePolicy p;
  p.enabled = true;
  return p;
}

DeflateNegotiation neg(std::vector<std::string_view> v, const DeflatePolicy& p = plain_policy()) {
  return negotiate_deflate(v, p);
}

TEST(PermessageDeflate, NotOfferedMeansNoExtension) {
  auto r = neg({});
  EXPECT_EQ(r.outcome, Outcome::None);
  EXPECT_EQ(r.response, "");
  r = neg({"x-webkit-deflate-frame"});
  EXPECT_EQ(r.outcome, Outcome::None);
}

TEST(PermessageDeflate, PlainOfferAcceptedWithNothingAdded) {
  auto r = neg({"permessage-deflate"});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate");
  EXPECT_FALSE(r.params.server_no_context_takeover);
  EXPECT_FALSE(r.params.client_no_context_takeover);
  EXPECT_EQ(r.params.server_max_window_bits, 15);
  EXPECT_EQ(r.params.client_max_window_bits, 15);
}

TEST(PermessageDeflate, SharedPolicyAddsBothNoContextTakeovers) {
  auto r = neg({"permessage-deflate"}, shared_policy());
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  EXPECT_TRUE(r.params.server_no_context_takeover);
  EXPECT_TRUE(r.params.client_no_context_takeover);
}

TEST(PermessageDeflate, DisabledPolicyDeclinesEverything) {
  DeflatePolicy off;
  EXPECT_EQ(neg({"permessage-deflate"}, off).outcome, Outcome::None);
}

TEST(PermessageDeflate, WhatBrowsersOffer) {
  // Chromium and Firefox: client_max_window_bits without a value.
  auto r = neg({"permessage-deflate; client_max_window_bits"});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate; client_max_window_bits=15");
  DeflatePolicy p = shared_policy();
  p.client_window_bits = 10;
  r = neg({"permessage-deflate; client_max_window_bits"}, p);
  EXPECT_EQ(r.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits=10");
  EXPECT_EQ(r.params.client_max_window_bits, 10);
}

TEST(PermessageDeflate, ClientMaxWindowBitsWithValueIsAnUpperBound) {
  DeflatePolicy p = plain_policy();
  p.client_window_bits = 12;
  auto r = neg({"permessage-deflate; client_max_window_bits=10"}, p);
  EXPECT_EQ(r.response, "permessage-deflate; client_max_window_bits=10");
  EXPECT_EQ(r.params.client_max_window_bits, 10);
  r = neg({"permessage-deflate; client_max_window_bits=14"}, p);
  EXPECT_EQ(r.response, "permessage-deflate; client_max_window_bits=12");
  // Not offered: never in the response, and the client may use 15.
  r = neg({"permessage-deflate"}, p);
  EXPECT_EQ(r.response, "permessage-deflate");
  EXPECT_EQ(r.params.client_max_window_bits, 15);
}

TEST(PermessageDeflate, ServerMaxWindowBitsEchoedAtMostOurs) {
  DeflatePolicy p = plain_policy();
  p.server_window_bits = 12;
  auto r = neg({"permessage-deflate; server_max_window_bits=9"}, p);
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate; server_max_window_bits=9");
  EXPECT_EQ(r.params.server_max_window_bits, 9);
  r = neg({"permessage-deflate; server_max_window_bits=15"}, p);
  EXPECT_EQ(r.response, "permessage-deflate; server_max_window_bits=12");
  EXPECT_EQ(r.params.server_max_window_bits, 12);
  // Not offered: not in the response (7.1.2.1), but we still use ours.
  r = neg({"permessage-deflate"}, p);
  EXPECT_EQ(r.response, "permessage-deflate");
  EXPECT_EQ(r.params.server_max_window_bits, 12);
}

TEST(PermessageDeflate, QuotedValuesAreUnescaped) {
  auto r = neg({"permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=\"1\\1\""});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.params.server_max_window_bits, 10);
  EXPECT_EQ(r.params.client_max_window_bits, 11);
}

TEST(PermessageDeflate, NoContextTakeoverRequests) {
  auto r = neg({"permessage-deflate; server_no_context_takeover"});
  EXPECT_EQ(r.response, "permessage-deflate; server_no_context_takeover");
  EXPECT_TRUE(r.params.server_no_context_takeover);
  r = neg({"permessage-deflate; client_no_context_takeover"});
  EXPECT_EQ(r.response, "permessage-deflate; client_no_context_takeover");
  EXPECT_TRUE(r.params.client_no_context_takeover);
  r = neg({"permessage-deflate;server_no_context_takeover;client_no_context_takeover;"
           "server_max_window_bits=9;client_max_window_bits=9"});
  EXPECT_EQ(r.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=9");
}

TEST(PermessageDeflate, ParameterNamesAreCaseInsensitiveTokens) {
  auto r = neg({"Permessage-Deflate; Server_No_Context_Takeover"});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_TRUE(r.params.server_no_context_takeover);
}

TEST(PermessageDeflate, InvalidOffersAreDeclined) {
  const char* bad[] = {
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
      "permessage-deflate; server_max_window_bits",        // needs a value
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=010",    // leading zero
      "permessage-deflate; client_max_window_bits=0",
      "permessage-deflate; client_max_window_bits=abc",
      "permessage-deflate; server_no_context_takeover=1",  // takes no value
      "permessage-deflate; client_no_context_takeover=\"\"",
      "permessage-deflate; unknown_parameter",
      "permessage-deflate; server_max_window_bits=8",      // zlib cannot compress in 256 bytes
  };
  for (const char* h : bad) {
    auto r = neg({h});
    EXPECT_EQ(r.outcome, Outcome::None) << h;
    EXPECT_EQ(r.response, "") << h;
  }
}

TEST(PermessageDeflate, FirstAcceptableOfferWins) {
  // Autobahn 13.7: three offers in one header; the first is taken.
  auto r = neg({"permessage-deflate; server_no_context_takeover; server_max_window_bits=9, "
                "permessage-deflate; server_no_context_takeover, permessage-deflate"});
  EXPECT_EQ(r.response, "permessage-deflate; server_no_context_takeover; server_max_window_bits=9");
  // A declined first offer falls back to the next, across header lines too.
  r = neg({"permessage-deflate; server_max_window_bits=8", "x-foo; a=b, permessage-deflate; client_no_context_takeover"});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate; client_no_context_takeover");
  EXPECT_FALSE(r.params.server_no_context_takeover);
  EXPECT_TRUE(r.params.client_no_context_takeover);
  // Every offer declined: no extension, and no parameter of a declined one leaks.
  r = neg({"permessage-deflate; foo, permessage-deflate; server_max_window_bits=99"});
  EXPECT_EQ(r.outcome, Outcome::None);
  EXPECT_FALSE(r.params.server_no_context_takeover);
}

TEST(PermessageDeflate, EmptyElementsAndWhitespaceAreTolerated) {
  auto r = neg({" , permessage-deflate ;\tclient_max_window_bits = 9 ,, "});
  ASSERT_EQ(r.outcome, Outcome::Accepted);
  EXPECT_EQ(r.response, "permessage-deflate; client_max_window_bits=9");
}

TEST(PermessageDeflate, MalformedHeaderFailsTheHandshake) {
  const char* bad[] = {
      "permessage-deflate;",                           // parameter missing
      "permessage-deflate; =9",
      "permessage-deflate; server_max_window_bits=",   // value missing
      "permessage-deflate; client_max_window_bits=\"9",  // unterminated quote
      "permessage deflate",                            // two tokens
      "permessage-deflate; a b",
      "(permessage-deflate)",
  };
  for (const char* h : bad) {
    auto r = neg({h});
    EXPECT_EQ(r.outcome, Outcome::Fail) << h;
    EXPECT_FALSE(r.error.empty()) << h;
  }
  // With compression off the header is not read at all.
  EXPECT_EQ(negotiate_deflate({"permessage-deflate;"}, DeflatePolicy{}).outcome, Outcome::None);
}

}  // namespace
}  // namespace chatws::protocol
