#include "chat/chat_wire.h"

#include <simdjson.h>

#include <cstring>

#include "chat/json_escape.h"

namespace chatws::chat {

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // skip continuation bytes
  return n;
}

namespace {

std::string check_field(const char* name, std::string_view v, size_t max) {
  // Parsed JSON strings are valid UTF-8 already; host posts and moderator
  // rewrites are not, so every path checks.
  if (!simdjson::validate_utf8(v.data(), v.size())) return std::string("\"") + name + "\" is not valid UTF-8";
  if (v.empty()) return std::string("\"") + name + "\" must not be empty";
  if (v.size() > max && count_code_points(v) > max) {  // bytes >= code points: cheap test first
    return std::string("\"") + name + "\" is longer than " + std::to_string(max) + " characters";
  }
  return {};
}

}  // namespace

std::string validate_fields(std::string_view user, std::string_view text, const TextLimits& limits) {
  std::string e = check_field("user", user, limits.max_user);
  if (e.empty()) e = check_field("text", text, limits.max_text);
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
  *error = validate_fields(*user, *text, limits_);
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

}  // namespace

std::string encode_classic_snapshot(const HistoryRing& history) {
  std::string out;
  out.reserve(estimate(history));
  out.append("{\"msg\":[");
  for (size_t i = history.size(); i-- > 0;) {
    append_entry(&out, history.at(i), false);
    if (i != 0) out.push_back(',');
  }
  out.append("]}");
  return out;
}

std::string encode_classic_error(std::string_view reason) {
  std::string out = "{\"error\":";
  append_json_string(&out, reason);
  out.push_back('}');
  return out;
}

std::string encode_v1_hello(std::string_view room, uint64_t you, size_t members,
                            const HistoryRing& history) {
  std::string out;
  out.reserve(estimate(history) + room.size() + 64);
  out.append("{\"type\":\"hello\",\"room\":");
  append_json_string(&out, room);
  out.append(",\"you\":");
  append_json_int(&out, static_cast<long long>(you));
  out.append(",\"members\":");
  append_json_int(&out, static_cast<long long>(members));
  out.append(",\"history\":[");
  for (size_t i = 0; i < history.size(); ++i) {
    if (i != 0) out.push_back(',');
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
