// RoomLog on Redis (cluster mode): one Redis Stream per room is the order
// and the history of the room for every node.
//
// Keys (prefix "chatws:", the room in a hash tag so a Redis Cluster keeps a
// room's keys on one shard):
//   chatws:{<room>}:log   the stream; entry id "<n>-0" for position n,
//                         fields u (user), t (text), m (time, ms),
//                         k (node:counter, the append's unique key)
//   chatws:{<room>}:seq   the last position given (INCR)
//   chatws:{<room>}:presence  hash: node name -> its members in the room
//   chatws:{<room>}:read  hash: node name -> the last position it took
//   chatws:node:<name>    a node's heartbeat (PX 10 s, set every 3 s)
//   chatws:notify         pub/sub channel: "<last position> <room>" when a
//                         room got entries, "p <total> <room>" when its
//                         members across the live nodes were counted
//
// An append is one EVALSHA of a Lua script per room and loop iteration
// (atomic: INCR + XADD for each message, one trim, then one PUBLISH of the
// room's name), and all the rooms' scripts of an iteration go out in one
// write: one round trip per iteration, not per message.
//
// The trim (XTRIM MINID ~, when the positions cross a hundred: Redis frees
// whole nodes of 100 entries) keeps the last `retention` entries and every
// entry a live node (its heartbeat key exists) has not taken yet, as its
// :read field says, but never more than kMaxLagRetentions x `retention`
// entries behind the newest:
// so a burst larger than the retention, or a node reading slowly, loses
// nothing, and a node that stopped reading (dead: its field is dropped;
// stuck: the bound) cannot grow the stream without end. A node that finds
// entries trimmed before it read them says so to its members (ChatService).
//
// Reads are XRANGE / XREVRANGE on the same connection;
// notifications come on a second one (a subscribed connection takes no
// other command).
//
// Loop thread only; see RedisClient for the lifetime rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat/room_log.h"
#include "net/redis_client.h"

namespace chatws::chat {

class RedisLog final : public RoomLog {
 public:
  // Checks that Redis answers (blocking, with a timeout: before the loop
  // runs), then starts both connections. nullptr with *error naming the URL.
  bool shared() const override { return true; }
  static std::unique_ptr<RedisLog> create(Server& server, const std::string& url,
                                          std::string node_name, size_t retention,
                                          net::RedisClient::LogFn log, std::string* error);
  ~RedisLog() override;

  void append(const std::string& room, std::vector<ChatMessage> msgs, std::vector<std::string> keys,
              AppendDone done) override;
  void flush() override;
  void read_last(const std::string& room, size_t n, ReadDone done) override;
  void read_after(const std::string& room, int64_t after, size_t max, ReadDone done) override;
  void read_position(const std::string& room, PositionDone done) override;
  void on_appended(std::function<void(std::string_view room, int64_t last)> fn) override {
    on_appended_ = std::move(fn);
  }
  void on_state(std::function<void(bool up)> fn) override { on_state_ = std::move(fn); }
  void set_presence(const std::string& room, uint32_t count) override;
  void on_presence(std::function<void(std::string_view room, uint32_t total)> fn) override {
    on_presence_ = std::move(fn);
  }
  void on_heartbeat(std::function<void()> fn) override { on_heartbeat_ = std::move(fn); }
  void set_read_position(const std::string& room, int64_t position) override;

  // How far behind the newest entry a live node's position still holds the
  // trim, in multiples of the retention.
  static constexpr size_t kMaxLagRetentions = 64;

  static constexpr int kHeartbeatMs = 3000;
  static constexpr int kNodeTtlMs = 10000;  // a node silent this long counts no members
  bool up() const override { return cmd_.up() && sub_.up(); }
  uint64_t round_trips() const override { return cmd_.writes(); }
  uint64_t failures() const override { return cmd_.failures() + sub_.failures() + failures_; }

  // Stops both connections (no callback after it). Before the Server goes.
  void stop() override;

  static std::string stream_key(std::string_view room);
  static std::string seq_key(std::string_view room);
  static std::string read_key(std::string_view room);

 private:
  RedisLog(Server& server, net::RedisUrl url, std::string node_name, size_t retention,
           net::RedisClient::LogFn log);
  bool start_heartbeat(std::string* error);
  void heartbeat();
  void state_changed();
  void read(std::vector<std::string> argv, bool reverse, ReadDone done);
  // The reply callback of a command whose answer matters only as a failure.
  net::RedisClient::ReplyFn count_failure();

  struct Queued {
    std::string room;
    std::vector<ChatMessage> msgs;
    std::vector<std::string> keys;
    AppendDone done;
  };

  net::RedisUrl url_;
  size_t retention_;
  net::RedisClient cmd_, sub_;
  std::string script_sha_;
  std::vector<Queued> queued_;
  uint64_t failures_ = 0;
  bool was_up_ = false;
  std::function<void(std::string_view, int64_t)> on_appended_;
  std::function<void(std::string_view, uint32_t)> on_presence_;
  std::function<void()> on_heartbeat_;
  Server& server_;
  std::string node_;
  int timer_fd_ = -1;
  uint64_t timer_watch_ = 0;
  std::function<void(bool)> on_state_;
};

}  // namespace chatws::chat
