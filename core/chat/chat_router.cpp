#include "chat/chat_router.h"

namespace chatws::chat {

int ChatRouter::on_upgrade(std::string_view path, std::string_view subprotocol, std::string* reason) {
  if (chat_) {
    if (int st = chat_->on_upgrade(path, subprotocol, reason); st != 0) return st;
  }
  return host_ ? host_->on_upgrade(path, subprotocol, reason) : 0;
}

size_t ChatRouter::message_limit(std::string_view path, std::string_view subprotocol) {
  if (chat_ && chat_->is_chat(subprotocol)) return chat_->message_limit();
  return host_ ? host_->message_limit(path, subprotocol) : 0;
}

void ChatRouter::on_open(ConnId id) {
  if (is_chat_conn(id)) chat_->on_open(id);
  if (host_) host_->on_open(id);
}

void ChatRouter::on_message(ConnId id, protocol::Opcode op, const char* data, size_t len) {
  if (is_chat_conn(id)) {
    chat_->on_message(id, op, data, len);
  } else if (host_) {
    host_->on_message(id, op, data, len);
  }
}

void ChatRouter::on_close(ConnId id, uint16_t code, std::string_view reason) {
  // Not filtered by subprotocol: the chat ignores ids that are not its
  // members, whatever state the connection is in by now.
  if (chat_) chat_->on_close(id);
  if (host_) host_->on_close(id, code, reason);
}

void ChatRouter::on_drain(ConnId id) {
  if (is_chat_conn(id)) chat_->on_drain(id);
  if (host_) host_->on_drain(id);
}

void ChatRouter::on_iteration_end() {
  if (chat_) chat_->on_iteration_end();
  if (host_) host_->on_iteration_end();
}

}  // namespace chatws::chat
