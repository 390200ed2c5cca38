#include "chat/redis_log.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace chatws::chat {

namespace {

constexpr std::string_view kNotifyChannel = "chatws:notify";

// KEYS[1] stream, KEYS[2] seq, KEYS[3] read positions; ARGV[1] retention,
// ARGV[2] the most a live node may lag, ARGV[3] channel, ARGV[4] room,
// ARGV[5] node key prefix, then user, text, time, key per message. Returns
// the positions. (The heartbeat keys are not in KEYS: one Redis, not a
// Redis Cluster.)
constexpr std::string_view kAppendScript = R"lua(
local ids = {}
for i = 6, #ARGV, 4 do
  local n = redis.call('INCR', KEYS[2])
  redis.call('XADD', KEYS[1], n .. '-0',
             'u', ARGV[i], 't', ARGV[i + 1], 'm', ARGV[i + 2], 'k', ARGV[i + 3])
  ids[#ids + 1] = n
end
local last = ids[#ids]
-- Trimmed when the positions cross a hundred (Redis drops whole nodes of
-- 100 entries: more often frees nothing). The oldest position kept: the
-- retention's, or the first one a live node has not taken, but no further
-- back than the lag bound.
if math.floor(last / 100) ~= math.floor((ids[1] - 1) / 100) then
  local keep = last - tonumber(ARGV[1]) + 1
  local bound = last - tonumber(ARGV[2]) + 1
  local read = redis.call('HGETALL', KEYS[3])
  for i = 1, #read, 2 do
    local taken = tonumber(read[i + 1])
    if redis.call('EXISTS', ARGV[5] .. read[i]) == 0 or not taken then
      redis.call('HDEL', KEYS[3], read[i])
    elseif taken + 1 < keep then
      keep = math.max(taken + 1, bound)
    end
  end
  if keep > 1 then redis.call('XTRIM', KEYS[1], 'MINID', '~', keep .. '-0') end
end
redis.call('PUBLISH', ARGV[3], last .. ' ' .. ARGV[4])
return ids
)lua";

// KEYS[1] the room's presence hash; ARGV[1] node, ARGV[2] its count,
// ARGV[3] node key prefix, ARGV[4] heartbeat ttl ms, ARGV[5] channel,
// ARGV[6] room. Sums the counts of the nodes whose heartbeat lives (and
// forgets the others), publishes the total. (The heartbeat keys are not in
// KEYS: one Redis, not a Redis Cluster.)
constexpr std::string_view kPresenceScript = R"lua(
redis.call('SET', ARGV[3] .. ARGV[1], '1', 'PX', ARGV[4])
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local t = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[3] .. t[i]) == 1 then
    total = total + tonumber(t[i + 1])
  else
    redis.call('HDEL', KEYS[1], t[i])
  end
end
redis.call('PUBLISH', ARGV[5], 'p ' .. total .. ' ' .. ARGV[6])
return total
)lua";
constexpr std::string_view kNodeKeyPrefix = "chatws:node:";

std::string sha1_hex(std::string_view s) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha1(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", d[i]);
    hex += b;
  }
  return hex;
}

bool to_i64(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view str(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}

// One stream entry: [ "<n>-0", [field, value, ...] ].
bool parse_entry(const redisReply* e, ChatMessage* m, std::string* key) {
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2) return false;
  std::string_view id = str(e->element[0]);
  const size_t dash = id.find('-');
  if (dash == std::string_view::npos || !to_i64(id.substr(0, dash), &m->id)) return false;
  const redisReply* f = e->element[1];
  if (!f || f->type != REDIS_REPLY_ARRAY) return false;
  for (size_t i = 0; i + 1 < f->elements; i += 2) {
    std::string_view k = str(f->element[i]), v = str(f->element[i + 1]);
    if (k == "u") m->user.assign(v);
    else if (k == "t") m->text.assign(v);
    else if (k == "m") to_i64(v, &m->time_ms);
    else if (k == "k") key->assign(v);
  }
  return true;
}

}  // namespace

std::string RedisLog::stream_key(std::string_view room) {
  return "chatws:{" + std::string(room) + "}:log";
}
std::string RedisLog::seq_key(std::string_view room) {
  return "chatws:{" + std::string(room) + "}:seq";
}
std::string RedisLog::read_key(std::string_view room) {
  return "chatws:{" + std::string(room) + "}:read";
}

RedisLog::RedisLog(Server& server, net::RedisUrl url, std::string node_name, size_t retention,
                   net::RedisClient::LogFn log)
    : url_(url),
      retention_(retention ? retention : 1),
      cmd_(server, url, "cluster", log),
      sub_(server, url, "cluster subscriber", log),
      script_sha_(sha1_hex(kAppendScript)),
      server_(server),
      node_(std::move(node_name)) {}

RedisLog::~RedisLog() { stop(); }

void RedisLog::stop() {
  cmd_.stop();
  sub_.stop();
  if (timer_watch_) server_.unwatch_fd(timer_watch_);
  timer_watch_ = 0;
  if (timer_fd_ >= 0) ::close(timer_fd_);
  timer_fd_ = -1;
}

bool RedisLog::start_heartbeat(std::string* error) {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) {
    if (error) *error = std::string("timerfd: ") + std::strerror(errno);
    return false;
  }
  itimerspec its{};
  its.it_interval.tv_sec = kHeartbeatMs / 1000;
  its.it_interval.tv_nsec = (kHeartbeatMs % 1000) * 1000000L;
  its.it_value = its.it_interval;
  timerfd_settime(timer_fd_, 0, &its, nullptr);
  return server_.watch_fd(timer_fd_, true, false, [this](bool, bool) { heartbeat(); }, &timer_watch_,
                          error) == kOk;
}

void RedisLog::heartbeat() {
  uint64_t v;
  [[maybe_unused]] auto r = ::read(timer_fd_, &v, sizeof v);
  if (!cmd_.up()) return;
  const std::string key = std::string(kNodeKeyPrefix) + node_, ttl = std::to_string(kNodeTtlMs);
  cmd_.command({"SET", key, "1", "PX", ttl}, [](const redisReply*) {});
  if (on_heartbeat_) on_heartbeat_();  // the chat sets its rooms' presence again
}

void RedisLog::set_presence(const std::string& room, uint32_t count) {
  const std::string key = "chatws:{" + room + "}:presence", n = std::to_string(count),
                    ttl = std::to_string(kNodeTtlMs);
  cmd_.command({"EVAL", kPresenceScript, "1", key, node_, n, kNodeKeyPrefix, ttl, kNotifyChannel, room},
               count_failure());
}

net::RedisClient::ReplyFn RedisLog::count_failure() {
  return [this](const redisReply* r) {
    if (!r || r->type == REDIS_REPLY_ERROR) ++failures_;
  };
}

void RedisLog::set_read_position(const std::string& room, int64_t position) {
  const std::string key = read_key(room);
  if (position < 0) {
    cmd_.command({"HDEL", key, node_}, count_failure());
  } else {
    const std::string p = std::to_string(position);
    cmd_.command({"HSET", key, node_, p}, count_failure());
  }
}

std::unique_ptr<RedisLog> RedisLog::create(Server& server, const std::string& url_text,
                                           std::string node_name, size_t retention,
                                           net::RedisClient::LogFn log, std::string* error) {
  net::RedisUrl url;
  if (!net::RedisUrl::parse(url_text, &url, error)) return nullptr;
  if (!net::RedisClient::probe(url, 3000, error)) return nullptr;
  std::unique_ptr<RedisLog> l(new RedisLog(server, url, std::move(node_name), retention, log));
  auto* self = l.get();
  self->cmd_.on_state([self](bool up) {
    if (up) {
      // The script, before anything that uses it (one connection: in order).
      const std::string_view argv[] = {"SCRIPT", "LOAD", kAppendScript};
      self->cmd_.command({argv[0], argv[1], argv[2]}, [](const redisReply*) {});
    }
    self->state_changed();
  });
  self->sub_.on_state([self](bool) { self->state_changed(); });
  self->sub_.on_message([self](std::string_view, std::string_view payload) {
    if (payload.substr(0, 2) == "p ") {  // "p <total> <room>"
      std::string_view rest = payload.substr(2);
      int64_t total = 0;
      size_t sp = rest.find(' ');
      if (sp != std::string_view::npos && to_i64(rest.substr(0, sp), &total) && total >= 0 &&
          self->on_presence_)
        self->on_presence_(rest.substr(sp + 1), uint32_t(std::min<int64_t>(total, UINT32_MAX)));
      return;
    }
    // "<last position> <room>"; a payload without the position (another
    // version's) still names a room to read.
    int64_t last = 0;
    std::string_view room = payload;
    if (size_t sp = payload.find(' '); sp != std::string_view::npos && to_i64(payload.substr(0, sp), &last))
      room = payload.substr(sp + 1);
    else
      last = 0;
    if (self->on_appended_) self->on_appended_(room, last);
  });
  self->sub_.subscribe(std::string(kNotifyChannel));
  if (!self->cmd_.start(error) || !self->sub_.start(error) || !self->start_heartbeat(error))
    return nullptr;
  return l;
}

void RedisLog::state_changed() {
  const bool now = up();
  if (now == was_up_) return;
  was_up_ = now;
  if (on_state_) on_state_(now);
}

void RedisLog::append(const std::string& room, std::vector<ChatMessage> msgs,
                      std::vector<std::string> keys, AppendDone done) {
  keys.resize(msgs.size());
  queued_.push_back({room, std::move(msgs), std::move(keys), std::move(done)});
}

void RedisLog::flush() {
  if (!queued_.empty()) {
    std::vector<Queued> batch;
    batch.swap(queued_);
    const std::string keep = std::to_string(retention_),
                      lag = std::to_string(retention_ * kMaxLagRetentions);
    for (Queued& q : batch) {
      const std::string stream = stream_key(q.room), seq = seq_key(q.room), read = read_key(q.room);
      std::vector<std::string> own;  // times, kept alive for argv
      own.reserve(q.msgs.size());
      std::vector<std::string_view> argv = {"EVALSHA", script_sha_, "3", stream, seq, read, keep, lag,
                                            kNotifyChannel, q.room, kNodeKeyPrefix};
      for (const ChatMessage& m : q.msgs) {
        own.push_back(std::to_string(m.time_ms));
      }
      for (size_t i = 0; i < q.msgs.size(); ++i) {
        argv.push_back(q.msgs[i].user);
        argv.push_back(q.msgs[i].text);
        argv.push_back(own[i]);
        argv.push_back(q.keys[i]);
      }
      const size_t count = q.msgs.size();
      auto done = std::move(q.done);
      bool sent = cmd_.command(argv, [this, done, count](const redisReply* r) {
        if (!r) {
          ++failures_;
          done(Outcome::Unknown, {}, "connection to Redis lost before the reply");
          return;
        }
        if (r->type == REDIS_REPLY_ERROR) {
          ++failures_;
          std::string_view why(r->str, r->len);
          if (why.substr(0, 8) == "NOSCRIPT") {
            const std::string_view load[] = {"SCRIPT", "LOAD", kAppendScript};
            cmd_.command({load[0], load[1], load[2]}, [](const redisReply*) {});
          }
          done(Outcome::Refused, {}, why);
          return;
        }
        std::vector<int64_t> ids;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == count) {
          for (size_t i = 0; i < r->elements; ++i)
            ids.push_back(r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0);
        }
        if (ids.size() != count) {
          ++failures_;
          done(Outcome::Unknown, {}, "unexpected reply to the append");
          return;
        }
        done(Outcome::Stored, std::move(ids), {});
      });
      if (!sent) done(Outcome::Refused, {}, "Redis unavailable");
    }
  }
  cmd_.flush();
}

void RedisLog::read(std::vector<std::string> args, bool reverse, ReadDone done) {
  std::vector<std::string_view> argv(args.begin(), args.end());
  bool sent = cmd_.command(argv, [this, reverse, done](const redisReply* r) {
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      ++failures_;
      done(false, {}, {}, r && r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len)
                                                        : std::string_view("connection to Redis lost"));
      return;
    }
    std::vector<ChatMessage> msgs;
    std::vector<std::string> keys;
    msgs.reserve(r->elements);
    keys.reserve(r->elements);
    for (size_t i = 0; i < r->elements; ++i) {
      ChatMessage m;
      std::string key;
      if (!parse_entry(r->element[i], &m, &key)) continue;
      msgs.push_back(std::move(m));
      keys.push_back(std::move(key));
    }
    if (reverse) {
      std::reverse(msgs.begin(), msgs.end());
      std::reverse(keys.begin(), keys.end());
    }
    done(true, std::move(msgs), std::move(keys), {});
  });
  if (!sent) done(false, {}, {}, "Redis unavailable");
}

void RedisLog::read_last(const std::string& room, size_t n, ReadDone done) {
  read({"XREVRANGE", stream_key(room), "+", "-", "COUNT", std::to_string(n)}, true, std::move(done));
}

void RedisLog::read_after(const std::string& room, int64_t after, size_t max, ReadDone done) {
  read({"XRANGE", stream_key(room), after > 0 ? "(" + std::to_string(after) + "-0" : "-", "+",
        "COUNT", std::to_string(max)},
       false, std::move(done));
}

void RedisLog::read_position(const std::string& room, PositionDone done) {
  const std::string key = seq_key(room);
  bool sent = cmd_.command({"GET", key}, [this, done](const redisReply* r) {
    if (r && r->type == REDIS_REPLY_NIL) {
      done(true, 0);
      return;
    }
    long long last = 0;
    if (!r || r->type != REDIS_REPLY_STRING ||
        std::from_chars(r->str, r->str + r->len, last).ec != std::errc()) {
      ++failures_;
      done(false, 0);
      return;
    }
    done(true, last);
  });
  if (!sent) done(false, 0);
}

}  // namespace chatws::chat
