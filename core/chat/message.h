// One stored chat message, as kept in a room's history and in the store.
#pragma once

#include <cstdint>
#include <string>

namespace chatws::chat {

struct ChatMessage {
  int64_t id = 0;       // per room, 1, 2, 3 ... in acceptance order
  std::string user;     // valid UTF-8
  std::string text;     // valid UTF-8
  int64_t time_ms = 0;  // server time, ms since the Unix epoch
};

}  // namespace chatws::chat
