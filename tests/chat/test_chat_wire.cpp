// The chat wire formats: every validation rule of a client message, and the
// exact bytes of every server payload.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/chat_wire.h"

namespace chatws::chat {
namespace {

struct Case {
  const char* name;
  std::string payload;
  std::string error;  // "" = valid
};

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ChatWireParse, ValidationTable) {
  const std::string e_acute = "\xC3\xA9";
  const std::vector<Case> cases = {
      {"plain", R"({"user":"ann","text":"hi"})", ""},
      {"extra fields ignored", R"({"text":"hi","x":[1,{"y":null}],"user":"ann","z":true})", ""},
      {"escapes decoded", R"({"user":"a\"b","text":"line\nnext \u00e9 \ud83d\ude00"})", ""},
      {"whitespace around", " \n{ \"user\" : \"a\" , \"text\" : \"b\" }\t", ""},
      {"invalid json", R"({"user":"a","text":"b")", "invalid JSON"},
      {"invalid json trailing", R"({"user":"a","text":"b"} x)", "invalid JSON"},
      {"invalid json in ignored field", R"({"user":"a","text":"b","x":[1,}})", "invalid JSON"},
      {"not json at all", "hello", "invalid JSON"},
      {"empty payload", "", "invalid JSON"},
      {"array", R"([{"user":"a","text":"b"}])", "message must be a JSON object"},
      {"string", R"("hi")", "message must be a JSON object"},
      {"number", "42", "message must be a JSON object"},
      {"null", "null", "message must be a JSON object"},
      {"missing user", R"({"text":"b"})", "missing \"user\""},
      {"missing text", R"({"user":"a"})", "missing \"text\""},
      {"empty object", "{}", "missing \"user\""},
      {"user number", R"({"user":1,"text":"b"})", "\"user\" must be a string"},
      {"user null", R"({"user":null,"text":"b"})", "\"user\" must be a string"},
      {"text object", R"({"user":"a","text":{"t":"b"}})", "\"text\" must be a string"},
      {"text array", R"({"user":"a","text":["b"]})", "\"text\" must be a string"},
      {"text bool", R"({"user":"a","text":true})", "\"text\" must be a string"},
      {"empty user", R"({"user":"","text":"b"})", "\"user\" must not be empty"},
      {"blank user", R"({"user":" \t ","text":"b"})", "\"user\" must not be blank"},
      {"NUL user", R"({"user":"\u0000","text":"b"})", "\"user\" must not contain control characters"},
      {"bidi override in user", R"({"user":"adm\u202Ein","text":"b"})",
       "\"user\" must not contain bidirectional formatting characters"},
      {"zero-width user", R"({"user":"\u200B","text":"b"})", "\"user\" must not contain invisible characters"},
      {"user trimmed to max", "{\"user\":\"  " + repeat(e_acute, 64) + "\\n\",\"text\":\"b\"}", ""},
      {"empty text", R"({"user":"a","text":""})", "\"text\" must not be empty"},
      {"user at max", "{\"user\":\"" + repeat(e_acute, 64) + "\",\"text\":\"b\"}", ""},
      {"user over max", "{\"user\":\"" + repeat("u", 65) + "\",\"text\":\"b\"}",
       "\"user\" is longer than 64 characters"},
      {"user over max multibyte", "{\"user\":\"" + repeat(e_acute, 65) + "\",\"text\":\"b\"}",
       "\"user\" is longer than 64 characters"},
      {"text at max (4-byte chars)", "{\"user\":\"a\",\"text\":\"" + repeat("\xF0\x9F\x98\x80", 4096) + "\"}", ""},
      {"text at max (escaped)", "{\"user\":\"a\",\"text\":\"" + repeat("\\u00e9", 4096) + "\"}", ""},
      {"text over max", "{\"user\":\"a\",\"text\":\"" + repeat("t", 4097) + "\"}",
       "\"text\" is longer than 4096 characters"},
      {"invalid utf8", "{\"user\":\"a\",\"text\":\"\xC3\x28\"}", "invalid JSON"},
      {"lone surrogate escape", R"({"user":"a","text":"\ud800"})", "invalid JSON"},
      {"huge payload", "{\"user\":\"a\",\"text\":\"b\",\"pad\":\"" + repeat("x", 200000) + "\"}",
       "message too large"},
  };
  MessageParser parser(TextLimits{});
  for (const Case& c : cases) {
    std::string_view user, text;
    std::string error;
    const bool ok = parser.parse(c.payload, WireFormat::Classic, &user, &text, &error);
    EXPECT_EQ(ok, c.error.empty()) << c.name << ": " << error;
    EXPECT_EQ(error, c.error) << c.name;
  }
}

TEST(ChatWireParse, FieldsDecoded) {
  MessageParser parser(TextLimits{});
  std::string_view user, text;
  std::string error;
  ASSERT_TRUE(parser.parse(R"({"user":"a\"b","text":"line\nnext \u00e9 \ud83d\ude00","user2":"x"})",
                           WireFormat::Classic, &user, &text, &error));
  EXPECT_EQ(user, "a\"b");
  EXPECT_EQ(text, "line\nnext \xC3\xA9 \xF0\x9F\x98\x80");
  // Duplicate keys: the first one wins; NUL survives.
  ASSERT_TRUE(parser.parse(R"({"user":"first","user":"second","text":"a\u0000b"})", WireFormat::Classic,
                           &user, &text, &error));
  EXPECT_EQ(user, "first");
  EXPECT_EQ(text, std::string("a\0b", 3));
}

TEST(ChatWireParse, UserIsTrimmed) {
  MessageParser parser(TextLimits{});
  std::string_view user, text;
  std::string error;
  ASSERT_TRUE(parser.parse(R"({"user":" \u00a0ann\n","text":" hi "})", WireFormat::Classic, &user, &text, &error));
  EXPECT_EQ(user, "ann");
  EXPECT_EQ(text, " hi ");  // text is kept as sent
}

TEST(ChatWireParse, V1Type) {
  MessageParser parser(TextLimits{});
  std::string_view user, text;
  std::string error;
  EXPECT_TRUE(parser.parse(R"({"type":"msg","user":"a","text":"b"})", WireFormat::V1, &user, &text, &error));
  EXPECT_TRUE(parser.parse(R"({"user":"a","text":"b"})", WireFormat::V1, &user, &text, &error));
  EXPECT_FALSE(parser.parse(R"({"type":"typing","user":"a","text":"b"})", WireFormat::V1, &user, &text, &error));
  EXPECT_EQ(error, "unsupported message type");
  EXPECT_FALSE(parser.parse(R"({"type":1,"user":"a","text":"b"})", WireFormat::V1, &user, &text, &error));
  EXPECT_EQ(error, "unsupported message type");
  // The classic format ignores "type" like any other unknown field.
  EXPECT_TRUE(parser.parse(R"({"type":"typing","user":"a","text":"b"})", WireFormat::Classic, &user, &text,
                           &error));
}

TEST(ChatWireParse, CustomLimits) {
  MessageParser parser(TextLimits{3, 5});
  std::string_view user, text;
  std::string error;
  EXPECT_TRUE(parser.parse(R"({"user":"abc","text":"12345"})", WireFormat::Classic, &user, &text, &error));
  EXPECT_FALSE(parser.parse(R"({"user":"abcd","text":"1"})", WireFormat::Classic, &user, &text, &error));
  EXPECT_EQ(error, "\"user\" is longer than 3 characters");
  EXPECT_FALSE(parser.parse(R"({"user":"a","text":"123456"})", WireFormat::Classic, &user, &text, &error));
  EXPECT_EQ(error, "\"text\" is longer than 5 characters");
}

// validate_fields() on a user name given as a literal; "" if valid.
std::string check_user(std::string_view name, std::string_view* trimmed = nullptr,
                       TextLimits l = TextLimits{}) {
  std::string_view u = name;
  std::string e = validate_fields(&u, "b", l);
  if (trimmed) *trimmed = u;
  return e;
}

TEST(ChatWireValidate, HostInput) {
  TextLimits l;
  std::string_view a = "a", bad = "\xED\xA0\x80", empty = "";
  EXPECT_EQ(validate_fields(&a, "b", l), "");
  EXPECT_EQ(validate_fields(&a, "\xFF", l), "\"text\" is not valid UTF-8");
  EXPECT_EQ(validate_fields(&bad, "b", l), "\"user\" is not valid UTF-8");  // surrogate
  EXPECT_EQ(validate_fields(&empty, "b", l), "\"user\" must not be empty");
  EXPECT_EQ(validate_fields(&a, "", l), "\"text\" must not be empty");
  EXPECT_EQ(count_code_points("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80"), 4u);
}

// The user-name rule of chat_wire.h, one class of character at a time.
TEST(ChatWireUserName, SurroundingWhitespaceIsTrimmed) {
  std::string_view t;
  EXPECT_EQ(check_user("  ann\t\r\n", &t), "");
  EXPECT_EQ(t, "ann");
  // Unicode whitespace too: NBSP, EN QUAD, IDEOGRAPHIC SPACE, NEL, LINE SEPARATOR.
  EXPECT_EQ(check_user("\xC2\xA0\xE2\x80\x80" "b\xC3\xA9" "a" "\xE3\x80\x80\xC2\x85\xE2\x80\xA8", &t), "");
  EXPECT_EQ(t, "b\xC3\xA9" "a");
  // Spaces inside a name are kept.
  EXPECT_EQ(check_user(" ann  lee ", &t), "");
  EXPECT_EQ(t, "ann  lee");
  EXPECT_EQ(check_user("ann\xC2\xA0lee", &t), "");
  // The length limit counts the trimmed name.
  EXPECT_EQ(check_user("   abc   ", &t, TextLimits{3, 5}), "");
  EXPECT_EQ(t, "abc");
}

TEST(ChatWireUserName, BlankNamesAreRefused) {
  for (std::string_view name : {std::string_view(" "), std::string_view("\t\n \r"),
                                std::string_view("\xE3\x80\x80\xC2\xA0"),  // ideographic space, NBSP
                                std::string_view("\xE2\x80\xA8\xE2\x80\xA9")}) {
    EXPECT_EQ(check_user(name), "\"user\" must not be blank") << name;
  }
}

TEST(ChatWireUserName, ControlCharactersAreRefused) {
  const std::string e = "\"user\" must not contain control characters";
  EXPECT_EQ(check_user(std::string_view("\0", 1)), e);  // NUL only
  EXPECT_EQ(check_user(std::string_view("\0\0\0", 3)), e);
  EXPECT_EQ(check_user(std::string_view("an\0n", 4)), e);
  EXPECT_EQ(check_user("a\x01" "b"), e);
  EXPECT_EQ(check_user("a\tb"), e);        // whitespace, but a control inside a name
  EXPECT_EQ(check_user("a\nb"), e);
  EXPECT_EQ(check_user("a\x7F" "b"), e);   // DEL
  EXPECT_EQ(check_user("a\xC2\x80" "b"), e);  // C1 controls U+0080..U+009F
  EXPECT_EQ(check_user("a\xC2\x9F" "b"), e);
  EXPECT_EQ(check_user("a\xC2\x85" "b"), e);  // NEL inside
  EXPECT_EQ(check_user("a\xE2\x80\xA8" "b"), e);  // LINE SEPARATOR inside
  EXPECT_EQ(check_user("a\xE2\x80\xA9" "b"), e);  // PARAGRAPH SEPARATOR inside
  // U+00A0 (NBSP) and U+00A1 are not controls.
  EXPECT_EQ(check_user("a\xC2\xA1" "b"), "");
}

TEST(ChatWireUserName, BidiControlsAreRefused) {
  const std::string e = "\"user\" must not contain bidirectional formatting characters";
  // U+202A..U+202E (embeddings, overrides), U+2066..U+2069 (isolates),
  // U+200E/U+200F (LRM/RLM), U+061C (ALM).
  for (const char* cp : {"\xE2\x80\xAA", "\xE2\x80\xAB", "\xE2\x80\xAC", "\xE2\x80\xAD", "\xE2\x80\xAE",
                         "\xE2\x81\xA6", "\xE2\x81\xA7", "\xE2\x81\xA8", "\xE2\x81\xA9",
                         "\xE2\x80\x8E", "\xE2\x80\x8F", "\xD8\x9C"}) {
    EXPECT_EQ(check_user(std::string("adm") + cp + "in"), e) << cp;
    EXPECT_EQ(check_user(std::string(cp) + "admin"), e) << cp;  // not trimmed as whitespace
    EXPECT_EQ(check_user(cp), e) << cp;
  }
  // Right-to-left text itself is fine (Hebrew, Arabic).
  EXPECT_EQ(check_user("\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D"), "");
  EXPECT_EQ(check_user("\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7"), "");
}

TEST(ChatWireUserName, ZeroWidthAndInvisibleCharactersAreRefused) {
  const std::string e = "\"user\" must not contain invisible characters";
  // ZWSP, ZWNJ, ZWJ, WORD JOINER, invisible operators, BOM, SOFT HYPHEN,
  // COMBINING GRAPHEME JOINER, MONGOLIAN VOWEL SEPARATOR, Hangul fillers,
  // BRAILLE BLANK, a tag character.
  for (const char* cp : {"\xE2\x80\x8B", "\xE2\x80\x8C", "\xE2\x80\x8D", "\xE2\x81\xA0", "\xE2\x81\xA4",
                         "\xEF\xBB\xBF", "\xC2\xAD", "\xCD\x8F", "\xE1\xA0\x8E", "\xE1\x85\x9F",
                         "\xE1\x85\xA0", "\xE3\x85\xA4", "\xEF\xBE\xA0", "\xE2\xA0\x80",
                         "\xF3\xA0\x80\x81"}) {
    EXPECT_EQ(check_user(std::string("adm") + cp + "in"), e) << cp;
    EXPECT_EQ(check_user(cp), e) << cp;  // a zero-width-only name
    EXPECT_EQ(check_user(std::string(" ") + cp + " "), e) << cp;
  }
  // Visible non-ASCII names are fine: accents, CJK, emoji with a variation selector.
  EXPECT_EQ(check_user("J\xC3\xBCrgen"), "");
  EXPECT_EQ(check_user("\xE5\xB1\xB1\xE7\x94\xB0"), "");
  EXPECT_EQ(check_user("\xE2\x9D\xA4\xEF\xB8\x8F"), "");
}

TEST(ChatWireUserName, TextIsNotSubjectToTheNameRule) {
  std::string_view u = "ann";
  EXPECT_EQ(validate_fields(&u, "  line\none\ttab \xE2\x80\xAEtxet\xE2\x80\x8B ", TextLimits{}), "");
  EXPECT_EQ(validate_fields(&u, std::string_view("\0", 1), TextLimits{}), "");
}

HistoryRing ring_of(size_t cap, int n) {
  HistoryRing r(cap);
  for (int i = 1; i <= n; ++i) {
    r.push(ChatMessage{i, "u" + std::to_string(i), "t" + std::to_string(i), 1000 + i});
  }
  return r;
}

TEST(HistoryRing, KeepsLastN) {
  HistoryRing r = ring_of(3, 7);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r.at(0).id, 5);
  EXPECT_EQ(r.at(1).id, 6);
  EXPECT_EQ(r.at(2).id, 7);
  EXPECT_EQ(r.newest().id, 7);
  HistoryRing partial = ring_of(5, 2);
  ASSERT_EQ(partial.size(), 2u);
  EXPECT_EQ(partial.at(0).id, 1);
  EXPECT_EQ(partial.newest().id, 2);
}

TEST(ChatWireEncode, ClassicSnapshotNewestFirst) {
  EXPECT_EQ(encode_classic_snapshot(HistoryRing(50)), R"({"msg":[]})");
  EXPECT_EQ(encode_classic_snapshot(ring_of(2, 3)),
            R"({"msg":[{"user":"u3","text":"t3","time":1003},{"user":"u2","text":"t2","time":1002}]})");
  HistoryRing r(50);
  r.push(ChatMessage{9, "a\"b", "x\ny\x01</script>\xE2\x80\xA8", 1700000000123});
  EXPECT_EQ(encode_classic_snapshot(r),
            "{\"msg\":[{\"user\":\"a\\\"b\",\"text\":\"x\\ny\\u0001</script>\\u2028\",\"time\":1700000000123}]}");
}

// A classic snapshot carries the newest entries that fit in the byte
// budget (a classic client shows only the snapshot, so the newest must
// win), and always the newest one.
TEST(ChatWireEncode, SnapshotIsBoundedInBytesNewestKept) {
  HistoryRing r(50);
  for (int i = 1; i <= 50; ++i) r.push(ChatMessage{i, "u", std::string(100, '\x01'), 1000 + i});  // 600 B escaped
  const std::string full = encode_classic_snapshot(r);
  ASSERT_GT(full.size(), 50u * 600);
  for (size_t budget : {size_t(1000), size_t(2000), size_t(10000), full.size() - 1, full.size()}) {
    const std::string s = encode_classic_snapshot(r, budget);
    EXPECT_LE(s.size(), budget) << budget;
    EXPECT_NE(s.find("\"time\":1050}"), std::string::npos) << budget;  // the newest is in
    // Exactly the newest k entries, as in the unbounded encoding; one more
    // would not have fitted.
    EXPECT_EQ(s.substr(0, s.size() - 2), full.substr(0, s.size() - 2)) << budget;
    EXPECT_EQ(s.substr(s.size() - 2), "]}");
    if (s.size() < full.size()) {
      EXPECT_EQ(full[s.size() - 2], ',');
      const size_t next_end = full.find('}', s.size() - 1) + 1;  // the entry that did not fit
      EXPECT_GT(next_end + 2, budget) << budget;
    }
  }
  EXPECT_EQ(encode_classic_snapshot(r, full.size()), full);
  // A budget smaller than one entry still carries the newest.
  const std::string tiny = encode_classic_snapshot(r, 10);
  EXPECT_EQ(tiny.rfind("{\"msg\":[{", 0), 0u);
  EXPECT_NE(tiny.find("\"time\":1050}]}"), std::string::npos);
}

// The v1 hello is bounded the same way (one control-character flood must
// not make every joiner's greeting megabytes): the newest entries that
// fit, still oldest first, and always the newest.
TEST(ChatWireEncode, HelloIsBoundedInBytesNewestKept) {
  HistoryRing r(50);
  for (int i = 1; i <= 50; ++i) r.push(ChatMessage{i, "u", std::string(100, '\x01'), 1000 + i});
  const std::string full = encode_v1_hello("lobby", 7, 3, r);
  ASSERT_GT(full.size(), 50u * 600);
  const std::string head = "{\"type\":\"hello\",\"room\":\"lobby\",\"you\":7,\"members\":3,\"history\":[";
  ASSERT_EQ(full.rfind(head, 0), 0u);
  for (size_t budget : {size_t(1000), size_t(2000), size_t(10000), full.size() - 1, full.size()}) {
    const std::string s = encode_v1_hello("lobby", 7, 3, r, budget);
    EXPECT_LE(s.size(), budget) << budget;
    ASSERT_EQ(s.rfind(head, 0), 0u) << budget;
    // A suffix of the full history: the newest k entries, oldest first.
    const std::string entries = s.substr(head.size());
    EXPECT_EQ(full.substr(full.size() - entries.size()), entries) << budget;
    EXPECT_NE(s.find("\"id\":50,"), std::string::npos) << budget;
    if (s.size() < full.size()) {
      // One more (older) entry would not have fitted.
      const size_t prev_start = full.rfind("{\"id\":", full.size() - entries.size() - 2);
      EXPECT_GT(s.size() + (full.size() - entries.size() - prev_start), budget) << budget;
    }
  }
  EXPECT_EQ(encode_v1_hello("lobby", 7, 3, r, full.size()), full);
  const std::string tiny = encode_v1_hello("lobby", 7, 3, r, 10);
  EXPECT_EQ(tiny, head + full.substr(full.rfind("{\"id\":50,")));
}

TEST(ChatWireEncode, Errors) {
  EXPECT_EQ(encode_classic_error("\"user\" must be a string"), R"({"error":"\"user\" must be a string"})");
  EXPECT_EQ(encode_v1_error("invalid JSON"), R"({"type":"error","error":"invalid JSON"})");
  EXPECT_EQ(encode_error(WireFormat::Classic, "x"), R"({"error":"x"})");
  EXPECT_EQ(encode_error(WireFormat::V1, "x"), R"({"type":"error","error":"x"})");
}

TEST(ChatWireEncode, V1Formats) {
  EXPECT_EQ(encode_v1_hello("lobby", 7, 3, ring_of(2, 3)),
            R"({"type":"hello","room":"lobby","you":7,"members":3,"history":[)"
            R"({"id":2,"user":"u2","text":"t2","time":1002},{"id":3,"user":"u3","text":"t3","time":1003}]})");
  EXPECT_EQ(encode_v1_hello("", 1, 1, HistoryRing(50)),
            R"({"type":"hello","room":"","you":1,"members":1,"history":[]})");
  EXPECT_EQ(encode_v1_msg(ChatMessage{42, "ann", "hi \"there\"", 1700000000000}),
            R"({"type":"msg","id":42,"user":"ann","text":"hi \"there\"","time":1700000000000})");
  EXPECT_EQ(encode_v1_presence(true, 2), R"({"type":"join","members":2})");
  EXPECT_EQ(encode_v1_presence(false, 0), R"({"type":"leave","members":0})");
}



// ?since=<id>: only what the client lacks, or a reset when the ring no
// longer keeps all of it (never a partial silent gap).
TEST(ChatWireRecovery, SinceIsHonouredOnlyWhenNothingAfterItIsMissing) {
  const HistoryRing r = ring_of(3, 7);  // keeps ids 5, 6, 7
  std::string err;
  HelloRecovery rec = recovery_for("since=5", r, &err);
  EXPECT_TRUE(err.empty());
  EXPECT_EQ(rec.since, 5);
  EXPECT_FALSE(rec.reset);
  EXPECT_EQ(encode_v1_hello("lobby", 7, 3, r, SIZE_MAX, nullptr, rec),
            R"({"type":"hello","room":"lobby","you":7,"members":3,"since":5,"history":[)"
            R"({"id":6,"user":"u6","text":"t6","time":1006},{"id":7,"user":"u7","text":"t7","time":1007}]})");
  EXPECT_EQ(recovery_for("x=1&since=4", r, &err).since, 4);  // 5.. kept: nothing missing
  EXPECT_EQ(recovery_for("since=7", r, &err).since, 7);      // up to date: an empty history
  for (const char* q : {"since=3", "since=0", "since=8"}) {  // 4 trimmed / everything / ahead
    rec = recovery_for(q, r, &err);
    EXPECT_TRUE(rec.reset) << q;
    EXPECT_EQ(rec.since, -1) << q;
  }
  EXPECT_NE(encode_v1_hello("lobby", 7, 3, r, SIZE_MAX, nullptr, rec).find(R"("reset":true,"history":[{"id":5)"),
            std::string::npos);
  EXPECT_EQ(recovery_for("since=0", HistoryRing(50), &err).since, 0);  // an empty room: all of it
  EXPECT_EQ(recovery_for("", r, &err).since, -1);
  EXPECT_FALSE(recovery_for("", r, &err).reset);
  for (const char* bad : {"since=", "since=-1", "since=1x", "since=9999999999999999999"}) {
    err.clear();
    rec = recovery_for(bad, r, &err);
    EXPECT_EQ(err, "since must be a message id (digits)") << bad;
    EXPECT_EQ(rec.since, -1);
    EXPECT_FALSE(rec.reset);
  }
}

}  // namespace
}  // namespace chatws::chat
