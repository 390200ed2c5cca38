#include "chat/chat_wire.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "chat/json_escape.h"

namespace chatws::chat {

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // skip continuation bytes
  return n;
}

namespace {

std::string field_error(const char* name, const char* what) { return std::string("\"") + name + "\" " + what; }

// Valid UTF-8 and not empty.
std::string check_utf8(const char* name, std::string_view v) {
  // Parsed JSON strings are valid UTF-8 already; host posts and moderator
  // rewrites are not, so every path checks.
  if (!simdjson::validate_utf8(v.data(), v.size())) return field_error(name, "is not valid UTF-8");
  if (v.empty()) return field_error(name, "must not be empty");
  return {};
}

std::string check_length(const char* name, std::string_view v, size_t max) {
  if (v.size() > max && count_code_points(v) > max) {  // bytes >= code points: cheap test first
    return field_error(name, ("is longer than " + std::to_string(max) + " characters").c_str());
  }
  return {};
}

// The code point starting at s[i] of valid UTF-8; *len gets its byte count.
uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k])); };
  const uint32_t c = b(0);
  if (c < 0x80) return *len = 1, c;
  if (c < 0xE0) return *len = 2, ((c & 0x1F) << 6) | (b(1) & 0x3F);
  if (c < 0xF0) return *len = 3, ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return *len = 4, ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

// Unicode White_Space (what a name is trimmed of).
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

enum class NameChar { Ok, Control, Bidi, Invisible };

// What a code point inside a (trimmed) name is. Controls include the
// whitespace that breaks a line (tab, newline, NEL, U+2028/U+2029).
NameChar classify_name_char(uint32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029) return NameChar::Control;
  if (c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
      (c >= 0x2066 && c <= 0x2069)) {
    return NameChar::Bidi;
  }
  // Zero-width and blank-looking characters: a name made of them looks
  // empty, and one slipped into a name makes a look-alike of another.
  if (c == 0xAD || c == 0x34F || c == 0x115F || c == 0x1160 || c == 0x180E || (c >= 0x200B && c <= 0x200D) ||
      (c >= 0x2060 && c <= 0x2064) || (c >= 0x206A && c <= 0x206F) || c == 0x2800 || c == 0x3164 ||
      c == 0xFEFF || c == 0xFFA0 || (c >= 0xE0000 && c <= 0xE007F)) {
    return NameChar::Invisible;
  }
  return NameChar::Ok;
}

// Narrows *name (valid UTF-8) to its trimmed form and checks what is left;
// "" if it is a valid name.
std::string check_name_chars(std::string_view* name) {
  std::string_view v = *name;
  size_t n = 0;
  while (!v.empty() && is_space(decode_at(v, 0, &n))) v.remove_prefix(n);
  while (!v.empty()) {
    size_t start = v.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(v[start]) & 0xC0) == 0x80) --start;
    if (!is_space(decode_at(v, start, &n))) break;
    v.remove_suffix(v.size() - start);
  }
  *name = v;
  if (v.empty()) return field_error("user", "must not be blank");
  for (size_t i = 0; i < v.size(); i += n) {
    switch (classify_name_char(decode_at(v, i, &n))) {
      case NameChar::Ok: break;
      case NameChar::Control: return field_error("user", "must not contain control characters");
      case NameChar::Bidi: return field_error("user", "must not contain bidirectional formatting characters");
      case NameChar::Invisible: return field_error("user", "must not contain invisible characters");
    }
  }
  return {};
}

}  // namespace

std::string validate_fields(std::string_view* user, std::string_view text, const TextLimits& limits) {
  // The name rule applies to what is sent, the length limit to what is kept.
  std::string e = check_utf8("user", *user);
  if (e.empty()) e = check_name_chars(user);
  if (e.empty()) e = check_length("user", *user, limits.max_user);
  if (e.empty()) e = check_utf8("text", text);
  if (e.empty()) e = check_length("text", text, limits.max_text);
  return e;
}

struct MessageParser::Impl {
  simdjson::dom::parser parser;
  std::string padded;  // the payload copied with simdjson's read-ahead padding
};

MessageParser::MessageParser(const TextLimits& limits)
    : impl_(std::make_unique<Impl>()),
      limits_(limits),
      // 12 bytes per code point covers a character escaped as a surrogate
      // pair (\uXXXX\uXXXX); 4 KiB leaves room for small unknown fields.
      max_payload_(12 * (limits.max_user + limits.max_text) + 4096) {
  // Pre-size; should this fail, parse() allocates again (and reports it).
  if (impl_->parser.allocate(max_payload_) != simdjson::SUCCESS) return;
}

MessageParser::~MessageParser() = default;

bool MessageParser::parse(std::string_view payload, WireFormat format, std::string_view* user,
                          std::string_view* text, std::string* error) {
  if (payload.size() > max_payload_) {
    *error = "message too large";
    return false;
  }
  impl_->padded.resize(payload.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(impl_->padded.data(), payload.data(), payload.size());
  simdjson::dom::element doc;
  if (impl_->parser.parse(impl_->padded.data(), payload.size(), false).get(doc) != simdjson::SUCCESS) {
    *error = "invalid JSON";
    return false;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    *error = "message must be a JSON object";
    return false;
  }
  if (format == WireFormat::V1) {
    simdjson::dom::element type;
    if (obj["type"].get(type) == simdjson::SUCCESS) {
      std::string_view t;
      if (type.get_string().get(t) != simdjson::SUCCESS || t != "msg") {
        *error = "unsupported message type";
        return false;
      }
    }
  }
  const char* names[2] = {"user", "text"};
  std::string_view* outs[2] = {user, text};
  for (int i = 0; i < 2; ++i) {
    simdjson::dom::element el;
    if (obj[names[i]].get(el) != simdjson::SUCCESS) {
      *error = std::string("missing \"") + names[i] + "\"";
      return false;
    }
    if (el.get_string().get(*outs[i]) != simdjson::SUCCESS) {
      *error = std::string("\"") + names[i] + "\" must be a string";
      return false;
    }
  }
  *error = validate_fields(user, *text, limits_);
  return error->empty();
}

namespace {

// The fields of one history entry, without braces.
void append_fields(std::string* out, const ChatMessage& m, bool with_id) {
  if (with_id) {
    out->append("\"id\":");
    append_json_int(out, m.id);
    out->push_back(',');
  }
  out->append("\"user\":");
  append_json_string(out, m.user);
  out->append(",\"text\":");
  append_json_string(out, m.text);
  out->append(",\"time\":");
  append_json_int(out, m.time_ms);
}

void append_entry(std::string* out, const ChatMessage& m, bool with_id) {
  out->push_back('{');
  append_fields(out, m, with_id);
  out->push_back('}');
}

size_t estimate(const HistoryRing& h) {
  size_t n = 64;
  for (size_t i = 0; i < h.size(); ++i) n += h.at(i).user.size() + h.at(i).text.size() + 64;
  return n;
}

// Appends the newest entries of `history` that fit in `max_bytes` (with
// `reserve` bytes kept for the rest of the payload), newest first, comma
// separated; at least the newest.
void append_newest(std::string* out, const HistoryRing& history, size_t max_bytes, size_t reserve) {
  for (size_t i = history.size(), n = 0; i-- > 0; ++n) {
    const size_t start = out->size();
    if (n != 0) out->push_back(',');
    append_entry(out, history.at(i), false);
    if (n != 0 && out->size() + reserve > max_bytes) {
      out->resize(start);
      return;
    }
  }
}

}  // namespace

std::string encode_classic_snapshot(const HistoryRing& history, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(estimate(history), max_bytes));
  out.append("{\"msg\":[");
  append_newest(&out, history, max_bytes, 2);
  out.append("]}");
  return out;
}

std::string encode_classic_error(std::string_view reason) {
  std::string out = "{\"error\":";
  append_json_string(&out, reason);
  out.push_back('}');
  return out;
}

HelloRecovery recovery_for(std::string_view query, const HistoryRing& history, std::string* error) {
  HelloRecovery r;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.substr(0, 6) != "since=") continue;
    std::string_view v = param.substr(6);
    int64_t n = 0;
    bool ok = !v.empty() && v.size() <= 18;
    for (char c : v) {
      if (c < '0' || c > '9') ok = false;
      n = ok ? n * 10 + (c - '0') : 0;
    }
    if (!ok) {
      if (error) *error = "since must be a message id (digits)";
      return HelloRecovery{};
    }
    r.since = n;
    r.asked = n;
  }
  if (r.since < 0) return r;
  const int64_t newest = history.empty() ? 0 : history.newest().id;
  const int64_t oldest = history.empty() ? 1 : history.at(0).id;
  // Everything after `since` is kept when the ring starts right after it
  // (or earlier); an id ahead of the room cannot be the client's.
  if (r.since > newest || (r.since + 1 < oldest)) {
    r.since = -1;
    r.reset = true;
  }
  return r;
}

std::string encode_v1_hello(std::string_view room, uint64_t you, size_t members,
                            const HistoryRing& history, size_t max_bytes,
                            const std::string* identity, HelloRecovery recovery) {
  std::string out;
  out.reserve(std::min(estimate(history), max_bytes) + room.size() + 64);
  out.append("{\"type\":\"hello\",\"room\":");
  append_json_string(&out, room);
  out.append(",\"you\":");
  append_json_int(&out, static_cast<long long>(you));
  if (identity) {
    out.append(",\"identity\":");
    append_json_string(&out, *identity);
  }
  out.append(",\"members\":");
  append_json_int(&out, static_cast<long long>(members));
  if (recovery.since >= 0) {
    // Only what the client lacks, all of it (the ring bounds it): no budget.
    out.append(",\"since\":");
    append_json_int(&out, static_cast<long long>(recovery.since));
    out.append(",\"history\":[");
    bool first_entry = true;
    for (size_t i = 0; i < history.size(); ++i) {
      if (history.at(i).id <= recovery.since) continue;
      if (!first_entry) out.push_back(',');
      first_entry = false;
      append_entry(&out, history.at(i), true);
    }
    out.append("]}");
    return out;
  }
  if (recovery.reset) out.append(",\"reset\":true");
  out.append(",\"history\":[");
  // Oldest first on the wire, but the newest must win the budget: measure
  // from the newest back to find the oldest entry that still fits.
  size_t first = history.size();
  std::string entry;
  for (size_t total = out.size() + 2; first > 0; --first) {
    entry.clear();
    append_entry(&entry, history.at(first - 1), true);
    total += entry.size() + (first == history.size() ? 0 : 1);
    if (first != history.size() && total > max_bytes) break;
  }
  for (size_t i = first; i < history.size(); ++i) {
    if (i != first) out.push_back(',');
    append_entry(&out, history.at(i), true);
  }
  out.append("]}");
  return out;
}

std::string encode_v1_msg(const ChatMessage& m) {
  std::string out;
  out.reserve(m.user.size() + m.text.size() + 80);
  out.append("{\"type\":\"msg\",");
  append_fields(&out, m, true);
  out.push_back('}');
  return out;
}

std::string encode_v1_presence(bool joined, size_t members) {
  std::string out = joined ? "{\"type\":\"join\",\"members\":" : "{\"type\":\"leave\",\"members\":";
  append_json_int(&out, static_cast<long long>(members));
  out.push_back('}');
  return out;
}

std::string encode_v1_error(std::string_view reason) {
  std::string out = "{\"type\":\"error\",\"error\":";
  append_json_string(&out, reason);
  out.push_back('}');
  return out;
}

std::string encode_v1_dropped(uint64_t count) {
  std::string out = "{\"type\":\"dropped\",\"count\":";
  append_json_int(&out, static_cast<long long>(count));
  out.push_back('}');
  return out;
}

}  // namespace chatws::chat
