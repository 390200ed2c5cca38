// Fuzz target: the chat message handler (core/chat): a client's JSON message
// is parsed and validated into an error or a normalised message, then the
// outgoing formats are encoded and parsed back with simdjson.
//
// Input: 1 byte flags (wire format, limits), 8 bytes of id/time, then the
// payload. Checks
//   - an accepted message has a user and a text that are valid UTF-8 (by the
//     reference decoder), non-empty and within the limits in code points;
//   - every outgoing payload (classic snapshot, v1 msg/hello/error/presence,
//     classic error) is valid JSON of the documented shape, gives back the
//     exact strings that went in, and never carries a raw U+2028/U+2029;
//   - the escaper round-trips any valid UTF-8 (the raw payload as a reason).
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

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
    check(validate_fields(user, text, limits).empty());

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
  // enough strings.
  const std::string_view a = payload.substr(0, payload.size() / 2);
  const std::string_view b = payload.substr(payload.size() / 2);
  const bool ok = valid_utf8(a) && valid_utf8(b) && !a.empty() && !b.empty() &&
                  count_code_points(a) <= limits.max_user &&
                  count_code_points(b) <= limits.max_text;
  check(validate_fields(a, b, limits).empty() == ok);
  return 0;
}
