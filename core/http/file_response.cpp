// Validators, conditional requests and byte ranges for static files.
//
// Decisions:
// - The ETag is strong: size, modification time (ns) and inode, so a file
//   replaced by rename or rewritten in place gets a new tag.
// - Conditionals follow RFC 9110 13.2.2: If-Match (else If-Unmodified-Since)
//   may answer 412; If-None-Match (else If-Modified-Since) answers 304 for a
//   GET or HEAD; an invalid date is ignored, as 13.1.3/13.1.4 require.
// - Range applies to GET only (14.2). One range is served (206); several are
//   answered with the whole file (200), as are malformed values and other
//   units; a range with no byte inside the file is 416 with
//   "Content-Range: bytes */size". Numbers too large for 64 bits saturate, so
//   they are simply past the end.
// - If-Range with an entity tag matches by strong comparison; with a date,
//   only the exact Last-Modified matches. No match: the whole file.
#include "http/file_response.h"

#include <cstdio>

#include "protocol/handshake.h"

namespace chatws::http {

namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12), and back
// (H. Hinnant's algorithms): no time zone, no locale, no libc state.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = int64_t(yoe) + era * 400 + (*m <= 2);
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

// A cursor over an HTTP-date.
struct DateText {
  std::string_view s;
  size_t i = 0;

  bool lit(std::string_view t) {
    if (s.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  }
  bool digits(size_t n, int* out) {
    if (i + n > s.size()) return false;
    int v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char c = s[i + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    i += n;
    *out = v;
    return true;
  }
  template <size_t N>
  bool one_of(const char* const (&names)[N], int* index) {
    for (size_t k = 0; k < N; ++k) {
      if (lit(names[k])) {
        *index = int(k);
        return true;
      }
    }
    return false;
  }
  bool time_of_day(int* h, int* m, int* sec) {
    return digits(2, h) && lit(":") && digits(2, m) && lit(":") && digits(2, sec);
  }
  bool at_end() const { return i == s.size(); }
};

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// An entity-tag (RFC 9110 8.8.3): optional W/, then a quoted opaque tag.
struct EntityTag {
  bool weak = false;
  std::string_view opaque;  // with its quotes
};

bool parse_entity_tag(std::string_view s, EntityTag* out) {
  out->weak = s.substr(0, 2) == "W/";
  if (out->weak) s.remove_prefix(2);
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t k = 1; k + 1 < s.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    if (c == '"' || c < 0x21 || c == 0x7F) return false;  // etagc: %x21 / %x23-7E / obs-text
  }
  out->opaque = s;
  return true;
}

// Does any If-Match / If-None-Match line hold "*" or a tag equal to `ours`
// (a strong tag)? Strong comparison: both strong and equal; weak: equal.
// A malformed element matches nothing.
bool tag_list_matches(const protocol::HttpRequest& req, std::string_view name, std::string_view ours,
                      bool strong) {
  for (const auto& [k, v] : req.headers) {
    if (!protocol::ascii_iequals(k, name)) continue;
    std::string_view list = v;
    while (true) {
      const size_t comma = list.find(',');
      const std::string_view item = trim_ows(list.substr(0, comma));
      EntityTag t;
      if (item == "*") return true;
      if (parse_entity_tag(item, &t) && t.opaque == ours && !(strong && t.weak)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

bool has_header(const protocol::HttpRequest& req, std::string_view name) { return req.find(name) != nullptr; }

bool header_date(const protocol::HttpRequest& req, std::string_view name, int64_t* out) {
  const std::string_view* v = req.find(name);
  return v && parse_http_date(*v, out);
}

// Decimal digits, saturating at UINT64_MAX; false if none or not digits.
bool parse_position(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = uint64_t(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *out = v;
  return true;
}

// If-Range (RFC 9110 13.1.5): does the validator still describe the file?
bool if_range_holds(std::string_view value, std::string_view tag, int64_t last_modified) {
  value = trim_ows(value);
  if (value.substr(0, 1) == "\"" || value.substr(0, 2) == "W/") {
    EntityTag t;
    return parse_entity_tag(value, &t) && !t.weak && t.opaque == tag;
  }
  int64_t date = 0;
  return parse_http_date(value, &date) && date == last_modified;
}

}  // namespace

std::string entity_tag(const FileVersion& v) {
  const uint64_t mtime_ns = uint64_t(v.mtime_sec) * 1000000000u + v.mtime_nsec;
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "\"%llx-%llx-%llx\"", static_cast<unsigned long long>(v.size),
                              static_cast<unsigned long long>(mtime_ns),
                              static_cast<unsigned long long>(v.inode));
  return std::string(buf, size_t(n));
}

std::string http_date(int64_t t) {
  const int64_t days = floor_div(t, 86400);
  const int64_t secs = t - days * 86400;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, &y, &m, &d);
  const int64_t wday = ((days % 7) + 11) % 7;  // 1970-01-01 was a Thursday
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02d:%02d:%02d GMT", kDays[wday], d,
                              kMonths[m - 1], static_cast<long long>(y), int(secs / 3600),
                              int(secs / 60 % 60), int(secs % 60));
  return std::string(buf, size_t(n));
}

bool parse_http_date(std::string_view s, int64_t* out) {
  int wday = 0, day = 0, month = 0, year = 0, h = 0, mi = 0, sec = 0;
  DateText p{s};
  bool ok = false;
  if (p.one_of(kLongDays, &wday) && p.lit(", ")) {
    // rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
    ok = p.digits(2, &day) && p.lit("-") && p.one_of(kMonths, &month) && p.lit("-") &&
         p.digits(2, &year) && p.lit(" ") && p.time_of_day(&h, &mi, &sec) && p.lit(" GMT") && p.at_end();
    year += year < 70 ? 2000 : 1900;
  } else {
    p = DateText{s};
    if (!p.one_of(kDays, &wday)) return false;
    if (p.lit(", ")) {
      // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
      ok = p.digits(2, &day) && p.lit(" ") && p.one_of(kMonths, &month) && p.lit(" ") &&
           p.digits(4, &year) && p.lit(" ") && p.time_of_day(&h, &mi, &sec) && p.lit(" GMT") && p.at_end();
    } else {
      // asctime-date: Sun Nov  6 08:49:37 1994
      ok = p.lit(" ") && p.one_of(kMonths, &month) && p.lit(" ") &&
           (p.lit(" ") ? p.digits(1, &day) : p.digits(2, &day)) && p.lit(" ") &&
           p.time_of_day(&h, &mi, &sec) && p.lit(" ") && p.digits(4, &year) && p.at_end();
    }
  }
  if (!ok || day < 1 || day > 31 || h > 23 || mi > 59 || sec > 60) return false;
  *out = days_from_civil(year, unsigned(month + 1), unsigned(day)) * 86400 + h * 3600 + mi * 60 + sec;
  return true;
}

RangeKind parse_range(std::string_view value, uint64_t size, ByteRange* out) {
  // ranges-specifier = range-unit "=" range-set; the unit is case-insensitive.
  const size_t eq = value.find('=');
  if (eq == std::string_view::npos || !protocol::ascii_iequals(value.substr(0, eq), "bytes")) {
    return RangeKind::Whole;
  }
  std::string_view set = value.substr(eq + 1);
  std::string_view spec;
  int specs = 0;
  while (true) {  // 1#range-spec: empty list elements are allowed
    const size_t comma = set.find(',');
    const std::string_view item = trim_ows(set.substr(0, comma));
    if (!item.empty()) {
      spec = item;
      ++specs;
    }
    if (comma == std::string_view::npos) break;
    set.remove_prefix(comma + 1);
  }
  if (specs != 1) return RangeKind::Whole;
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeKind::Whole;
  const std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix-range: the last n bytes
    if (!parse_position(b, &last)) return RangeKind::Whole;
    if (last == 0 || size == 0) return RangeKind::Unsatisfiable;
    out->length = last < size ? last : size;
    out->first = size - out->length;
    return RangeKind::Partial;
  }
  if (!parse_position(a, &first)) return RangeKind::Whole;
  if (b.empty()) {
    last = UINT64_MAX;
  } else if (!parse_position(b, &last) || last < first) {
    return RangeKind::Whole;  // invalid: ignored
  }
  if (first >= size) return RangeKind::Unsatisfiable;
  if (last >= size) last = size - 1;
  out->first = first;
  out->length = last - first + 1;
  return RangeKind::Partial;
}

std::string response_head(int status, std::string_view type, uint64_t length, bool keep_alive,
                          std::string_view extra) {
  std::string h;
  h.reserve(192 + extra.size());
  h.append("HTTP/1.1 ");
  h.append(std::to_string(status));
  h.push_back(' ');
  h.append(protocol::http_reason_phrase(status));
  h.append("\r\nContent-Type: ");
  h.append(type);
  h.append("\r\nContent-Length: ");
  h.append(std::to_string(length));
  h.append("\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: ");
  h.append(keep_alive ? "keep-alive" : "close");
  h.append("\r\n");
  h.append(extra);
  h.append("\r\n");
  return h;
}

FileAnswer answer_file(const protocol::HttpRequest& req, const FileVersion& v, std::string_view type,
                       bool keep_alive, int64_t now) {
  const bool get = req.method == "GET";
  const int64_t last_modified = v.mtime_sec < now ? v.mtime_sec : now;
  const std::string tag = entity_tag(v);
  std::string validators;
  validators.reserve(160);
  validators.append("Accept-Ranges: bytes\r\nETag: ");
  validators.append(tag);
  validators.append("\r\nLast-Modified: ");
  validators.append(http_date(last_modified));
  validators.append("\r\nDate: ");
  validators.append(http_date(now));
  validators.append("\r\n");

  FileAnswer a;
  auto text = [&](int status, std::string_view extra) {
    FileAnswer t;
    t.status = status;
    t.body = protocol::http_reason_phrase(status);
    t.body.push_back('\n');
    t.head = response_head(status, "text/plain; charset=utf-8", t.body.size(), keep_alive, extra);
    if (!get) t.body.clear();
    return t;
  };

  int64_t date = 0;
  const bool precondition_failed =
      has_header(req, "If-Match")
          ? !tag_list_matches(req, "If-Match", tag, true)
          : header_date(req, "If-Unmodified-Since", &date) && last_modified > date;
  if (precondition_failed) return text(412, validators);

  const bool not_modified = has_header(req, "If-None-Match")
                                ? tag_list_matches(req, "If-None-Match", tag, false)
                                : header_date(req, "If-Modified-Since", &date) && last_modified <= date;
  if (not_modified) {
    a.status = 304;
    a.head = "HTTP/1.1 304 Not Modified\r\nCache-Control: no-cache\r\nConnection: ";
    a.head.append(keep_alive ? "keep-alive" : "close");
    a.head.append("\r\n");
    a.head.append(validators);
    a.head.append("\r\n");
    return a;
  }

  ByteRange r{0, v.size};
  const std::string_view* range = get ? req.find("Range") : nullptr;
  const std::string_view* if_range = req.find("If-Range");
  if (range && (!if_range || if_range_holds(*if_range, tag, last_modified))) {
    switch (parse_range(*range, v.size, &r)) {
      case RangeKind::Whole:
        r = ByteRange{0, v.size};
        break;
      case RangeKind::Unsatisfiable:
        return text(416, "Content-Range: bytes */" + std::to_string(v.size) + "\r\n" + validators);
      case RangeKind::Partial: {
        std::string extra = "Content-Range: bytes " + std::to_string(r.first) + "-" +
                            std::to_string(r.first + r.length - 1) + "/" + std::to_string(v.size) + "\r\n";
        extra.append(validators);
        a.status = 206;
        a.head = response_head(206, type, r.length, keep_alive, extra);
        a.offset = r.first;
        a.length = r.length;
        return a;
      }
    }
  }
  a.status = 200;
  a.head = response_head(200, type, v.size, keep_alive, validators);
  if (get) a.length = v.size;
  return a;
}

}  // namespace chatws::http
