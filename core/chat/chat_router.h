// The ServerHandler of a server that hosts the built-in chat next to the
// host's own WebSocket traffic: it sends the connections whose negotiated
// subprotocol the ChatService accepts to the chat, and the rest to the host's
// handler. One class, so the C ABI and the tests route exactly alike.
//
// What each side sees:
//   on_upgrade        the chat first (it refuses bad room names for its own
//                     subprotocols); if it accepts, the host decides.
//   message_limit     the chat's bound for its subprotocols (no valid chat
//                     message is longer), else the host's.
//   on_open           every connection: the chat's first, then the host.
//   on_message        a chat connection's go to the chat only; others to the host.
//   on_close          every connection: the chat (which ignores ids it does
//                     not know), then the host.
//   on_drain          every connection: the chat's first, then the host.
//   on_iteration_end  the chat (commits and delivers its batch), then the host.
// The host sees every connection's lifecycle so that it can track all of
// them (user data, counts); only the messages of chat connections are not
// its business.
//
// Routing a message costs one subprotocol lookup (Server::subprotocol), so a
// chat connection never gets its ConnInfo built just to be routed.
//
// Loop thread only. attach() before the loop runs; the Server, the
// ChatService and the host handler must outlive every event they receive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/chat_service.h"
#include "server/server.h"

namespace chatws::chat {

class ChatRouter final : public ServerHandler {
 public:
  // `host` gets the events that are not the chat's; nullptr: nobody does.
  explicit ChatRouter(ServerHandler* host = nullptr) : host_(host) {}

  // Starts routing chat connections of `server` to `chat` (nullptr: none,
  // everything goes to the host). The Server is created with this router as
  // its handler before the ChatService can exist, hence the late binding.
  void attach(Server* server, ChatService* chat) {
    server_ = server;
    chat_ = server ? chat : nullptr;
  }
  void detach() { attach(nullptr, nullptr); }

  ChatService* chat() const { return chat_; }

  int on_upgrade(std::string_view path, std::string_view subprotocol, std::string* reason) override;
  // The host's upgrade hook, after the chat's own on_upgrade check passed.
  bool wants_upgrade_requests() const override { return host_ && host_->wants_upgrade_requests(); }
  void on_upgrade_request(const UpgradeRequest& r, UpgradeVerdict* v) override {
    if (host_) host_->on_upgrade_request(r, v);
  }
  size_t message_limit(std::string_view path, std::string_view subprotocol) override;
  void on_open(ConnId id) override;
  void on_message(ConnId id, protocol::Opcode op, const char* data, size_t len) override;
  void on_close(ConnId id, uint16_t code, std::string_view reason) override;
  void on_drain(ConnId id) override;
  void on_iteration_end() override;
  void collect_stats(AppStats* out) override {
    if (chat_) chat_->collect_stats(out);
    if (host_) host_->collect_stats(out);
  }
  void on_http_request(std::string_view path, HttpReply* reply) override {
    if (host_) host_->on_http_request(path, reply);
  }
  // Log lines are the host's.
  void on_log(LogLevel level, std::string_view message) override {
    if (host_) host_->on_log(level, message);
  }

 private:
  bool is_chat_conn(ConnId id) const {
    return chat_ && chat_->is_chat(server_->subprotocol(id));
  }

  ServerHandler* host_;
  Server* server_ = nullptr;
  ChatService* chat_ = nullptr;
};

}  // namespace chatws::chat
