// The room log seam (DESIGN.md, "Cluster"): what the chat needs of a
// history shared by several nodes. Append a room's messages, read a room's
// entries (the last N, or those after a position), and hear that a room got
// new entries. Positions are per room, 1, 2, 3 ... (the chatws.v1 message
// ids), assigned by the log, so every node sees one order.
//
// Two implementations, one path in the chat (ChatService::commit and the
// room loads):
//   RedisLog (redis_log.h, cluster mode): shared() by every node, which
//     deliver an entry only once they read it back, in position order.
//     Asynchronous: every call answers through its callback, on the loop
//     thread, later; only a failure known at once (the log is down) may be
//     answered from inside the call (or the flush() that sends it). A
//     callback is dropped only when the log is stopped.
//   SqliteLog (sqlite_log.h, a single node with history_path): this
//     node's alone, so not shared(): the chat numbers the messages itself,
//     delivers what it appended as soon as it is stored (commit, then
//     deliver, within one iteration), and every call answers within it
//     (append's at the flush() that writes it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/message.h"

namespace chatws::chat {

class RoomLog {
 public:
  virtual ~RoomLog() = default;

  // Written by other nodes too (see above).
  virtual bool shared() const = 0;

  // Stored: `ids` are the positions given to the messages, in order.
  // Refused: not stored (the log was down, or refused it; why says so).
  // Unknown: the reply was lost with the connection: the append may or may
  // not have run. Its keys tell, when the room is read again.
  enum class Outcome { Stored, Refused, Unknown };
  using AppendDone = std::function<void(Outcome outcome, std::vector<int64_t> ids, std::string_view why)>;
  // Entries oldest first, with the key each was appended with ("" if
  // none); ok = false: not read (why says so).
  using ReadDone = std::function<void(bool ok, std::vector<ChatMessage> msgs,
                                      std::vector<std::string> keys, std::string_view why)>;

  // Queues the append of `msgs` to `room`, each with its key (unique to the
  // message: the node's name and a counter); appends queued in one loop
  // iteration go out together at flush(). A shared log gives the positions
  // (msgs' ids ignored); one that is not stores the ids given.
  virtual void append(const std::string& room, std::vector<ChatMessage> msgs,
                      std::vector<std::string> keys, AppendDone done) = 0;
  // Sends what was queued (one round trip, or one transaction, for all of it).
  virtual void flush() = 0;
  // The last `n` entries of `room`.
  virtual void read_last(const std::string& room, size_t n, ReadDone done) = 0;
  // Up to `max` entries after position `after`.
  virtual void read_after(const std::string& room, int64_t after, size_t max, ReadDone done) = 0;
  // A shared log: the last position given in `room` (0: none yet), so that a
  // node can tell the positions went back (the log lost its data). A log that
  // is not shared answers false.
  using PositionDone = std::function<void(bool ok, int64_t last)>;
  virtual void read_position(const std::string& /*room*/, PositionDone done) { done(false, 0); }

  // For max_rooms (a log that is not shared: the rooms it keeps count):
  // whether `room` has entries (false: the query failed, *error says why),
  // and how many rooms had entries when the log was opened.
  virtual bool has_room(std::string_view /*room*/, bool* out, std::string* /*error*/) {
    *out = false;
    return true;
  }
  virtual size_t rooms_at_open() const { return 0; }

  // A room got entries (from any node), up to position `last` (0: not
  // known). May come more than once per entry, or for entries already
  // read: a hint to read, never the data.
  virtual void on_appended(std::function<void(std::string_view room, int64_t last)> fn) = 0;
  // Presence across nodes: this node has `count` members in `room` (0: none).
  // The log sums the counts of the nodes alive (whose heartbeat is recent)
  // and tells every node the total (on_presence).
  virtual void set_presence(const std::string& room, uint32_t count) = 0;
  virtual void on_presence(std::function<void(std::string_view room, uint32_t total)> fn) = 0;
  // This node has taken `room`'s entries up to `position` (-1: it no longer
  // reads the room). A shared log keeps what a live node has not taken yet,
  // beyond its retention (up to a bound), so a burst or a slow read loses
  // nothing; a log that is not shared ignores it.
  virtual void set_read_position(const std::string& room, int64_t position) = 0;
  // Every few seconds: the node is alive; the chat sets its presence again
  // (so that a crashed node's members drop out of the totals).
  virtual void on_heartbeat(std::function<void()> fn) = 0;

  // The log became usable (true: also after a reconnect, when notifications
  // may have been missed) or unusable (false).
  virtual void on_state(std::function<void(bool up)> fn) = 0;
  virtual bool up() const = 0;
  // Closes the log's connections: no callback after it.
  virtual void stop() = 0;
  // Round trips (writes of queued commands), commands and failures so far.
  virtual uint64_t round_trips() const = 0;
  virtual uint64_t failures() const = 0;
};

}  // namespace chatws::chat
