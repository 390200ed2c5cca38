// The pure part of static file responses, byte by byte: HTTP dates, entity
// tags, Range parsing, and the heads of 200/206/304/412/416 answers to GET
// and HEAD with conditional headers (RFC 9110 sections 8.8, 13, 14).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "http/file_response.h"
#include "protocol/http_request.h"

namespace chatws::http {
namespace {

using protocol::HttpRequest;

constexpr int64_t kRfcExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(kRfcExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
  EXPECT_EQ(http_date(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST(HttpDate, ParsesTheThreeFormsOfRfc9110) {
  int64_t t = 0;
  ASSERT_TRUE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t));
  EXPECT_EQ(t, kRfcExample);
  t = 0;
  ASSERT_TRUE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &t));
  EXPECT_EQ(t, kRfcExample);
  t = 0;
  ASSERT_TRUE(parse_http_date("Sun Nov  6 08:49:37 1994", &t));
  EXPECT_EQ(t, kRfcExample);
  ASSERT_TRUE(parse_http_date("Saturday, 05-Nov-05 08:49:37 GMT", &t));  // two-digit year < 70: 20xx
  EXPECT_EQ(http_date(t), "Sat, 05 Nov 2005 08:49:37 GMT");
  ASSERT_TRUE(parse_http_date("Tue Feb 29 00:00:00 2000", &t));
  EXPECT_EQ(t, 951782400);
}

TEST(HttpDate, RefusesAnythingElse) {
  int64_t t = 42;
  for (const char* bad : {
           "", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 GMT ", " Sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
           "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
           "Sun, 06 Nov 1994 08:49 GMT", "sun, 06 Nov 1994 08:49:37 GMT",
           "Sun Nov 6 08:49:37 1994", "Sunday, 06 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37Z",
           "Sun, 06 Nov 1994 08:49:37 GMTx", "Sun, 06 Nov 1994 0a:49:37 GMT"}) {
    EXPECT_FALSE(parse_http_date(bad, &t)) << bad;
  }
  EXPECT_EQ(t, 42) << "untouched on failure";
}

TEST(HttpDate, RoundTrips) {
  for (int64_t t : {int64_t(0), int64_t(1), kRfcExample, int64_t(951782400), int64_t(1700000000),
                    int64_t(4102444800), int64_t(253402300799)}) {
    int64_t back = -1;
    ASSERT_TRUE(parse_http_date(http_date(t), &back)) << t;
    EXPECT_EQ(back, t);
  }
}

TEST(EntityTag, QuotedHexOfSizeMtimeAndInode) {
  EXPECT_EQ(entity_tag(FileVersion{13, kRfcExample, 5, 42}), "\"d-ae1b981bc490a05-2a\"");
  EXPECT_EQ(entity_tag(FileVersion{}), "\"0-0-0\"");
  const FileVersion v{13, kRfcExample, 5, 42};
  FileVersion bigger = v, later = v, moved = v;
  bigger.size = 14;
  later.mtime_nsec = 6;
  moved.inode = 43;
  for (const FileVersion& o : {bigger, later, moved}) EXPECT_NE(entity_tag(o), entity_tag(v));
}

struct RangeCase {
  const char* value;
  RangeKind kind;
  uint64_t first, length;
};

TEST(ParseRange, OneRangeOfTenThousandBytes) {
  const RangeCase cases[] = {
      {"bytes=0-499", RangeKind::Partial, 0, 500},
      {"bytes=500-999", RangeKind::Partial, 500, 500},
      {"bytes=-500", RangeKind::Partial, 9500, 500},
      {"bytes=9500-", RangeKind::Partial, 9500, 500},
      {"bytes=0-0", RangeKind::Partial, 0, 1},
      {"bytes=9999-9999", RangeKind::Partial, 9999, 1},
      {"bytes=0-99999", RangeKind::Partial, 0, 10000},       // last clamped
      {"bytes=9000-18446744073709551615", RangeKind::Partial, 9000, 1000},
      {"bytes=-20000", RangeKind::Partial, 0, 10000},        // suffix longer than the file
      {"BYTES=1-2", RangeKind::Partial, 1, 2},               // unit case-insensitive
      {"bytes=1-2,,", RangeKind::Partial, 1, 2},             // empty list elements
      {"bytes= 1-2 ", RangeKind::Partial, 1, 2},
      {"bytes=10000-", RangeKind::Unsatisfiable, 0, 0},
      {"bytes=10000-20000", RangeKind::Unsatisfiable, 0, 0},
      {"bytes=-0", RangeKind::Unsatisfiable, 0, 0},
      {"bytes=99999999999999999999999-", RangeKind::Unsatisfiable, 0, 0},  // saturates
      {"bytes=0-1,5-6", RangeKind::Whole, 0, 0},             // several: the whole file
      {"bytes=0-0,-1", RangeKind::Whole, 0, 0},
      {"bytes=5-4", RangeKind::Whole, 0, 0},                 // invalid: ignored
      {"bytes=a-b", RangeKind::Whole, 0, 0},
      {"bytes=1-2-3", RangeKind::Whole, 0, 0},
      {"bytes=--5", RangeKind::Whole, 0, 0},
      {"bytes=-", RangeKind::Whole, 0, 0},
      {"bytes=5", RangeKind::Whole, 0, 0},
      {"bytes=", RangeKind::Whole, 0, 0},
      {"bytes=+1-2", RangeKind::Whole, 0, 0},
      {"bytes = 1-2", RangeKind::Whole, 0, 0},
      {"items=0-5", RangeKind::Whole, 0, 0},                 // another unit
      {"0-5", RangeKind::Whole, 0, 0},
      {"", RangeKind::Whole, 0, 0},
  };
  for (const RangeCase& c : cases) {
    ByteRange r{77, 77};
    EXPECT_EQ(parse_range(c.value, 10000, &r), c.kind) << c.value;
    if (c.kind == RangeKind::Partial) {
      EXPECT_EQ(r.first, c.first) << c.value;
      EXPECT_EQ(r.length, c.length) << c.value;
    }
  }
}

TEST(ParseRange, EmptyFileHasNoSatisfiableRange) {
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=0-", 0, &r), RangeKind::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-5", 0, &r), RangeKind::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-0", 0, &r), RangeKind::Unsatisfiable);
}

// The file every answer below describes: 13 bytes, modified at the RFC's
// example date, inode 42; answered an hour later.
const FileVersion kFile{13, kRfcExample, 5, 42};
constexpr int64_t kNow = kRfcExample + 3600;
constexpr const char* kTag = "\"d-ae1b981bc490a05-2a\"";
constexpr const char* kValidators =
    "Accept-Ranges: bytes\r\n"
    "ETag: \"d-ae1b981bc490a05-2a\"\r\n"
    "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    "Date: Sun, 06 Nov 1994 09:49:37 GMT\r\n";

FileAnswer answer(std::string_view method, std::vector<std::pair<std::string_view, std::string_view>> headers,
                  bool keep_alive = true, FileVersion v = kFile, int64_t now = kNow) {
  HttpRequest req;
  req.method = method;
  req.target = req.path = "/f.txt";
  req.headers = std::move(headers);
  return answer_file(req, v, "text/plain; charset=utf-8", keep_alive, now);
}

std::string head_200(const char* connection = "keep-alive") {
  return std::string("HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 13\r\n"
                     "Cache-Control: no-cache\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "Connection: ") +
         connection + "\r\n" + kValidators + "\r\n";
}

const std::string kHead304 = std::string(
                                 "HTTP/1.1 304 Not Modified\r\n"
                                 "Cache-Control: no-cache\r\n"
                                 "Connection: keep-alive\r\n") +
                             kValidators + "\r\n";

void expect_whole(const FileAnswer& a, const char* why) {
  EXPECT_EQ(a.status, 200) << why;
  EXPECT_EQ(a.head, head_200()) << why;
  EXPECT_EQ(a.offset, 0u) << why;
  EXPECT_EQ(a.length, 13u) << why;
  EXPECT_EQ(a.body, "") << why;
}

void expect_304(const FileAnswer& a, const char* why) {
  EXPECT_EQ(a.status, 304) << why;
  EXPECT_EQ(a.head, kHead304) << why;
  EXPECT_EQ(a.length, 0u) << why;
  EXPECT_EQ(a.body, "") << why;
}

TEST(AnswerFile, GetIsTheWholeFileWithValidators) {
  expect_whole(answer("GET", {}), "plain GET");
  FileAnswer closing = answer("GET", {}, false);
  EXPECT_EQ(closing.head, head_200("close"));
}

TEST(AnswerFile, HeadHasTheSameHeadAndNoBytes) {
  FileAnswer h = answer("HEAD", {});
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.head, head_200());
  EXPECT_EQ(h.length, 0u);
  // Range is defined for GET only: HEAD ignores it.
  FileAnswer ranged = answer("HEAD", {{"Range", "bytes=0-3"}});
  EXPECT_EQ(ranged.status, 200);
  EXPECT_EQ(ranged.head, head_200());
  EXPECT_EQ(ranged.length, 0u);
}

TEST(AnswerFile, OneRangeIs206WithContentRange) {
  FileAnswer a = answer("GET", {{"Range", "bytes=4-7"}});
  EXPECT_EQ(a.status, 206);
  EXPECT_EQ(a.head, std::string("HTTP/1.1 206 Partial Content\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Length: 4\r\n"
                                "Cache-Control: no-cache\r\n"
                                "X-Content-Type-Options: nosniff\r\n"
                                "Connection: keep-alive\r\n"
                                "Content-Range: bytes 4-7/13\r\n") +
                        kValidators + "\r\n");
  EXPECT_EQ(a.offset, 4u);
  EXPECT_EQ(a.length, 4u);
  EXPECT_EQ(a.body, "");
  FileAnswer suffix = answer("GET", {{"Range", "bytes=-3"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_NE(suffix.head.find("\r\nContent-Range: bytes 10-12/13\r\n"), std::string::npos);
  EXPECT_NE(suffix.head.find("\r\nContent-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(suffix.offset, 10u);
  EXPECT_EQ(suffix.length, 3u);
}

TEST(AnswerFile, UnsatisfiableRangeIs416WithTheSize) {
  FileAnswer a = answer("GET", {{"Range", "bytes=13-"}});
  EXPECT_EQ(a.status, 416);
  EXPECT_EQ(a.head, std::string("HTTP/1.1 416 Range Not Satisfiable\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Length: 22\r\n"
                                "Cache-Control: no-cache\r\n"
                                "X-Content-Type-Options: nosniff\r\n"
                                "Connection: keep-alive\r\n"
                                "Content-Range: bytes */13\r\n") +
                        kValidators + "\r\n");
  EXPECT_EQ(a.body, "Range Not Satisfiable\n");
  EXPECT_EQ(a.length, 0u);
}

TEST(AnswerFile, IgnoredRangesGetTheWholeFile) {
  expect_whole(answer("GET", {{"Range", "bytes=0-1,4-5"}}), "two ranges");
  expect_whole(answer("GET", {{"Range", "bytes=5-2"}}), "invalid range");
  expect_whole(answer("GET", {{"Range", "lines=1-2"}}), "unknown unit");
}

TEST(AnswerFile, IfNoneMatchIs304WhenAnyTagMatchesWeakly) {
  expect_304(answer("GET", {{"If-None-Match", kTag}}), "same tag");
  expect_304(answer("HEAD", {{"If-None-Match", kTag}}), "HEAD");
  expect_304(answer("GET", {{"If-None-Match", "W/\"d-ae1b981bc490a05-2a\""}}), "weak comparison");
  expect_304(answer("GET", {{"If-None-Match", "*"}}), "star");
  expect_304(answer("GET", {{"If-None-Match", "\"x\", \"d-ae1b981bc490a05-2a\""}}), "in a list");
  expect_304(answer("GET", {{"If-None-Match", "\"x\""}, {"if-none-match", kTag}}), "second line");
  expect_whole(answer("GET", {{"If-None-Match", "\"d-ae1b981bc490a05-2b\""}}), "other tag");
  expect_whole(answer("GET", {{"If-None-Match", "d-ae1b981bc490a05-2a"}}), "unquoted");
  expect_whole(answer("GET", {{"If-None-Match", ""}}), "empty");
  // 304 wins over Range.
  expect_304(answer("GET", {{"If-None-Match", kTag}, {"Range", "bytes=0-1"}}), "with a range");
}

TEST(AnswerFile, IfModifiedSinceIs304UnlessModifiedAfter) {
  expect_304(answer("GET", {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}), "same second");
  expect_304(answer("GET", {{"If-Modified-Since", "Sunday, 06-Nov-94 09:00:00 GMT"}}), "later, RFC 850");
  expect_whole(answer("GET", {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT"}}), "a second before");
  expect_whole(answer("GET", {{"If-Modified-Since", "yesterday"}}), "invalid date ignored");
  // If-None-Match present: If-Modified-Since is not evaluated.
  expect_whole(answer("GET", {{"If-None-Match", "\"x\""},
                              {"If-Modified-Since", "Sun, 06 Nov 1994 09:00:00 GMT"}}),
               "If-None-Match takes precedence");
}

TEST(AnswerFile, IfMatchAndIfUnmodifiedSinceAre412WhenTheyFail) {
  const std::string head_412 = std::string("HTTP/1.1 412 Precondition Failed\r\n"
                                           "Content-Type: text/plain; charset=utf-8\r\n"
                                           "Content-Length: 20\r\n"
                                           "Cache-Control: no-cache\r\n"
                                           "X-Content-Type-Options: nosniff\r\n"
                                           "Connection: keep-alive\r\n") +
                               kValidators + "\r\n";
  FileAnswer failed = answer("GET", {{"If-Match", "\"other\""}});
  EXPECT_EQ(failed.status, 412);
  EXPECT_EQ(failed.head, head_412);
  EXPECT_EQ(failed.body, "Precondition Failed\n");
  EXPECT_EQ(failed.length, 0u);
  FileAnswer head = answer("HEAD", {{"If-Match", "\"other\""}});
  EXPECT_EQ(head.head, head_412);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(answer("GET", {{"If-Match", "W/\"d-ae1b981bc490a05-2a\""}}).status, 412) << "strong comparison";
  expect_whole(answer("GET", {{"If-Match", kTag}}), "matching tag");
  expect_whole(answer("GET", {{"If-Match", "*"}}), "star");
  EXPECT_EQ(answer("GET", {{"If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:36 GMT"}}).status, 412);
  expect_whole(answer("GET", {{"If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}), "not modified since");
  expect_whole(answer("GET", {{"If-Unmodified-Since", "garbage"}}), "invalid date ignored");
  expect_whole(answer("GET", {{"If-Match", kTag}, {"If-Unmodified-Since", "Sun, 06 Nov 1994 08:00:00 GMT"}}),
               "If-Match takes precedence");
  // 412 comes before 304.
  EXPECT_EQ(answer("GET", {{"If-Match", "\"other\""}, {"If-None-Match", kTag}}).status, 412);
}

TEST(AnswerFile, IfRangeKeepsTheRangeOnlyForTheSameVersion) {
  EXPECT_EQ(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", kTag}}).status, 206);
  EXPECT_EQ(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", "Sun, 06 Nov 1994 08:49:37 GMT"}}).status, 206);
  expect_whole(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", "\"old\""}}), "other tag");
  expect_whole(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", "W/\"d-ae1b981bc490a05-2a\""}}),
               "a weak tag never matches");
  expect_whole(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", "Sun, 06 Nov 1994 08:49:38 GMT"}}),
               "another date");
  expect_whole(answer("GET", {{"Range", "bytes=0-1"}, {"If-Range", "junk"}}), "junk");
  expect_whole(answer("GET", {{"If-Range", kTag}}), "If-Range without Range");
  // A stale If-Range also skips the 416: the client gets the whole file.
  expect_whole(answer("GET", {{"Range", "bytes=99-"}, {"If-Range", "\"old\""}}), "stale, unsatisfiable");
}

TEST(AnswerFile, LastModifiedIsNeverAfterDate) {
  FileVersion future = kFile;
  future.mtime_sec = kNow + 86400;
  FileAnswer a = answer("GET", {}, true, future);
  EXPECT_NE(a.head.find("\r\nLast-Modified: Sun, 06 Nov 1994 09:49:37 GMT\r\n"), std::string::npos) << a.head;
  EXPECT_NE(a.head.find("\r\nDate: Sun, 06 Nov 1994 09:49:37 GMT\r\n"), std::string::npos);
}

TEST(AnswerFile, EmptyFile) {
  FileVersion empty = kFile;
  empty.size = 0;
  FileAnswer a = answer("GET", {}, true, empty);
  EXPECT_EQ(a.status, 200);
  EXPECT_NE(a.head.find("\r\nContent-Length: 0\r\n"), std::string::npos);
  EXPECT_EQ(a.length, 0u);
  EXPECT_EQ(answer("GET", {{"Range", "bytes=0-"}}, true, empty).status, 416);
}

TEST(ResponseHead, ErrorHeadsKeepTheirFormat) {
  EXPECT_EQ(response_head(404, "text/plain; charset=utf-8", 10, false, "X-A: b\r\n"),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 10\r\n"
            "Cache-Control: no-cache\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n"
            "X-A: b\r\n"
            "\r\n");
}

}  // namespace
}  // namespace chatws::http
