// JSON string escaping: exact output for each special character, and a
// round trip through simdjson for every byte value that can appear.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

#include "chat/json_escape.h"

namespace chatws::chat {
namespace {

std::string esc(std::string_view s) {
  std::string out;
  append_json_string(&out, s);
  return out;
}

std::string roundtrip(const std::string& json) {
  simdjson::dom::parser p;
  simdjson::padded_string ps(json);
  std::string_view v;
  EXPECT_EQ(p.parse(ps).get_string().get(v), simdjson::SUCCESS) << json;
  return std::string(v);
}

TEST(JsonEscape, PlainTextPassesThrough) {
  EXPECT_EQ(esc(""), "\"\"");
  EXPECT_EQ(esc("hello world"), "\"hello world\"");
  EXPECT_EQ(esc("<b>&amp;</b>"), "\"<b>&amp;</b>\"");
}

TEST(JsonEscape, QuotesAndBackslash) {
  EXPECT_EQ(esc("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(esc("a\\b"), "\"a\\\\b\"");
  EXPECT_EQ(esc("\\\""), "\"\\\\\\\"\"");
}

TEST(JsonEscape, ShortFormsForCommonControls) {
  EXPECT_EQ(esc("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
}

TEST(JsonEscape, OtherControlsAsUnicodeEscapes) {
  EXPECT_EQ(esc(std::string(1, '\0')), "\"\\u0000\"");
  EXPECT_EQ(esc("\x01"), "\"\\u0001\"");
  EXPECT_EQ(esc("\x1f"), "\"\\u001f\"");
  EXPECT_EQ(esc("\x0b"), "\"\\u000b\"");
  EXPECT_EQ(esc("\x7f"), "\"\\u007f\"");
  EXPECT_EQ(esc("a\x1b[31mb"), "\"a\\u001b[31mb\"");
}

TEST(JsonEscape, LineSeparatorsEscaped) {
  EXPECT_EQ(esc("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c"), "\"a\\u2028b\\u2029c\"");
  // Neighbours of U+2028/2029 pass through: U+2027, U+202A.
  EXPECT_EQ(esc("\xE2\x80\xA7\xE2\x80\xAA"), "\"\xE2\x80\xA7\xE2\x80\xAA\"");
}

TEST(JsonEscape, MultibyteUtf8PassesThrough) {
  const std::string s = "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";  // héllo 日本 😀
  EXPECT_EQ(esc(s), "\"" + s + "\"");
}

TEST(JsonEscape, EveryAsciiByteRoundTrips) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  all += "\xE2\x80\xA8\xE2\x80\xA9\xC3\xA9";
  EXPECT_EQ(roundtrip(esc(all)), all);
}

TEST(JsonEscape, AppendsToExistingOutput) {
  std::string out = "{\"k\":";
  append_json_string(&out, "v\n");
  out += ",\"n\":";
  append_json_int(&out, -1234567890123LL);
  out += "}";
  EXPECT_EQ(out, "{\"k\":\"v\\n\",\"n\":-1234567890123}");
}

}  // namespace
}  // namespace chatws::chat
