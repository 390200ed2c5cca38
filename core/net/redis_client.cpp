#include "net/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <memory>

#include "net/no_sigpipe.h"
#include "net/poller.h"

namespace chatws::net {

namespace {

constexpr int kBackoffFirstMs = 100;
constexpr int kBackoffMaxMs = 5000;
constexpr int kConnectTimeoutMs = 3000;

bool parse_int(std::string_view s, int lo, int hi, int* out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// hiredis writes with write(2): SIGPIPE is blocked on this thread around
// hiredis's writes (NoSigpipe).

std::string reply_error(const redisReply* r) {
  if (!r) return "connection lost";
  if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
  return {};
}

}  // namespace

// ------------------------------------------------------------------- URL

std::string RedisUrl::display() const {
  std::string s = "redis://";
  if (!user.empty() || !password.empty()) s += user + (password.empty() ? "@" : ":***@");
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ":" + std::to_string(port) + "/" + std::to_string(db);
  return s;
}

bool RedisUrl::parse(std::string_view url, RedisUrl* out, std::string* error) {
  auto fail = [&](const char* why) {
    if (error) *error = std::string("invalid Redis URL '") + std::string(url) + "': " + why +
                        " (expected redis://[:password@]host[:port][/db])";
    return false;
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return fail("it must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl u;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      u.user = std::string(userinfo.substr(0, colon));
      u.password = std::string(userinfo.substr(colon + 1));
    } else {
      u.password = std::string(userinfo);
    }
    if (u.password.empty()) return fail("empty password");
  }
  std::string_view hostport = rest, db;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    db = rest.substr(slash + 1);
  }
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return fail("unterminated [IPv6 address]");
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return fail("empty port");
    }
  } else if (size_t colon = hostport.find(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
    if (port.empty()) return fail("empty port");
  }
  if (host.empty()) return fail("no host");
  for (char c : host)
    if (c <= ' ' || c == '?' || c == '#' || c == '/' || c == '@') return fail("bad character in host");
  u.host = std::string(host);
  if (!port.empty() && !parse_int(port, 1, 65535, &u.port)) return fail("port must be 1..65535");
  if (!db.empty() && !parse_int(db, 0, 1 << 20, &u.db)) return fail("db must be a number");
  *out = std::move(u);
  return true;
}

// ----------------------------------------------------------------- probe

bool RedisClient::probe(const RedisUrl& url, int timeout_ms, std::string* error) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  std::unique_ptr<redisContext, void (*)(redisContext*)> c(
      redisConnectWithTimeout(url.host.c_str(), url.port, tv), redisFree);
  auto fail = [&](std::string why) {
    if (error) *error = "cannot use Redis at " + url.display() + ": " + why;
    return false;
  };
  if (!c) return fail("out of memory");
  if (c->err) return fail(c->errstr);
  redisSetTimeout(c.get(), tv);
  auto run = [&](std::vector<std::string> args, std::string* err) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), int(argv.size()), argv.data(), lens.data()));
    if (!r) {
      *err = c->errstr[0] ? c->errstr : "no reply";
      return false;
    }
    *err = reply_error(r);
    freeReplyObject(r);
    return err->empty();
  };
  std::string err;
  NoSigpipe guard;
  if (!url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    if (!run(auth, &err)) return fail("AUTH failed: " + err);
  }
  if (url.db != 0 && !run({"SELECT", std::to_string(url.db)}, &err)) return fail("SELECT failed: " + err);
  if (!run({"PING"}, &err)) return fail(err);
  return true;
}

// ---------------------------------------------------------------- client

RedisClient::RedisClient(Server& server, RedisUrl url, std::string name, LogFn log)
    : server_(server), url_(std::move(url)), name_(std::move(name)), log_(std::move(log)) {}

RedisClient::~RedisClient() { stop(); }

void RedisClient::log(LogLevel level, std::string_view what) {
  if (!log_) return;
  try {
    log_(level, name_ + ": " + std::string(what));
  } catch (...) {
  }
}

bool RedisClient::start(std::string* error) {
  if (timer_fd_ >= 0) return true;
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) {
    if (error) *error = std::string("timerfd: ") + std::strerror(errno);
    return false;
  }
  int rc = server_.watch_fd(timer_fd_, true, false, [this](bool, bool) { on_timer(); },
                            &timer_watch_, error);
  if (rc != kOk) {
    ::close(timer_fd_);
    timer_fd_ = -1;
    if (error && error->empty()) *error = "cannot watch the Redis timer";
    return false;
  }
  stopping_ = false;
  connect();
  return true;
}

void RedisClient::stop() {
  stopping_ = true;
  if (ac_) {
    redisAsyncContext* ac = ac_;
    redisAsyncFree(ac);  // cleanup hook: unwatches, ac_ = nullptr
    ac_ = nullptr;
  }
  if (watch_) server_.unwatch_fd(watch_);
  watch_ = 0;
  if (timer_watch_) server_.unwatch_fd(timer_watch_);
  timer_watch_ = 0;
  if (timer_fd_ >= 0) ::close(timer_fd_);
  timer_fd_ = -1;
  up_ = false;
}

void RedisClient::connect() {
  if (stopping_ || ac_) return;
  connect_started_ms_ = monotonic_ms();
  redisAsyncContext* ac = redisAsyncConnect(url_.host.c_str(), url_.port);
  if (!ac) {
    lost("out of memory");
    return;
  }
  if (ac->err) {
    std::string why = ac->errstr;
    redisAsyncFree(ac);
    lost(why);
    return;
  }
  ac_ = ac;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect_cb);
  redisAsyncSetDisconnectCallback(ac, on_disconnect_cb);
  // The connect completes at the first write readiness.
  set_interest(true, true);
  // Arm the connect timeout.
  itimerspec its{};
  its.it_value.tv_sec = kConnectTimeoutMs / 1000;
  its.it_value.tv_nsec = (kConnectTimeoutMs % 1000) * 1000000L;
  timerfd_settime(timer_fd_, 0, &its, nullptr);
  // AUTH and SELECT first, then a PING whose answer means up.
  auto setup = [this](std::vector<std::string> args, bool last) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* fn = new ReplyFn([this, last, what = args[0]](const redisReply* r) {
      std::string err = reply_error(r);
      if (!r) return;  // lost: the cleanup says so
      if (!err.empty()) {
        ++failures_;
        log(LogLevel::Error, what + " failed at " + url_.display() + ": " + err);
        if (ac_) redisAsyncDisconnect(ac_);
        return;
      }
      if (!last) return;
      up_ = was_ready_ = true;
      backoff_ms_ = 0;
      itimerspec off{};
      timerfd_settime(timer_fd_, 0, &off, nullptr);
      if (logged_down_) log(LogLevel::Info, "connected again to Redis at " + url_.display());
      logged_down_ = false;
      if (!channel_.empty()) {
        const char* sargv[] = {"SUBSCRIBE", channel_.c_str()};
        size_t slens[] = {9, channel_.size()};
        redisAsyncCommandArgv(ac_, on_sub_cb, this, 2, sargv, slens);
      }
      if (on_state_) on_state_(true);
    });
    if (redisAsyncCommandArgv(ac_, on_reply_cb, fn, int(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK)
      delete fn;
  };
  if (!url_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(url_.password);
    setup(auth, false);
  }
  if (url_.db != 0) setup({"SELECT", std::to_string(url_.db)}, false);
  setup({"PING"}, true);
}

void RedisClient::lost(std::string why) {
  const bool was_up = up_ || was_ready_;
  up_ = false;
  was_ready_ = false;
  ac_ = nullptr;
  if (stopping_) return;
  ++failures_;
  if (!logged_down_) {
    log(LogLevel::Warning, "Redis at " + url_.display() + " unavailable (" + why +
                               "); reconnecting with backoff");
    logged_down_ = true;
  }
  schedule_retry();
  if (was_up && on_state_) on_state_(false);
}

void RedisClient::schedule_retry() {
  backoff_ms_ = backoff_ms_ == 0 ? kBackoffFirstMs : std::min(kBackoffMaxMs, backoff_ms_ * 2);
  itimerspec its{};
  its.it_value.tv_sec = backoff_ms_ / 1000;
  its.it_value.tv_nsec = (backoff_ms_ % 1000) * 1000000L;
  if (timer_fd_ >= 0) timerfd_settime(timer_fd_, 0, &its, nullptr);
}

void RedisClient::on_timer() {
  uint64_t v;
  [[maybe_unused]] auto r = ::read(timer_fd_, &v, sizeof v);
  if (stopping_) return;
  if (!ac_) {
    connect();
    return;
  }
  if (!up_ && monotonic_ms() - connect_started_ms_ >= kConnectTimeoutMs) {
    // Not connected in time: give this attempt up (the cleanup schedules the next).
    redisAsyncContext* ac = ac_;
    pending_error_ = "connect timed out";
    redisAsyncFree(ac);
  }
}

void RedisClient::set_interest(bool read, bool write) {
  want_read_ = read;
  want_write_ = write;
  if (!ac_) return;
  if (watch_ == 0) {
    if (!read && !write) return;
    std::string err;
    redisAsyncContext* ac = ac_;
    int rc = server_.watch_fd(ac->c.fd, read, write, [this](bool r, bool w) {
      if (r && ac_) redisAsyncHandleRead(ac_);
      if (w && ac_) {
        NoSigpipe guard;
        redisAsyncHandleWrite(ac_);
      }
    }, &watch_, &err);
    if (rc != kOk) {
      log(LogLevel::Error, "cannot watch the Redis connection: " + err);
      watch_ = 0;
    }
    return;
  }
  server_.set_fd_interest(watch_, read, write);
}

bool RedisClient::command(const std::vector<std::string_view>& args, ReplyFn fn) {
  if (!up_ || !ac_) return false;
  const char* argv[64];
  size_t lens[64];
  std::vector<const char*> big_argv;
  std::vector<size_t> big_lens;
  const char** av = argv;
  size_t* al = lens;
  if (args.size() > 64) {
    big_argv.resize(args.size());
    big_lens.resize(args.size());
    av = big_argv.data();
    al = big_lens.data();
  }
  for (size_t i = 0; i < args.size(); ++i) {
    av[i] = args[i].data();
    al[i] = args[i].size();
  }
  auto* p = new ReplyFn(std::move(fn));
  if (redisAsyncCommandArgv(ac_, on_reply_cb, p, int(args.size()), av, al) != REDIS_OK) {
    delete p;
    return false;
  }
  ++commands_;
  return true;
}

void RedisClient::subscribe(std::string channel) {
  channel_ = std::move(channel);
  if (up_ && ac_) {
    const char* sargv[] = {"SUBSCRIBE", channel_.c_str()};
    size_t slens[] = {9, channel_.size()};
    redisAsyncCommandArgv(ac_, on_sub_cb, this, 2, sargv, slens);
  }
}

void RedisClient::flush() {
  if (!ac_ || !up_) return;
  if (sdslen(ac_->c.obuf) == 0) return;
  ++writes_;
  NoSigpipe guard;
  redisAsyncHandleWrite(ac_);
}

// ------------------------------------------------------ hiredis callbacks

// A failed connect or a lost connection: hiredis frees the context next,
// and the cleanup hook (which runs before these in a free) handles both.
void RedisClient::on_connect_cb(const redisAsyncContext*, int) {}
void RedisClient::on_disconnect_cb(const redisAsyncContext*, int) {}

void RedisClient::on_reply_cb(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<ReplyFn> fn(static_cast<ReplyFn*>(privdata));
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!fn || self->stopping_) return;
  // No reply: the context is being freed (the cleanup hook comes next and
  // says why); down from now on, for what the callback decides.
  if (!reply) self->up_ = false;
  // No exception may cross hiredis's C frames.
  try {
    (*fn)(static_cast<redisReply*>(reply));
  } catch (const std::exception& e) {
    self->log(LogLevel::Error, std::string("reply handler threw: ") + e.what());
  } catch (...) {
    self->log(LogLevel::Error, "reply handler threw");
  }
}

void RedisClient::on_sub_cb(redisAsyncContext* ac, void* reply, void* privdata) {
  (void)ac;
  auto* self = static_cast<RedisClient*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (!r || self->stopping_ || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  if (r->element[0]->type != REDIS_REPLY_STRING ||
      std::string_view(r->element[0]->str, r->element[0]->len) != "message")
    return;
  if (!self->on_message_) return;
  try {
    self->on_message_(std::string_view(r->element[1]->str, r->element[1]->len),
                      std::string_view(r->element[2]->str, r->element[2]->len));
  } catch (const std::exception& e) {
    self->log(LogLevel::Error, std::string("message handler threw: ") + e.what());
  } catch (...) {
    self->log(LogLevel::Error, "message handler threw");
  }
}

void RedisClient::ev_add_read(void* p) {
  auto* self = static_cast<RedisClient*>(p);
  self->set_interest(true, self->want_write_);
}
void RedisClient::ev_del_read(void* p) {
  auto* self = static_cast<RedisClient*>(p);
  self->set_interest(false, self->want_write_);
}
void RedisClient::ev_add_write(void* p) {
  auto* self = static_cast<RedisClient*>(p);
  self->set_interest(self->want_read_, true);
}
void RedisClient::ev_del_write(void* p) {
  auto* self = static_cast<RedisClient*>(p);
  self->set_interest(self->want_read_, false);
}

void RedisClient::ev_cleanup(void* p) {
  // The context is being freed (by hiredis after an error or a disconnect,
  // or by stop()): its descriptor leaves the loop, and a retry is due.
  auto* self = static_cast<RedisClient*>(p);
  if (self->watch_) self->server_.unwatch_fd(self->watch_);
  self->watch_ = 0;
  self->want_read_ = self->want_write_ = false;
  std::string why = self->pending_error_;
  self->pending_error_.clear();
  if (why.empty() && self->ac_ && self->ac_->err) why = self->ac_->errstr;
  if (why.empty()) why = "connection closed";
  self->lost(why);
}

}  // namespace chatws::net
