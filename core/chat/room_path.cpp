#include "chat/room_path.h"

namespace chatws::chat {

namespace {

constexpr std::string_view kRoomsPrefix = "/rooms/";

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

}  // namespace

bool is_valid_room_name(std::string_view name) {
  if (name.size() > kMaxRoomNameLength) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

RoomPathResult room_from_path(std::string_view path) {
  RoomPathResult r;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/") return r;  // default room ""
  if (path.substr(0, kRoomsPrefix.size()) != kRoomsPrefix) {
    r.status = 404;
    r.reason = "no chat room at this path; use / or /rooms/<name>";
    return r;
  }
  std::string_view name = path.substr(kRoomsPrefix.size());
  if (name.empty() || !is_valid_room_name(name)) {
    r.status = 400;
    r.reason = "invalid room name: use 1 to 64 characters of A-Z a-z 0-9 _ . -";
    return r;
  }
  r.room.assign(name);
  return r;
}

}  // namespace chatws::chat
