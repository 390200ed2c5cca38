// One Redis connection driven by a chatws loop: hiredis's asynchronous API
// with its adapter hooks (addRead/delRead/addWrite/delWrite/cleanup) mapped
// onto Server::watch_fd, so the connection's I/O runs on the loop thread and
// nothing ever blocks it. When Redis goes away the client reconnects with
// backoff (100 ms doubling to 5 s) on a timerfd watched the same way, and
// says so through on_state; each (re)connection is authenticated and has its
// database selected before it counts as up.
//
// Only connect_blocking() blocks (with a timeout): it is for the host's
// thread before the loop runs (create), to fail with a clear error when
// Redis is unreachable at start.
//
// Names are resolved with getaddrinfo when connecting (a blocking lookup for
// a host name that is not in /etc/hosts): use an address in cluster URLs.
//
// Loop thread only. The Server must outlive the client, or stop() must run
// while it is alive (the capi does so before destroying the server).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/server.h"

struct redisAsyncContext;
struct redisReply;

namespace chatws::net {

// redis://[[user]:password@]host[:port][/db]
struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string user;      // ACL user (Redis 6+); "" with a password: AUTH <password>
  std::string password;  // "": no AUTH
  int db = 0;
  // The URL without its password, for messages.
  std::string display() const;
  // false with *error on a malformed URL.
  static bool parse(std::string_view url, RedisUrl* out, std::string* error);
};

class RedisClient {
 public:
  using LogFn = std::function<void(LogLevel, std::string_view)>;
  // The reply, or nullptr when the connection was lost before it came (the
  // command may or may not have run).
  using ReplyFn = std::function<void(const redisReply* reply)>;

  RedisClient(Server& server, RedisUrl url, std::string name, LogFn log);
  ~RedisClient();  // stop()
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Connects with a timeout, authenticates, selects and PINGs, then closes:
  // the check at create. false with *error naming the URL.
  static bool probe(const RedisUrl& url, int timeout_ms, std::string* error);

  // Starts connecting (and reconnecting whenever the connection is lost).
  // false with *error if the timer cannot be set up.
  bool start(std::string* error);
  // Frees the connection (pending replies are dropped, their callbacks not
  // called) and the timer. Idempotent.
  void stop();

  // Called with true once a connection is up (authenticated, selected),
  // with false when it is lost. Loop thread.
  void on_state(std::function<void(bool up)> fn) { on_state_ = std::move(fn); }
  // Messages of a SUBSCRIBE made with subscribe(): channel, payload.
  void on_message(std::function<void(std::string_view, std::string_view)> fn) {
    on_message_ = std::move(fn);
  }

  bool up() const { return up_; }
  // Queues a command (written at the next write readiness or flush()).
  // false if the connection is not up (nothing queued, fn not called).
  bool command(const std::vector<std::string_view>& argv, ReplyFn fn);
  // SUBSCRIBE to `channel` (on every connection from now on): its messages
  // go to on_message. A subscribed connection takes no other command.
  void subscribe(std::string channel);
  // Writes what is queued now instead of at the next iteration.
  void flush();

  // Counters for stats.
  uint64_t commands() const { return commands_; }
  uint64_t writes() const { return writes_; }
  uint64_t failures() const { return failures_; }

 private:
  static void on_connect_cb(const redisAsyncContext* ac, int status);
  static void on_disconnect_cb(const redisAsyncContext* ac, int status);
  static void on_reply_cb(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_sub_cb(redisAsyncContext* ac, void* reply, void* privdata);
  static void ev_add_read(void* p);
  static void ev_del_read(void* p);
  static void ev_add_write(void* p);
  static void ev_del_write(void* p);
  static void ev_cleanup(void* p);

  void connect();
  void lost(std::string why);     // the context is gone (or going): schedule a retry
  void schedule_retry();
  void on_timer();
  void set_interest(bool read, bool write);
  void log(LogLevel level, std::string_view what);

  Server& server_;
  RedisUrl url_;
  std::string name_;  // for log lines: "cluster", "cluster subscriber"
  LogFn log_;
  std::function<void(bool)> on_state_;
  std::function<void(std::string_view, std::string_view)> on_message_;
  std::string channel_;  // subscribed to on every connection

  redisAsyncContext* ac_ = nullptr;
  uint64_t watch_ = 0;  // the connection's descriptor
  bool want_read_ = false, want_write_ = false;
  int timer_fd_ = -1;
  uint64_t timer_watch_ = 0;
  bool up_ = false;
  bool was_ready_ = false;  // up on this connection (on_state(false) owed when it goes)
  bool stopping_ = false;
  std::string pending_error_;  // why the attempt being freed failed, if we know better
  bool logged_down_ = false;  // one line per outage, not per attempt
  int backoff_ms_ = 0;
  int64_t connect_started_ms_ = 0;
  uint64_t commands_ = 0, writes_ = 0, failures_ = 0;
};

}  // namespace chatws::net
