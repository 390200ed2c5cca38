// The load generator's side of the chat wire format "chatws.v1" (see
// core/chat/chat_wire.h), reduced to what a benchmark needs: wrap the usual
// ASCII payload as a chat message, and pull the text back out of the
// server's "msg" events. Deliberately independent of the server's own
// encoder and parser, so that the benchmark checks the real output. Cheap on
// purpose (no JSON parser): it runs once per delivery on the loadgen's core.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chatws::bench {

inline constexpr std::string_view kChatSubprotocol = "chatws.v1";
inline constexpr std::string_view kChatDefaultPath = "/rooms/bench";

// A chat message is chat_prefix(i) + <payload> + kChatSuffix; the payload is
// ASCII without '"' or '\\', so it needs no escaping.
std::string chat_prefix(uint32_t conn_index);  // {"user":"lg<i>","text":"
inline constexpr std::string_view kChatSuffix = "\"}";

enum class ChatEvent {
  Msg,      // {"type":"msg",...,"text":"..."}: *text is set
  Ignored,  // hello, join, leave: no delivery
  Bad,      // error, dropped, an unknown type or not the expected shape
};

// Classifies one server text message. For Msg, *text views into `json`. The
// text must be free of escapes (the loadgen never sends any); a backslash in
// it makes the event Bad rather than mis-measured.
ChatEvent parse_chat_event(std::string_view json, std::string_view* text);

}  // namespace chatws::bench
