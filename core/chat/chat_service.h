// The built-in chat: rooms named by the WebSocket path, history (in memory,
// optionally durable in SQLite), the "json" and "chatws.v1" wire formats
// (documented in chat_wire.h), moderation and host posts.
//
// A ServerHandler drives it: on_upgrade() for room-name validation, then
// on_open / on_message / on_close for connections whose subprotocol
// is_chat(), and on_iteration_end() once per loop iteration; ChatRouter
// (chat_router.h) is that handler. Every method runs on the loop thread (or
// while no loop runs).
//
// Durability before delivery: a valid message is given an id and queued;
// nothing is sent to anyone until the whole batch of the loop iteration is
// committed in one SQLite transaction in on_iteration_end() (or flush()).
// So any message a client has seen survives kill -9 of the process. If the
// commit fails, the batch is dropped, each sender gets
// {"error":"storage unavailable"} and the failure is logged to stderr; later
// messages keep being tried (the store may recover) and each failed one is
// answered the same way. Nothing is lost silently.
//
// Lifetime: the Server must outlive every call that sends (everything but
// the destructor). Call flush() before destroying the Server; the
// destructor only commits what is still pending to the store (no sends),
// so destroying the service after the server is safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/chat_wire.h"
#include "chat/history_ring.h"
#include "chat/history_store.h"
#include "server/server.h"

namespace chatws::chat {

struct ChatConfig {
  // SQLite file for durable history. "" or ":memory:": no SQLite at all,
  // history is kept in RAM only and lost when the service is destroyed.
  std::string history_path;
  uint32_t history_size = 50;      // messages kept and sent per room; 0: default
  uint32_t max_user_length = 64;   // code points; 0: default
  uint32_t max_text_length = 4096; // code points; 0: default
};

// A message as the moderator sees it. user/text may be rewritten; the
// rewrite is validated again like a client message.
struct ChatDraft {
  ConnId sender = 0;      // the client's connection
  std::string_view room;  // "" for the default room; room.data() is NUL-terminated
  std::string user;
  std::string text;
  int64_t time_ms = 0;
};

// Return true to accept the draft (as possibly rewritten), false to reject
// it: the sender gets *reason (or "message rejected" if left empty) as an
// error frame, nobody else sees the message and it is not stored.
using Moderator = std::function<bool(ChatDraft& draft, std::string* reason)>;

class ChatService {
 public:
  // Opens the store (when history_path names a file). Returns nullptr with
  // *error and *code = kEStorage when the database is corrupt, unwritable,
  // locked by another server or of a newer schema.
  static std::unique_ptr<ChatService> create(Server& server, const ChatConfig& cfg,
                                             std::string* error, int* code);
  ~ChatService();
  ChatService(const ChatService&) = delete;
  ChatService& operator=(const ChatService&) = delete;

  // True for the chat subprotocols, "json" and "chatws.v1".
  static bool is_chat_subprotocol(std::string_view subprotocol);
  bool is_chat(std::string_view subprotocol) const { return is_chat_subprotocol(subprotocol); }

  // For a chat subprotocol: 0 if `path` names a valid room, else 404/400 with
  // *reason. Other subprotocols are not the chat's business: 0.
  int on_upgrade(std::string_view path, std::string_view subprotocol, std::string* reason);

  // The longest message a chat connection may send (MessageParser::
  // max_payload(): no valid chat message is longer), for the server to
  // enforce at the frame level: a longer one is closed with 1009 before it
  // is buffered, instead of being held whole to be refused.
  size_t message_limit() const { return parser_.max_payload(); }

  void on_open(ConnId id);
  void on_message(ConnId id, protocol::Opcode op, const char* data, size_t len);
  void on_close(ConnId id);
  // The connection's output queue emptied after it was a slow reader: if
  // messages were dropped for it, tell it (v1) or resend the snapshot (classic).
  void on_drain(ConnId id);
  // Commits the iteration's batch, then delivers it.
  void on_iteration_end() { flush(); }

  // A message from the host to `room` ("" is the default room): validated
  // like a client message (not moderated), then committed and delivered
  // before returning. Returns kOk, kEInval (bad room name, user or text) or
  // kEStorage (not stored, not delivered).
  int post(std::string_view room, std::string_view user, std::string_view text);

  void set_moderator(Moderator m) { moderator_ = std::move(m); }

  // Commits every pending message and delivers them. kOk or kEStorage.
  int flush();

  // Introspection (loop thread).
  size_t member_count(std::string_view room) const;
  bool storage_failing() const { return store_failing_; }
  bool durable() const { return store_ != nullptr; }

 private:
  struct Member {
    ConnId id;
    WireFormat format;
  };
  struct Room {
    Room(std::string n, size_t cap) : name(std::move(n)), history(cap) {}
    std::string name;
    HistoryRing history;     // committed (delivered) messages only
    int64_t next_id = 1;     // id of the next accepted message
    size_t pending = 0;      // messages of this room in pending_ or ready_
    std::vector<Member> members;
    FrameRef snapshot;       // classic snapshot of `history`, encoded lazily
  };
  struct Conn {
    Room* room;
    WireFormat format;
    size_t index;            // position in room->members
    uint64_t dropped_told = 0;  // drops already reported to the client
  };
  struct Pending {
    Room* room;
    ConnId sender;
    ChatMessage msg;
  };

  ChatService(Server& server, const ChatConfig& cfg);

  Room* get_room(std::string_view name, std::string* error);
  void maybe_evict(Room* room);
  void evict_unused(std::vector<Room*>* rooms);
  void enqueue(Room* room, ConnId sender, std::string user, std::string text, int64_t time_ms);
  int commit();            // pending_ -> store -> ready_
  void deliver_ready();     // ready_ -> sockets
  void deliver(std::vector<Pending>& batch, std::vector<Room*>* touched);
  const FrameRef& snapshot_of(Room* room);
  void send_error(ConnId id, WireFormat f, std::string_view reason);
  void send_presence(Room* room, bool joined, ConnId except);

  Server& server_;
  ChatConfig cfg_;
  TextLimits limits_;
  MessageParser parser_;
  std::unique_ptr<HistoryStore> store_;
  bool store_failing_ = false;
  bool delivering_ = false;  // rooms must not be evicted while a batch is sent
  Moderator moderator_;
  std::unordered_map<std::string, std::unique_ptr<Room>> rooms_;
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<Pending> pending_;  // accepted, not yet committed
  std::vector<Pending> ready_;    // committed, not yet delivered
};

}  // namespace chatws::chat
