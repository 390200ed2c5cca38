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
//   server -> client  on join, and after new messages in the room:
//                     {"msg": [{"user": "...", "text": "...", "time": <ms>}, ...]}
//                     the room's last N messages (default 50), NEWEST FIRST.
//                     One snapshot per loop iteration and room (messages
//                     that arrive together are in one snapshot, the
//                     latest), and a member still receiving an earlier one
//                     (its unsent output above half of max_output_buffer)
//                     gets the latest only once it has caught up. A
//                     snapshot carries as many of the newest messages as
//                     fit in max_output_buffer / 4 bytes as encoded (always
//                     the newest), so another client's messages (say, text
//                     of control characters, 1 byte stored and 6 sent) can
//                     never make an honest reader "too slow".
//   errors (to the sender only; the connection stays open):
//                     {"error": "<reason>"}
//
// Rich format, subprotocol "chatws.v1" (opt-in; used by the bundled page)
//   client -> server  {"user": "...", "text": "..."}
//                     an optional "type" must be "msg" (other types are
//                     reserved for later and answered with an error).
//   server -> client
//     on join, to the joiner only:
//       {"type":"hello","room":"<name>","you":<conn id>[,"identity":"<name>"],"members":<n>,
//        "history":[{"id":<int>,"user":"...","text":"...","time":<ms>}, ...]}
//       history is the room's last N messages, OLDEST FIRST (all of them: it
//       is sent once per join, and may exceed max_output_buffer, which does
//       not apply to a joiner's greeting); members counts every connection
//       in the room (both formats), the joiner included (in cluster mode on
//       every live node: see docs/cluster.md).
//     after each new message, to everyone in the room (sender included):
//       {"type":"msg","id":<int>,"user":"...","text":"...","time":<ms>}
//     when the room's member count changes because others joined / left:
//       {"type":"join","members":<n>}   {"type":"leave","members":<n>}
//       Coalesced: at most one per room and loop iteration, carrying the
//       count at the end of that iteration ("join" if it is higher than
//       the count this member last heard, "leave" if lower; nothing if it
//       is the same, e.g. one joined and one left). So a client reads the
//       count, not a frame per join: a crowd joining at once costs each
//       member a few frames, not one per joiner. The joiner hears only
//       changes after its hello. (Before 0.2.0 there was one frame per join
//       or leave; the types and fields are unchanged.)
//     errors, to the sender only (the connection stays open):
//       {"type":"error","error":"<reason>"}
//     when the server ran with the drop policy for slow readers and had to
//     drop messages for this client, once its backlog has drained, or (cluster
//     mode) the room's stream was trimmed before this node read n of its
//     messages (where the hole is, before the messages after it):
//       {"type":"dropped","count":<n>}
//     (a classic client gets a fresh snapshot instead, which repairs it).
//     recovery: a client that joins with ?since=<id> (the last id it has)
//       gets in its hello only the entries after it, and "since":<id>, if
//       the room still keeps them all (the last history_size messages);
//       otherwise "reset":true and the history as without since (never a
//       partial silent gap). since=0 asks for everything kept.
//   Message ids are per room, start at 1, increase by one per stored message
//   and survive restarts (they are stored with the history). A client that
//   reconnects can drop the hello entries it already has by id. In cluster
//   mode they are the positions in the room's Redis Stream, the same on
//   every node, so this holds across nodes too.
//
// Both formats
//   identity a connection whose upgrade the host's hook bound to an identity
//            (chatws_upgrade_answer.identity) posts under it: its messages
//            carry the identity as "user", whatever the client sent there
//            (the field must still be a valid name). Without one, the
//            client's "user" is used, as always.
//   time     server time when the message was accepted, ms since the Unix epoch
//   user     1..max_user_length (default 64) Unicode code points, after
//            trimming: surrounding Unicode whitespace (White_Space: space,
//            tab, newlines, NBSP, U+2000..U+200A, U+3000, ...) is removed and
//            the rest is what is stored and shown. Refused (error to the
//            sender), so that a name cannot look empty or like another one:
//              - blank: nothing left after trimming ("must not be blank");
//              - control characters: U+0000..U+001F (NUL, tab and newlines
//                inside a name included), U+007F..U+009F, U+2028, U+2029;
//              - bidirectional formatting: U+061C, U+200E, U+200F,
//                U+202A..U+202E (embeddings, overrides), U+2066..U+2069
//                (isolates);
//              - invisible characters: zero-width U+200B..U+200D, U+2060..
//                U+2064, U+FEFF, soft hyphen U+00AD, U+034F, U+180E,
//                U+206A..U+206F, tags U+E0000..U+E007F, and the blank-looking
//                Hangul fillers U+115F, U+1160, U+3164, U+FFA0 and U+2800.
//            Other characters (any script, emoji, variation selectors,
//            spaces inside a name) are accepted as sent.
//   text     1..max_text_length (default 4096) Unicode code points, kept
//            exactly as sent (newlines, tabs and any other character).
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
// the user-name rule, at most the limit in code points). *user is narrowed
// to the name as kept (trimmed; a view into the same bytes). Returns "" if
// valid, else the reason.
std::string validate_fields(std::string_view* user, std::string_view text, const TextLimits& limits);

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

// {"msg":[...]} with the ring's messages newest first: as many of the
// newest as fit in max_bytes (the whole payload), and always the newest.
std::string encode_classic_snapshot(const HistoryRing& history, size_t max_bytes = SIZE_MAX);
// {"error":"..."}
std::string encode_classic_error(std::string_view reason);

// {"type":"hello",...,"history":[...]} oldest first: the newest entries
// that fit in max_bytes (the whole payload), and always the newest. With
// `identity` (bound by the host's upgrade hook) the hello carries
// "identity":"<name>" after "you": the name every message of this client is
// posted under.
// Recovery (a client that joins with ?since=<id>): `since` >= 0 sends only
// the entries after it and says "since":<id>; `reset` sends the history as
// usual and says "reset":true (the entries after the client's id are not
// all kept, or the id is ahead of the room).
struct HelloRecovery {
  int64_t since = -1;  // -1: no recovery asked
  bool reset = false;
  int64_t asked = -1;  // the since the client asked for (kept when reset)
};
std::string encode_v1_hello(std::string_view room, uint64_t you, size_t members,
                            const HistoryRing& history, size_t max_bytes = SIZE_MAX,
                            const std::string* identity = nullptr, HelloRecovery recovery = {});
// The recovery a join with query string `query` asks for against `history`:
// `since` from a "since=<id>" parameter (digits; anything else: *error),
// checked against what the ring keeps.
HelloRecovery recovery_for(std::string_view query, const HistoryRing& history, std::string* error);
std::string encode_v1_msg(const ChatMessage& m);
std::string encode_v1_presence(bool joined, size_t members);
std::string encode_v1_error(std::string_view reason);
// {"type":"dropped","count":<n>}: n messages were not delivered to this slow reader.
std::string encode_v1_dropped(uint64_t count);

inline std::string encode_error(WireFormat f, std::string_view reason) {
  return f == WireFormat::V1 ? encode_v1_error(reason) : encode_classic_error(reason);
}

}  // namespace chatws::chat
