// Which chat room a WebSocket request path names.
//
//   "/"               the default room, name ""
//   "/rooms/<name>"   room <name>: 1..64 characters of [A-Za-z0-9_.-]
//
// The query string ("?..." and anything after it) is ignored. Anything else
// is not a chat path (HTTP 404); "/rooms/" followed by an invalid name
// (empty, too long, another character, a further "/") is a bad request
// (HTTP 400). Names are case-sensitive and never percent-decoded: '%' is not
// a name character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chatws::chat {

constexpr size_t kMaxRoomNameLength = 64;

// True if `name` is a valid room name: "" (the default room) or 1..64
// characters of [A-Za-z0-9_.-].
bool is_valid_room_name(std::string_view name);

struct RoomPathResult {
  int status = 0;     // 0: ok, else the HTTP status to refuse with (400/404)
  std::string room;   // the room name when status == 0
  std::string reason; // why, when status != 0
};

RoomPathResult room_from_path(std::string_view path);

}  // namespace chatws::chat
