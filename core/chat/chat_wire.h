// The chat wire formats: parsing and validation of what clients send, and
// encoding of what the server sends. Pure (no I/O).
//
// ---------------------------------------------------------------------------
// Rooms. The WebSocket URL path names the room: "/" is the default room
// (name ""), "/rooms/<name>" the room <name> (see room_path.h). A query
// string is ignored. Bad names are refused at the upgrade (400), other
// paths too (404).
//
// Classic format, subprotocol "json" (the original chat page, unchanged)
//   client -> server  {"user": "...", "text": "..."}
//   server -> client  on join, and after every new message in the room:
//                     {"msg": [{"user": "...", "text": "...", "time": <ms>}, ...]}
//                     the room's last N messages (default 50), NEWEST FIRST.
//   errors (to the sender only; the connection stays open):
//                     {"error": "<reason>"}
//
// Rich format, subprotocol "chatws.v1" (opt-in; used by the bundled page)
//   client -> server  {"user": "...", "text": "..."}
//                     an optional "type" must be "msg" (other types are
//                     reserved for later and answered with an error).
//   server -> client
//     on join, to the joiner only:
//       {"type":"hello","room":"<name>","you":<conn id>,"members":<n>,
//        "history":[{"id":<int>,"user":"...","text":"...","time":<ms>}, ...]}
//       history is the room's last N messages, OLDEST FIRST; members counts
//       every connection in the room (both formats), the joiner included.
//     after each new message, to everyone in the room (sender included):
//       {"type":"msg","id":<int>,"user":"...","text":"...","time":<ms>}
//     when another connection joins / leaves the room:
//       {"type":"join","members":<n>}   {"type":"leave","members":<n>}
//     errors, to the sender only (the connection stays open):
//       {"type":"error","error":"<reason>"}
//     when the server ran with the drop policy for slow readers and had to
//     drop messages for this client, once its backlog has drained:
//       {"type":"dropped","count":<n>}
//     (a classic client gets a fresh snapshot instead, which repairs it).
//   Message ids are per room, start at 1, increase by one per stored message
//   and survive restarts (they are stored with the history). A client that
//   reconnects can drop the hello entries it already has by id.
//
// Both formats
//   time     server time when the message was accepted, ms since the Unix epoch
//   user     1..max_user_length (default 64) Unicode code points
//   text     1..max_text_length (default 4096) Unicode code points
//   Unknown fields are ignored. Invalid JSON, a non-object, a missing or
//   non-string user/text, an empty or too long user/text and binary frames
//   are answered with an error to the sender; nothing is stored or sent to
//   anyone else and the connection stays open. A message larger than the
//   longest valid message could be (MessageParser::max_payload(), about
//   54 KB with the default limits) closes the connection with 1009, decided
//   from its frame headers before it is buffered. A message is sent to anyone only once it
//   is durably stored; if storing fails the sender gets the error
//   "storage unavailable" instead.
// ---------------------------------------------------------------------------
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "chat/history_ring.h"
#include "chat/message.h"

namespace chatws::chat {

inline constexpr std::string_view kClassicSubprotocol = "json";
inline constexpr std::string_view kV1Subprotocol = "chatws.v1";

enum class WireFormat : uint8_t { Classic, V1 };

struct TextLimits {
  size_t max_user = 64;    // code points
  size_t max_text = 4096;  // code points
};

// Checks user and text against the rules above (valid UTF-8, non-empty,
// at most the limit in code points). Returns "" if valid, else the reason.
std::string validate_fields(std::string_view user, std::string_view text, const TextLimits& limits);

// Number of code points in valid UTF-8.
size_t count_code_points(std::string_view s);

// Parses and validates one client text message. Keeps its buffers between
// calls (one parser per chat service, used on the loop thread only).
class MessageParser {
 public:
  explicit MessageParser(const TextLimits& limits);
  ~MessageParser();
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // On success returns true and sets *user / *text to views valid until the
  // next parse(). On failure returns false and sets *error.
  bool parse(std::string_view payload, WireFormat format, std::string_view* user,
             std::string_view* text, std::string* error);

  // The largest payload worth parsing: the longest valid message with every
  // character escaped, plus room for small unknown fields.
  size_t max_payload() const { return max_payload_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  TextLimits limits_;
  size_t max_payload_;
};

// ---- server -> client payloads (text frames) ----

// {"msg":[...]} with the ring's messages newest first.
std::string encode_classic_snapshot(const HistoryRing& history);
// {"error":"..."}
std::string encode_classic_error(std::string_view reason);

std::string encode_v1_hello(std::string_view room, uint64_t you, size_t members,
                            const HistoryRing& history);
std::string encode_v1_msg(const ChatMessage& m);
std::string encode_v1_presence(bool joined, size_t members);
std::string encode_v1_error(std::string_view reason);
// {"type":"dropped","count":<n>}: n messages were not delivered to this slow reader.
std::string encode_v1_dropped(uint64_t count);

inline std::string encode_error(WireFormat f, std::string_view reason) {
  return f == WireFormat::V1 ? encode_v1_error(reason) : encode_classic_error(reason);
}

}  // namespace chatws::chat
