#include "chat_codec.h"

namespace chatws::bench {

std::string chat_prefix(uint32_t conn_index) {
  std::string p = "{\"user\":\"lg";
  p += std::to_string(conn_index);
  p += "\",\"text\":\"";
  return p;
}

ChatEvent parse_chat_event(std::string_view json, std::string_view* text) {
  // The server always puts "type" first; relying on that keeps the hello
  // (whose history entries also carry "text") from being taken for a msg.
  constexpr std::string_view kType = "{\"type\":\"";
  if (json.substr(0, kType.size()) != kType) return ChatEvent::Bad;
  std::string_view rest = json.substr(kType.size());
  const size_t type_end = rest.find('"');
  if (type_end == std::string_view::npos) return ChatEvent::Bad;
  const std::string_view type = rest.substr(0, type_end);
  if (type == "hello" || type == "join" || type == "leave") return ChatEvent::Ignored;
  if (type != "msg") return ChatEvent::Bad;

  rest = rest.substr(type_end + 1);
  constexpr std::string_view kText = "\"text\":\"";
  const size_t at = rest.find(kText);
  if (at == std::string_view::npos) return ChatEvent::Bad;
  rest = rest.substr(at + kText.size());
  const size_t close = rest.find('"');
  if (close == std::string_view::npos) return ChatEvent::Bad;
  const std::string_view t = rest.substr(0, close);
  if (t.find('\\') != std::string_view::npos) return ChatEvent::Bad;
  *text = t;
  return ChatEvent::Msg;
}

}  // namespace chatws::bench
