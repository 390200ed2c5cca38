// UTF-8 validation: whole-buffer and streaming, against an independent
// reference decoder written from the Unicode definition (scalar values,
// shortest form), not from the byte tables the implementation uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "protocol/utf8.h"

namespace chatws::protocol {
namespace {

enum class Ref { Valid, Incomplete, Invalid };

// Decodes code point by code point. Incomplete: valid so far but the input
// ends inside a sequence that could still be completed to a scalar value.
Ref reference(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    uint8_t b = static_cast<uint8_t>(s[i]);
    int len;
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return Ref::Invalid;
    }
    int k = 1;
    for (; k < len && i + k < n; ++k) {
      uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return Ref::Invalid;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (k < len) {
      // Truncated: the completions are the code points in [lo, hi]; is any
      // of them a shortest-form scalar value?
      const int missing = len - k;
      const uint32_t lo = cp << (6 * missing);
      const uint32_t hi = lo + (1u << (6 * missing)) - 1;
      const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      const uint32_t from = std::max(lo, min), to = std::min<uint32_t>(hi, 0x10FFFF);
      if (from <= to && !(from >= 0xD800 && to <= 0xDFFF)) return Ref::Incomplete;
      return Ref::Invalid;
    }
    uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Ref::Invalid;
    i += len;
  }
  return Ref::Valid;
}

// The first prefix length at which the reference says Invalid (n+1 if none).
size_t first_invalid_prefix(const std::string& s) {
  for (size_t k = 1; k <= s.size(); ++k) {
    if (reference(s.substr(0, k)) == Ref::Invalid) return k;
  }
  return s.size() + 1;
}

// What the reference says about a string: the shortest invalid prefix and
// whether the whole is valid. Computed once per string (it is quadratic).
struct Expect {
  size_t bad_at;
  bool valid;
};
Expect expect_for(const std::string& s) {
  return {first_invalid_prefix(s), reference(s) == Ref::Valid};
}

// Feeds `s` in the given pieces; checks after each feed that the stream
// failed exactly when the prefix so far became invalid, and at the end that
// finish() agrees with the reference.
void check_stream(const std::string& s, const std::vector<size_t>& cuts, const Expect& e) {
  Utf8Stream st;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(s.size());
  for (size_t end : ends) {
    bool ok = st.feed(s.data() + prev, end - prev);
    bool expect_ok = end < e.bad_at;
    ASSERT_EQ(ok, expect_ok) << "prefix length " << end << " of " << ::testing::PrintToString(s);
    prev = end;
  }
  EXPECT_EQ(st.finish(), e.valid) << ::testing::PrintToString(s);
}

void check_stream(const std::string& s, const std::vector<size_t>& cuts) {
  check_stream(s, cuts, expect_for(s));
}

void check_all_two_way_splits(const std::string& s) {
  const Expect e = expect_for(s);
  for (size_t cut = 0; cut <= s.size(); ++cut) check_stream(s, {cut}, e);
  std::vector<size_t> every;
  for (size_t i = 1; i < s.size(); ++i) every.push_back(i);
  check_stream(s, every, e);  // one byte at a time
}

TEST(Utf8Reference, SelfCheck) {
  EXPECT_EQ(reference("abc"), Ref::Valid);
  EXPECT_EQ(reference("\xE2\x82"), Ref::Incomplete);
  EXPECT_EQ(reference("\xED\xA0"), Ref::Invalid);  // surrogate
  EXPECT_EQ(reference("\xE0\x80"), Ref::Invalid);  // overlong
  EXPECT_EQ(reference("\xF4\x90"), Ref::Invalid);  // > U+10FFFF
  EXPECT_EQ(reference("\xF0\x90\x80\x80"), Ref::Valid);
}

TEST(Utf8, WholeBufferEdgeCases) {
  struct Case {
    const char* s;
    size_t n;
    bool valid;
  };
  const Case cases[] = {
      {"", 0, true},
      {"hello", 5, true},
      {"\x00", 1, true},                  // NUL is a valid code point
      {"\x7F", 1, true},
      {"\xC2\x80", 2, true},              // U+0080
      {"\xDF\xBF", 2, true},              // U+07FF
      {"\xE0\xA0\x80", 3, true},          // U+0800
      {"\xED\x9F\xBF", 3, true},          // U+D7FF
      {"\xEE\x80\x80", 3, true},          // U+E000
      {"\xEF\xBF\xBF", 3, true},          // U+FFFF
      {"\xF0\x90\x80\x80", 4, true},      // U+10000
      {"\xF4\x8F\xBF\xBF", 4, true},      // U+10FFFF
      {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 11, true},  // κόσμε
      {"\x80", 1, false},
      {"\xBF", 1, false},
      {"\xC0\x80", 2, false},             // overlong NUL
      {"\xC1\xBF", 2, false},
      {"\xE0\x9F\xBF", 3, false},         // overlong
      {"\xED\xA0\x80", 3, false},         // U+D800
      {"\xED\xBF\xBF", 3, false},         // U+DFFF
      {"\xF0\x8F\xBF\xBF", 4, false},     // overlong
      {"\xF4\x90\x80\x80", 4, false},     // U+110000
      {"\xF5\x80\x80\x80", 4, false},
      {"\xFE", 1, false},
      {"\xFF", 1, false},
      {"\xC2", 1, false},                 // truncated
      {"\xE2\x82", 2, false},
      {"\xF0\x90\x80", 3, false},
      {"a\xC2" "a", 3, false},
  };
  for (const auto& c : cases) {
    std::string s(c.s, c.n);
    EXPECT_EQ(is_valid_utf8(s.data(), s.size()), c.valid) << ::testing::PrintToString(s);
    EXPECT_EQ(reference(s) == Ref::Valid, c.valid) << ::testing::PrintToString(s);
    check_all_two_way_splits(s);
    check_all_two_way_splits("ab" + s + "cd");
  }
}

TEST(Utf8Stream, FailsFastOnDefinitelyInvalidIncompletePrefixes) {
  const char* prefixes[] = {"\xF5", "\xFF", "\xC0", "\xC1", "\xED\xA0", "\xF4\x90",
                            "\xE0\x80", "\xF0\x80", "\xE2\x41", "\xF0\x90\x41"};
  for (const char* p : prefixes) {
    Utf8Stream st;
    EXPECT_TRUE(st.feed("ok", 2));
    EXPECT_FALSE(st.feed(p, std::char_traits<char>::length(p))) << ::testing::PrintToString(p);
    EXPECT_FALSE(st.feed("a", 1)) << "stays failed";
    EXPECT_FALSE(st.finish());
  }
}

TEST(Utf8Stream, ValidIncompletePrefixIsCarriedNotAccepted) {
  Utf8Stream st;
  EXPECT_TRUE(st.feed("\xF0\x9F", 2));
  EXPECT_FALSE(st.finish()) << "incomplete at the end";
  EXPECT_TRUE(st.feed("\x98", 1));
  EXPECT_TRUE(st.feed("\x80!", 2));  // U+1F600 then '!'
  EXPECT_TRUE(st.finish());
  st.reset();
  EXPECT_TRUE(st.finish());
  EXPECT_TRUE(st.feed("", 0));
  EXPECT_TRUE(st.finish());
}

TEST(Utf8Stream, ExhaustiveShortSequences) {
  // Every 1- and 2-byte string, and every 3-byte string whose bytes come
  // from a set of boundary values, split at every point.
  for (int a = 0; a < 256; ++a) {
    check_all_two_way_splits(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      const Expect e = expect_for(s);
      for (size_t cut = 0; cut <= 2; ++cut) check_stream(s, {cut}, e);
    }
  }
  const int interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                             0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
                             0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  for (int a : interesting) {
    for (int b : interesting) {
      for (int c : interesting) {
        std::string s{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)};
        const Expect e = expect_for(s);
        for (size_t cut = 0; cut <= 3; ++cut) check_stream(s, {cut}, e);
        for (int d : {0x80, 0xBF, 0x41}) {
          std::string s4 = s + static_cast<char>(d);
          check_stream(s4, {1, 2, 3});
          check_stream(s4, {2});
        }
      }
    }
  }
}

// Random strings built mostly from valid code points, with occasional
// corruption, long enough that the bulk path (simdjson) is exercised.
std::string random_text(std::mt19937& rng, size_t target, bool corrupt) {
  std::string s;
  std::uniform_int_distribution<int> kind(0, 9);
  while (s.size() < target) {
    int k = kind(rng);
    uint32_t cp;
    if (k < 4) cp = rng() % 0x80;
    else if (k < 6) cp = 0x80 + rng() % (0x800 - 0x80);
    else if (k < 8) {
      do cp = 0x800 + rng() % (0x10000 - 0x800); while (cp >= 0xD800 && cp <= 0xDFFF);
    } else cp = 0x10000 + rng() % (0x110000 - 0x10000);
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  if (corrupt && !s.empty()) {
    s[rng() % s.size()] = static_cast<char>(rng());
  }
  return s;
}

TEST(Utf8Stream, RandomInputsSplitAtEveryPoint) {
  std::mt19937 rng(20240601);
  int valid = 0, invalid = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string s = random_text(rng, 1 + rng() % 150, iter % 2 == 1);
    const Expect e = expect_for(s);
    ASSERT_EQ(is_valid_utf8(s.data(), s.size()), e.valid) << ::testing::PrintToString(s);
    (e.valid ? valid : invalid)++;
    for (size_t cut = 0; cut <= s.size(); ++cut) check_stream(s, {cut}, e);
    // Random multi-piece splits.
    for (int t = 0; t < 5; ++t) {
      std::vector<size_t> cuts;
      for (size_t pos = rng() % 5; pos < s.size(); pos += 1 + rng() % 9) cuts.push_back(pos);
      check_stream(s, cuts, e);
    }
  }
  EXPECT_GT(valid, 100);
  EXPECT_GT(invalid, 100);
}

TEST(Utf8Stream, LargeValidInputInPieces) {
  std::mt19937 rng(7);
  std::string s = random_text(rng, 200000, false);
  ASSERT_TRUE(is_valid_utf8(s.data(), s.size()));
  for (size_t piece : {1u, 3u, 64u, 1000u, 4093u}) {
    Utf8Stream st;
    for (size_t i = 0; i < s.size(); i += piece) {
      ASSERT_TRUE(st.feed(s.data() + i, std::min(piece, s.size() - i))) << piece << " " << i;
    }
    EXPECT_TRUE(st.finish());
  }
}

TEST(Utf8, CodePoints) {
  EXPECT_EQ(utf8_code_points("", 0), 0u);
  EXPECT_EQ(utf8_code_points("abc", 3), 3u);
  std::string k = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";
  EXPECT_EQ(utf8_code_points(k.data(), k.size()), 5u);
  std::string e = "\xF0\x9F\x98\x80x";
  EXPECT_EQ(utf8_code_points(e.data(), e.size()), 2u);
}

}  // namespace
}  // namespace chatws::protocol

namespace chatws::protocol {
namespace {

// Short texts take an ASCII word test first and fall back to the full
// validator on any byte >= 0x80: a non-ASCII or invalid byte at every
// position of every length around the word and cut-off boundaries must be
// judged exactly as the reference decoder judges it.
TEST(Utf8, ShortTextFastPathAgreesWithReferenceAtEveryPosition) {
  const std::vector<std::string> inserts = {
      "\xC3\xA9",          // valid 2-byte
      "\xE2\x82\xAC",      // valid 3-byte
      "\xF0\x9F\x98\x80",  // valid 4-byte
      "\xFF",              // never valid
      "\xC0\xAF",          // overlong
      "\xED\xA0\x80",      // surrogate
      "\x80",              // lone continuation
      "\xC3",              // truncated
  };
  for (size_t len : {1, 7, 8, 9, 15, 16, 17, 63, 64, 120, 127, 128, 129, 200}) {
    for (const std::string& ins : inserts) {
      for (size_t pos = 0; pos < len; ++pos) {
        std::string s(len, 'a');
        s.replace(pos, std::min(ins.size(), len - pos), ins.substr(0, len - pos));
        const bool expect = reference(s) == Ref::Valid;
        ASSERT_EQ(is_valid_utf8(s.data(), s.size()), expect)
            << "len " << len << " pos " << pos << " insert " << testing::PrintToString(ins);
      }
    }
    std::string ascii(len, 'z');
    ascii[len - 1] = '\x7F';  // highest ASCII byte is still ASCII
    EXPECT_TRUE(is_valid_utf8(ascii.data(), ascii.size())) << len;
  }
}

}  // namespace
}  // namespace chatws::protocol
