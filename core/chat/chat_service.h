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
// {"error":"storage unavailable"} and the failure goes to ChatConfig::log;
// later messages keep being tried (the store may recover) and each failed
// one is answered the same way. Nothing is lost silently.
//
// Files: chat_service.cpp (rooms, members, messages in, presence),
// chat_commit.cpp (the batch stored, then delivered), chat_cluster.cpp
// (cluster mode). History goes through the RoomLog seam (room_log.h):
// SqliteLog with history_path, RedisLog with cluster_url.
//
// Cluster mode (cluster_url): the same rule across nodes. A message is
// appended to its room's Redis Stream (the batch of an iteration in one
// round trip) and delivered to the members on every node, this one
// included, only once it is read back from the stream, in stream order:
// one order per room everywhere, and message ids are stream positions. A
// join waits for the room's history to be read before its greeting. While
// Redis is unreachable senders get "storage unavailable" and members stay
// connected; the node reconnects with backoff and reads every room with
// members from the last position it had, so nothing stored is missed or
// delivered twice. A reply lost with the connection is answered "storage
// unavailable" although the append may have run: such a message, if
// stored, is delivered to everyone (its sender too) after the reconnect,
// once. host post() is asynchronous there: kOk means queued while Redis
// was up, a later failure is logged.
//
// Lifetime: the Server must outlive every call that sends (everything but
// the destructor). Call flush() before destroying the Server; the
// destructor only commits what is still pending to the store (no sends),
// so destroying the service after the server is safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/chat_wire.h"
#include "chat/history_ring.h"
#include "chat/room_log.h"
#include "server/rate_limit.h"
#include "server/server.h"

namespace chatws::chat {

struct ChatConfig {
  // SQLite file for durable history. "" or ":memory:": no SQLite at all,
  // history is kept in RAM only and lost when the service is destroyed.
  std::string history_path;
  // Messages kept and sent per room; 0: default. Also the store's
  // retention: older messages are deleted from the file.
  uint32_t history_size = 50;
  uint32_t max_user_length = 64;   // code points; 0: default
  uint32_t max_text_length = 4096; // code points; 0: default
  // Rooms that may exist at once; 0: default. In memory: the rooms held
  // (with members, or idle with their history); a new room beyond it
  // drops the least recently used idle room, or is refused when every room
  // has members. With a store: the rooms stored in the file plus those in
  // use that have no message yet; a new room beyond it is refused (stored
  // history is never dropped to make room). Refused: 503 at the upgrade,
  // close 1013 if it got past that, kEFull from post().
  uint32_t max_rooms = 10000;
  // Memory for rooms nobody is in (their history, kept so a returning
  // member gets it), least recently used dropped beyond it; 0: default.
  // In memory their history is then gone; with a store it is reloaded.
  size_t max_idle_room_bytes = size_t{64} << 20;
  // Flood control (issue 12): each chat connection may post this many
  // messages a second, `message_burst` at once; 0: defaults (20/s, burst
  // 40); per_second kRateOff: no limit. Over it a message is not stored or
  // delivered, the sender gets the error "rate limited", and its input is
  // not read until the bucket has a token again (Server::pause_input): one
  // refusal per refill interval at most, the rest of a flood waits in TCP.
  static constexpr uint32_t kRateOff = UINT32_MAX;
  RateLimit rate{20, 40};
  // Where the service's log lines go (a store failure, a moderator that
  // threw): the host's log, never stderr of its own. Unset: nowhere. Called
  // on the loop thread, and from the destructor (so it must not need the
  // Server, which may be gone by then).
  std::function<void(LogLevel, std::string_view)> log;
  // Cluster mode (issue 16, chat_cluster.cpp): the rooms' order and history
  // are Redis Streams at this URL, redis://[[user]:password@]host[:port][/db],
  // shared by every node that names it; "": a single node. Excludes
  // history_path (kEInval). Redis must answer at create (kEStorage naming
  // the URL otherwise).
  std::string cluster_url;
  // This node's name in the keys of its appends; "": <hostname>:<pid>.
  std::string node_name;
  // Entries kept per room stream (approximate MAXLEN); 0: the larger of
  // history_size and 1000.
  size_t cluster_retention = 0;
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
  size_t room_count() const;  // what max_rooms counts
  size_t rooms_in_memory() const {
    Guard g(*this);
    return rooms_.size();
  }
  bool holds_room(std::string_view room) const {
    Guard g(*this);
    return rooms_.count(std::string(room)) != 0;
  }
  size_t idle_room_bytes() const { return idle_bytes_; }
  bool storage_failing() const { return store_failing_ || (log_ && !log_->up()); }
  bool durable() const { return log_ != nullptr; }
  bool clustered() const { return log_ && log_->shared(); }
  // Cluster mode: closes the Redis connections (no callback after it).
  // Must run while the Server is alive, before it is destroyed; the
  // destructor calls it too (for a Server that outlives the service).
  void stop_cluster();
  // The chat's part of the stats snapshot (loop thread, no allocation).
  void collect_stats(AppStats* out) const;

 private:
  // Several loops (Server::loop_count() > 1): the chat is one ordering
  // point for every room, this lock, held by every entry point (recursive:
  // the moderator may post). A room's messages are committed and fanned
  // out in the order they took it, whichever loop's thread does it. The
  // frames for another loop's members go to that loop's inbox (in that
  // order, by reference) and the loop sends them, before any frame it sends
  // itself, at its next chat entry or iteration end: so every member, on
  // any loop, gets a room's messages in one order. One loop: no lock.
  struct Guard {
    std::unique_lock<std::recursive_mutex> lock;
    explicit Guard(const ChatService& s) : lock(s.mu_, std::defer_lock) {
      if (s.loops_ > 1) lock.lock();
    }
  };
  // One loop's deliveries in order. Consecutive members of one frame (a
  // room's fan-out) share one reference to it, not one each: no atomic
  // count per member.
  struct Inbox {
    struct Delivery {
      ConnId to;
      uint32_t frame;         // index into frames
      bool snapshot = false;  // a classic snapshot: not sent to a member that is behind (send_snapshot)
    };
    std::vector<Delivery> deliveries;
    std::vector<FrameRef> frames;
    bool empty() const { return deliveries.empty(); }
  };
  // A frame (a text when `f` is empty) for connection `id`, in the chat's
  // order across loops (see Guard).
  void send_member(ConnId id, const FrameRef& f);
  void send_member_text(ConnId id, std::string_view text);
  void drain_inbox();  // this thread's loop's deliveries
  mutable std::recursive_mutex mu_;
  unsigned loops_ = 1;
  std::vector<Inbox> inbox_;  // by loop index, under mu_

  struct Member {
    ConnId id;
    WireFormat format;
    uint32_t told;           // v1: the member count this member last heard
    bool waiting = false;    // v1: its hello waits for a read of the log (recovery)
  };
  struct Room {
    Room(std::string n, size_t cap) : name(std::move(n)), history(cap) {}
    std::string name;
    HistoryRing history;     // committed (delivered) messages only
    int64_t next_id = 1;     // id of the next accepted message
    size_t pending = 0;      // messages of this room in pending_ or ready_
    std::vector<Member> members;
    FrameRef snapshot;       // classic snapshot of `history`, encoded lazily
    bool presence_due = false;  // in presence_due_: its count changed this iteration
    bool stored = false;        // with a store: the file holds messages of it
    bool idle = false;          // in idle_: no members, nothing pending
    size_t idle_bytes = 0;      // its memory, counted while idle
    std::list<Room*>::iterator idle_pos;
    // Cluster mode (chat_cluster.cpp).
    uint64_t serial = 0;      // names this Room object in the log's callbacks
    bool loaded = true;       // history read from the log: members greeted
    bool loading = false;     // its read_last in flight
    bool reading = false;     // a read_after in flight
    bool read_again = false;  // told of entries meanwhile (positions not known)
    bool checking = false;    // a read_position in flight (cluster_check_position)
    int64_t checked_ms = -kCheckEveryMs;  // when a notification behind ours last asked
    uint64_t reset_seq = 0;   // reads up to this op_seq_ began before the positions went back
    int64_t wanted = 0;       // the newest position told of (notifications, our appends)
    uint64_t tellings = 0;    // times `wanted` was told (or reset): a read knows whether it was meanwhile
    // A position told of (a notification, our append's reply): wanted, and
    // counted, so that a read in flight knows it may not have seen it.
    void tell(int64_t pos) {
      wanted = std::max(wanted, pos);
      ++tellings;
    }
    size_t appending = 0;     // our messages in appends not answered yet
    // Presence across nodes: the members of every live node, as last told
    // (counting `pushed` of ours), and whether our count is due to Redis.
    uint32_t cluster_total = 0;
    uint32_t pushed = 0;
    bool total_known = false;
    bool push_due = false;
    int64_t last_seen = 0;    // position of the newest entry taken
    int64_t reported = -1;    // the read position last sent to the log (-1: none)
    bool report_due = false;  // in report_due_: last_seen moved since
  };
  struct Conn {
    Room* room;
    WireFormat format;
    size_t index;            // position in room->members
    uint64_t dropped_told = 0;  // drops already reported to the client
    bool snapshot_stale = false;  // classic: skipped a snapshot while backlogged
    TokenBucket bucket{RateLimit{}, 0};  // filled at join (cfg_.rate)
  };
  struct Pending {
    Room* room;
    ConnId sender;
    ChatMessage msg;
    // Cluster: not a message but a notice, in its place in the room's
    // order: this many entries were trimmed from the stream before this
    // node read them (deliver() tells the members; msg is empty).
    uint64_t missed = 0;
  };

  ChatService(Server& server, const ChatConfig& cfg);
  static constexpr std::string_view kStorageUnavailable = "storage unavailable";
  static FrameRef text_frame(std::string_view payload);

  // The room, loaded or created; nullptr with *code kEFull (max_rooms) or
  // kEStorage and *error.
  Room* get_room(std::string_view name, std::string* error, int* code);
  bool room_admissible(const std::string& name);
  void activate(Room* room);
  void settle();  // unsettled_ rooms that are no longer in use turn idle or go
  void erase_room(Room* room);
  void enqueue(Room* room, ConnId sender, std::string user, std::string text, int64_t time_ms);
  bool local_store() const { return log_ && !log_->shared(); }
  int commit();            // pending_ -> store -> ready_
  // The batch's messages per room, in acceptance order, with their senders
  // (one append per room and iteration); `take` moves the messages out.
  struct RoomAppend {
    Room* room;
    std::vector<ChatMessage> msgs;
    std::vector<ConnId> senders;
  };
  static std::vector<RoomAppend> by_room(std::vector<Pending>& batch, bool take);
  // A single node's store (SqliteLog): appends and writes `batch`, all or
  // nothing; false with *why.
  bool store_local(std::vector<Pending>& batch, std::string* why);
  void deliver_ready();     // ready_ -> sockets
  void deliver(std::vector<Pending>& batch);
  const FrameRef& snapshot_of(Room* room);
  // A classic member's snapshot of `room`, unless the member is behind on
  // what it was sent: then nothing now and the latest at on_drain. Only
  // the member's own loop can tell, so for another loop's member the
  // question travels with the frame and is answered when that loop sends it.
  void send_snapshot(ConnId id, Room* room);
  // True (and the member marked for a snapshot at on_drain) if `id` is
  // behind on its output. On its loop's thread.
  bool defer_snapshot(ConnId id);
  void send_error(ConnId id, WireFormat f, std::string_view reason);
  void presence_changed(Room* room, bool after_iteration_end);
  void announce_presence();
  void greet(ConnId id, WireFormat fmt, Room* room);
  // Cluster: a v1 join whose since is older than the room's history but
  // within cluster_retention is greeted once the log has been read from
  // there (false: not possible, greet with a reset).
  bool recover_from_log(ConnId id, Room* room, int64_t since);
  // chat_cluster.cpp
  int start_cluster(std::string* error);  // kOk, or kEInval / kEStorage with *error
  void collect_cluster_stats(AppStats* out) const;
  int cluster_commit();          // pending_ -> the room log (replies come later)
  void cluster_load(Room* room);  // read_last, then greet the members
  void cluster_read(Room* room);  // read_after last_seen -> ready_
  void cluster_check_position(Room* room, int64_t told);  // did the positions go back?
  // Notifications behind a node's position are common under load (two
  // nodes' cross): they ask at most this often per room.
  static constexpr int64_t kCheckEveryMs = 1000;
  void on_log_appended(std::string_view room, int64_t last);
  void on_log_state(bool up);
  void on_log_presence(std::string_view room, uint32_t total);
  void push_presence();  // our counts of the rooms in presence_push_ -> the log
  void push_read_positions();  // last_seen of the rooms in report_due_ -> the log
  void read_moved(Room* room);   // lists the room in report_due_
  // Backpressure: a sender whose room this node has more messages of in
  // flight (accepted, appended, not yet read back) than it reads back in a
  // few round trips is not read for a moment (TCP holds it back), so that
  // the node's lag stays well inside what the stream keeps for it.
  void cluster_hold_back(Room* room, ConnId sender);
  // The members of `room` (as of the batch) hear that `n` entries are lost
  // to them; the history starts again after the hole (it stays contiguous).
  void report_missed(Room* room, uint64_t n, const std::vector<Member>& members);
  // The members the room's members are told of: every node's in cluster mode.
  uint32_t members_shown(const Room* room) const;
  // Messages whose append's reply was lost: stored or not is known when
  // their room is read again (their key is in it, or not), or they are
  // answered "storage unavailable" at the deadline.
  struct Uncertain {
    std::string room;
    std::string key;
    ConnId sender;
    uint64_t seq;         // op_seq_ when the reply was lost
    int64_t deadline_ms;  // steady clock
  };
  void settle_uncertain(const std::string& room, const std::vector<std::string>& keys, bool caught_up,
                        uint64_t read_seq);
  void expire_uncertain();
  Room* room_by_serial(const std::string& name, uint64_t serial) const;

  Server& server_;
  // A line to cfg_.log, built here: callers include destructors and
  // catch handlers, so nothing may throw out of it (not even the message's
  // allocation: out of memory, the line is lost).
  template <class... Parts>
  void log(LogLevel level, const Parts&... parts) const noexcept {
    if (!cfg_.log) return;
    try {
      std::string line = "chat: ";
      (append_part(line, parts), ...);
      cfg_.log(level, line);
    } catch (...) {
    }
  }
  static void append_part(std::string& s, std::string_view part) { s += part; }
  static void append_part(std::string& s, size_t n) { s += std::to_string(n); }
  ChatConfig cfg_;
  // A classic snapshot carries the newest history that fits in a quarter
  // of the output cap, so one always fits next to a backlog of half the cap.
  // (A v1 hello is sent once per join, never per message: it keeps the
  // whole last history_size, so a rejoining client can fill its gap.)
  size_t history_bytes_;
  TextLimits limits_;
  MessageParser parser_;
  // History: SqliteLog (a single node with history_path) or RedisLog
  // (cluster_url); none: in memory only.
  std::unique_ptr<RoomLog> log_;
  uint64_t next_serial_ = 1;
  std::string node_name_;         // cluster: in every append's key
  uint64_t next_key_ = 1;
  uint64_t op_seq_ = 0;           // orders lost replies and the reads after them
  std::vector<Uncertain> uncertain_;
  std::vector<std::string> presence_push_;  // rooms whose count is due to the log
  std::vector<std::string> report_due_;     // rooms whose read position is due to the log
  uint64_t missed_ = 0;  // entries trimmed before this node read them (cluster_missed)
  int64_t hold_back_limit_ = 0;  // cluster: see cluster_hold_back (0: not clustered)
  uint64_t uncertain_stored_ = 0, uncertain_refused_ = 0;
  bool store_failing_ = false;
  // Stats: plain fields, read by collect_stats() on the loop thread.
  uint64_t commits_ = 0;
  uint64_t commit_failures_ = 0;
  uint64_t committed_messages_ = 0;
  uint64_t deliveries_ = 0;  // message x member it was delivered to
  Histogram commit_duration_;
  bool delivering_ = false;  // sending a batch or presence: a re-entered flush only commits
  Moderator moderator_;
  std::unordered_map<std::string, std::unique_ptr<Room>> rooms_;
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<Pending> pending_;  // accepted, not yet committed
  std::vector<Pending> ready_;    // committed, not yet delivered
  std::vector<Room*> presence_due_;  // rooms whose member count changed since the last flush
  std::vector<Room*> unsettled_;  // rooms that may have fallen out of use since the last flush
  std::list<Room*> idle_;         // rooms nobody is in, most recently used first
  size_t idle_bytes_ = 0;
  size_t stored_rooms_ = 0;       // with a store: rooms the file holds
  size_t unstored_rooms_ = 0;     // with a store: rooms in memory the file does not hold
};

}  // namespace chatws::chat
