// The room log seam (DESIGN.md, "Cluster"): what the chat needs of a
// history shared by several nodes. Append a room's messages, read a room's
// entries (the last N, or those after a position), and hear that a room got
// new entries. Positions are per room, 1, 2, 3 ... (the chatws.v1 message
// ids), assigned by the log, so every node sees one order.
//
// Asynchronous: every call answers through its callback, on the loop
// thread, later; only a failure known at once (the log is down) may be
// answered from inside the call (or the flush() that sends it). A callback
// is dropped only when the log is stopped.
//
// Implementations: RedisLog (redis_log.h, cluster mode). The single-node
// SQLite store (history_store.h) keeps its synchronous path in
// ChatService, commit-then-deliver within one iteration, which this seam
// would only make slower; moving it behind RoomLog is left for later.
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

  // The positions given to `msgs` (in order), or ok = false with the reason:
  // not known to be stored. (A reply lost with the connection says false
  // although the append may have run: see chat_service.h.)
  using AppendDone = std::function<void(bool ok, std::vector<int64_t> ids, std::string_view why)>;
  // Entries oldest first; ok = false: not read (why says so).
  using ReadDone = std::function<void(bool ok, std::vector<ChatMessage> msgs, std::string_view why)>;

  // Queues the append of `msgs` (ids ignored) to `room`; appends queued in
  // one loop iteration go out together at flush().
  virtual void append(const std::string& room, std::vector<ChatMessage> msgs, AppendDone done) = 0;
  // Sends what was queued (one round trip for all of it).
  virtual void flush() = 0;
  // The last `n` entries of `room`.
  virtual void read_last(const std::string& room, size_t n, ReadDone done) = 0;
  // Up to `max` entries after position `after`.
  virtual void read_after(const std::string& room, int64_t after, size_t max, ReadDone done) = 0;

  // A room got entries (from any node). May come more than once per entry,
  // or for entries already read: a hint to read, never the data.
  virtual void on_appended(std::function<void(std::string_view room)> fn) = 0;
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
