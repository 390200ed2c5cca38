// The request view's decoding, byte by byte: escapes at the end of the
// input, either case of hex, '+' only in form encoding, NUL refused.
#include "protocol/request_view.h"

#include <gtest/gtest.h>

using chatws::protocol::NameValues;
using chatws::protocol::parse_query;
using chatws::protocol::percent_decode;
using chatws::protocol::percent_escape;

TEST(PercentEscape, TwoHexDigitsOfEitherCase) {
  EXPECT_EQ(percent_escape("%41", 0), 0x41);
  EXPECT_EQ(percent_escape("a%2fb", 1), 0x2f);
  EXPECT_EQ(percent_escape("%2F", 0), 0x2f);
  EXPECT_EQ(percent_escape("%ff", 0), 0xff);
  EXPECT_EQ(percent_escape("%00", 0), 0);
}

TEST(PercentEscape, MalformedOrCutShortIsMinusOne) {
  EXPECT_EQ(percent_escape("%", 0), -1);
  EXPECT_EQ(percent_escape("%4", 0), -1);
  EXPECT_EQ(percent_escape("x%4", 1), -1);
  EXPECT_EQ(percent_escape("%g1", 0), -1);
  EXPECT_EQ(percent_escape("%1g", 0), -1);
  EXPECT_EQ(percent_escape("% 1", 0), -1);
}

TEST(PercentDecode, PlusIsASpaceOnlyInFormEncoding) {
  std::string out;
  ASSERT_TRUE(percent_decode("a+b%20c", true, &out));
  EXPECT_EQ(out, "a b c");
  ASSERT_TRUE(percent_decode("a+b%20c", false, &out));
  EXPECT_EQ(out, "a+b c");
}

TEST(PercentDecode, BadEscapeOrNulIsRefused) {
  std::string out;
  EXPECT_FALSE(percent_decode("abc%", false, &out));
  EXPECT_FALSE(percent_decode("abc%4", false, &out));
  EXPECT_FALSE(percent_decode("%zz", false, &out));
  EXPECT_FALSE(percent_decode("a%00b", false, &out));
}

TEST(ParseQuery, DecodedInOrderWithDuplicates) {
  NameValues q;
  ASSERT_TRUE(parse_query("a=1&b=&c&&a=x%2By+z", &q));
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"b", ""}));
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>{"c", ""}));
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"a", "x+y z"}));
  q.clear();
  EXPECT_FALSE(parse_query("a=%zz", &q));
}
