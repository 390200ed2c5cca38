// Fuzz target: the chat message handler (core/chat): a client's JSON message
// is parsed and validated into an error or a normalised message, then the
// outgoing formats are encoded and parsed back with simdjson.
//
// Input: 1 byte flags (wire format, limits), 8 bytes of id/time, then the
// payload. Checks
//   - an accepted message has a user and a text that are valid UTF-8 (by the
//     reference decoder), non-empty and within the limits in code points,
//     and a user name that obeys the name rule of chat_wire.h (checked here
//     against a table of its ranges);
//   - every outgoing payload (classic snapshot, v1 msg/hello/error/presence,
//     classic error) is valid JSON of the documented shape, gives back the
//     exact strings that went in, and never carries a raw U+2028/U+2029;
//   - the escaper round-trips any valid UTF-8 (the raw payload as a reason).
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_wire.h"
#include "chat/history_ring.h"
#include "chat/room_path.h"
#include "fuzz_split.h"
#include "reference_utf8.h"

namespace {

using namespace chatws::chat;
using simdjson::dom::element;

void check(bool ok) {
  if (!ok) std::abort();
}

simdjson::dom::parser& json() {
  static simdjson::dom::parser p;
  return p;
}

bool valid_utf8(std::string_view s) {
  return chatws::fuzz::reference_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size()).valid;
}

// Parses an outgoing payload; it must be a JSON object without raw line
// separators.
element parse_out(const std::string& out) {
  check(out.find("\xE2\x80\xA8") == std::string::npos);
  check(out.find("\xE2\x80\xA9") == std::string::npos);
  element doc;
  check(json().parse(out).get(doc) == simdjson::SUCCESS);
  check(doc.is_object());
  return doc;
}

std::string_view str(element e, const char* key) {
  std::string_view v;
  check(e[key].get_string().get(v) == simdjson::SUCCESS);
  return v;
}

element at(simdjson::dom::array a, size_t i) {
  element e;
  check(a.at(i).get(e) == simdjson::SUCCESS);
  return e;
}

int64_t num(element e, const char* key) {
  int64_t v = 0;
  check(e[key].get_int64().get(v) == simdjson::SUCCESS);
  return v;
}

void check_entry(element e, const ChatMessage& m, bool with_id) {
  check(str(e, "user") == m.user);
  check(str(e, "text") == m.text);
  check(num(e, "time") == m.time_ms);
  if (with_id) check(num(e, "id") == m.id);
}

void check_error(WireFormat f, std::string_view reason) {
  // Parsed documents are only valid until the next parse: copy first.
  const std::string out = encode_error(f, reason);
  element doc = parse_out(out);
  check(str(doc, "error") == reason);
  if (f == WireFormat::V1) check(str(doc, "type") == "error");
}

void check_outgoing(const ChatMessage& m, const ChatMessage& older, std::string_view room) {
  HistoryRing ring(2);
  ring.push(older);
  ring.push(m);

  std::string out = encode_v1_msg(m);
  element doc = parse_out(out);
  check(str(doc, "type") == "msg");
  check_entry(doc, m, true);

  out = encode_classic_snapshot(ring);  // newest first
  doc = parse_out(out);
  simdjson::dom::array arr;
  check(doc["msg"].get_array().get(arr) == simdjson::SUCCESS);
  check(arr.size() == 2);
  check_entry(at(arr, 0), m, false);
  check_entry(at(arr, 1), older, false);

  out = encode_v1_hello(room, static_cast<uint64_t>(m.id), 3, ring);  // oldest first
  doc = parse_out(out);
  check(str(doc, "type") == "hello");
  check(str(doc, "room") == room);
  check(num(doc, "members") == 3);
  check(doc["history"].get_array().get(arr) == simdjson::SUCCESS);
  check(arr.size() == 2);
  check_entry(at(arr, 0), older, true);
  check_entry(at(arr, 1), m, true);

  out = encode_v1_presence((m.id & 1) != 0, static_cast<size_t>(m.time_ms & 0xFFFF));
  doc = parse_out(out);
  check(num(doc, "members") == (m.time_ms & 0xFFFF));
}

// The user-name rule of chat_wire.h as a table: trimmed whitespace, and the
// ranges refused inside a name.
struct Range {
  uint32_t lo, hi;
};
constexpr Range kSpace[] = {{0x09, 0x0D}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
                            {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                            {0x3000, 0x3000}};
constexpr Range kRefused[] = {
    {0x00, 0x1F}, {0x7F, 0x9F}, {0xAD, 0xAD}, {0x34F, 0x34F}, {0x61C, 0x61C}, {0x115F, 0x1160},
    {0x180E, 0x180E}, {0x200B, 0x200F}, {0x2028, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F},
    {0x2800, 0x2800}, {0x3164, 0x3164}, {0xFEFF, 0xFEFF}, {0xFFA0, 0xFFA0}, {0xE0000, 0xE007F}};

template <size_t N>
bool in(const Range (&table)[N], uint32_t c) {
  for (const Range& r : table) {
    if (c >= r.lo && c <= r.hi) return true;
  }
  return false;
}

// Code points of valid UTF-8.
std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    const size_t len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    uint32_t c = len == 1 ? b0 : b0 & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    out.push_back(c);
    i += len;
  }
  return out;
}

// The name as kept if `name` (valid UTF-8) obeys the rule within max_user.
std::optional<std::vector<uint32_t>> reference_name(std::string_view name, size_t max_user) {
  std::vector<uint32_t> cps = code_points(name);
  size_t b = 0, e = cps.size();
  while (b < e && in(kSpace, cps[b])) ++b;
  while (e > b && in(kSpace, cps[e - 1])) --e;
  if (b == e || e - b > max_user) return std::nullopt;
  for (size_t i = b; i < e; ++i) {
    if (in(kRefused, cps[i])) return std::nullopt;
  }
  return std::vector<uint32_t>(cps.begin() + ptrdiff_t(b), cps.begin() + ptrdiff_t(e));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint32_t flags = chatws::fuzz::take_u32(data, size, 1);
  const int64_t id = chatws::fuzz::take_u32(data, size, 4);
  const int64_t time_ms = static_cast<int64_t>(chatws::fuzz::take_u32(data, size, 4)) * 1000;
  const std::string_view payload(reinterpret_cast<const char*>(data), size);

  const WireFormat format = (flags & 1) ? WireFormat::V1 : WireFormat::Classic;
  TextLimits limits;  // the defaults, or small ones that the fuzzer can exceed
  if (flags & 2) limits = {1 + (flags >> 2) % 8, 1 + (flags >> 5) * 4};

  MessageParser parser(limits);
  std::string_view user, text;
  std::string error;
  if (parser.parse(payload, format, &user, &text, &error)) {
    check(error.empty());
    check(valid_utf8(user) && valid_utf8(text));
    check(!user.empty() && !text.empty());
    check(count_code_points(user) <= limits.max_user);
    check(count_code_points(text) <= limits.max_text);
    // The parser hands back the name as kept: it obeys the rule and is its
    // own trimmed form.
    auto kept = reference_name(user, limits.max_user);
    check(kept && *kept == code_points(user));
    std::string_view again = user;
    check(validate_fields(&again, text, limits).empty() && again == user);

    ChatMessage m{id, std::string(user), std::string(text), time_ms};
    ChatMessage older{id / 2, std::string(text), std::string(user), time_ms / 2};
    const RoomPathResult room = room_from_path(m.user);
    if (room.status == 0) check(is_valid_room_name(room.room));
    check_outgoing(m, older, room.status == 0 ? std::string_view(room.room) : "lobby");
  } else {
    check(!error.empty() && valid_utf8(error));
    check_error(format, error);
  }

  // Any valid UTF-8 survives the escaper (as an error reason, here).
  if (valid_utf8(payload)) {
    check_error(WireFormat::Classic, payload);
    check_error(WireFormat::V1, payload);
  }
  // validate_fields on raw bytes: accepts exactly valid, non-empty, short
  // enough strings whose first is a valid name, and keeps the name as the
  // rule trims it.
  const std::string_view a = payload.substr(0, payload.size() / 2);
  const std::string_view b = payload.substr(payload.size() / 2);
  std::optional<std::vector<uint32_t>> name;
  if (valid_utf8(a)) name = reference_name(a, limits.max_user);
  const bool ok = name && valid_utf8(b) && !b.empty() && count_code_points(b) <= limits.max_text;
  std::string_view kept = a;
  check(validate_fields(&kept, b, limits).empty() == ok);
  if (ok) check(code_points(kept) == *name);
  return 0;
}
