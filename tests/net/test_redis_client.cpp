// RedisClient against a real redis-server (tests/support/redis_process.h):
// the URL, the check at create, commands driven by the loop through
// Server::watch_fd, pub/sub, and reconnection when Redis is killed and
// restarted. The loop is polled on the test's thread in bounded loops.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "net/redis_client.h"
#include "support/redis_process.h"
#include "support/test_server.h"

using namespace chatws;
using namespace chatws::net;
using namespace chatws::test;

namespace {

class LogHandler : public RecordingHandler {
 public:
  void on_log(LogLevel, std::string_view m) override { logs.emplace_back(m); }
  std::vector<std::string> logs;
};

std::unique_ptr<Server> make_server(ServerHandler* h) {
  ServerConfig cfg;
  std::string err;
  int code = 0;
  return Server::create(cfg, h, &err, &code);
}

TEST(RedisUrl, Parses) {
  RedisUrl u;
  std::string err;
  ASSERT_TRUE(RedisUrl::parse("redis://127.0.0.1:6380/2", &u, &err)) << err;
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  EXPECT_TRUE(u.password.empty());
  ASSERT_TRUE(RedisUrl::parse("redis://:s3cret@localhost", &u, &err)) << err;
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.display(), "redis://:***@localhost:6379/0");  // never the password
  ASSERT_TRUE(RedisUrl::parse("redis://alice:pw@[::1]:7000/1", &u, &err)) << err;
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:/0",
                          "redis://h/x", "redis://:@h", "redis://[::1", "redis://h?x=1"}) {
    EXPECT_FALSE(RedisUrl::parse(bad, &u, &err)) << bad;
    EXPECT_NE(err.find("invalid Redis URL"), std::string::npos) << err;
  }
}

TEST(RedisClient, ProbeNamesTheUrlWhenRedisIsUnreachable) {
  RedisProcess redis;  // not started: nothing listens on its port
  RedisUrl u;
  ASSERT_TRUE(RedisUrl::parse(redis.url(), &u, nullptr));
  std::string err;
  EXPECT_FALSE(RedisClient::probe(u, 1000, &err));
  EXPECT_NE(err.find(u.display()), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
}

TEST(RedisClient, AuthIsCheckedAtProbeAndOnEveryConnection) {
  RedisProcess redis({"--requirepass", "pw1"});
  ASSERT_TRUE(redis.start());
  RedisUrl u;
  std::string err;
  ASSERT_TRUE(RedisUrl::parse("redis://:wrong@127.0.0.1:" + std::to_string(redis.port()), &u, &err));
  EXPECT_FALSE(RedisClient::probe(u, 1000, &err));
  EXPECT_NE(err.find("AUTH failed"), std::string::npos) << err;
  ASSERT_TRUE(RedisUrl::parse("redis://:pw1@127.0.0.1:" + std::to_string(redis.port()) + "/3", &u, &err));
  EXPECT_TRUE(RedisClient::probe(u, 1000, &err)) << err;

  LogHandler h;
  auto server = make_server(&h);
  RedisClient c(*server, u, "test", [&](LogLevel, std::string_view m) { h.logs.emplace_back(m); });
  ASSERT_TRUE(c.start(&err)) << err;
  ASSERT_TRUE(poll_until(*server, [&] { return c.up(); }));
  // SELECT 3 happened: the key lands in db 3.
  bool done = false;
  ASSERT_TRUE(c.command({"SET", "k", "v"}, [&](const redisReply*) {}));
  ASSERT_TRUE(c.command({"CLIENT", "INFO"}, [&](const redisReply* r) {
    ASSERT_NE(r, nullptr);
    EXPECT_NE(std::string(r->str, r->len).find("db=3"), std::string::npos);
    done = true;
  }));
  c.flush();
  ASSERT_TRUE(poll_until(*server, [&] { return done; }));
  c.stop();
}

TEST(RedisClient, CommandsRunOnTheLoopAndReconnectAfterRedisRestarts) {
  RedisProcess redis;
  ASSERT_TRUE(redis.start());
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  RedisUrl u;
  ASSERT_TRUE(RedisUrl::parse(redis.url(), &u, nullptr));
  std::vector<std::string> logs;
  RedisClient c(*server, u, "test", [&](LogLevel, std::string_view m) { logs.emplace_back(m); });
  std::vector<bool> states;
  c.on_state([&](bool up) { states.push_back(up); });
  EXPECT_FALSE(c.command({"PING"}, [](const redisReply*) {}));  // not up yet: refused
  std::string err;
  ASSERT_TRUE(c.start(&err)) << err;
  ASSERT_TRUE(poll_until(*server, [&] { return c.up(); }));
  ASSERT_EQ(states, std::vector<bool>{true});

  // A pipeline of 100 commands in one write; replies in order.
  std::vector<long long> got;
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(c.command({"INCR", "n"}, [&](const redisReply* r) {
      ASSERT_NE(r, nullptr);
      got.push_back(r->integer);
    }));
  const uint64_t writes = c.writes();
  c.flush();
  EXPECT_EQ(c.writes(), writes + 1);
  ASSERT_TRUE(poll_until(*server, [&] { return got.size() == 100; }));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[size_t(i)], i + 1);

  // Redis killed with a command in flight: its callback hears nullptr.
  bool lost = false;
  ASSERT_TRUE(c.command({"BLPOP", "never", "0"}, [&](const redisReply* r) { lost = r == nullptr; }));
  c.flush();
  redis.stop();
  ASSERT_TRUE(poll_until(*server, [&] { return !c.up(); }));
  EXPECT_TRUE(lost);
  EXPECT_EQ(states, (std::vector<bool>{true, false}));
  EXPECT_FALSE(c.command({"PING"}, [](const redisReply*) {}));
  // Back on the same port: the client reconnects by itself (backoff).
  ASSERT_TRUE(redis.start());
  ASSERT_TRUE(poll_until(*server, [&] { return c.up(); }));
  EXPECT_EQ(states, (std::vector<bool>{true, false, true}));
  bool pong = false;
  ASSERT_TRUE(c.command({"PING"}, [&](const redisReply* r) { pong = r && std::string(r->str) == "PONG"; }));
  ASSERT_TRUE(poll_until(*server, [&] { return pong; }));
  // One line for the outage, one for the recovery, through the log sink.
  size_t down = 0, again = 0;
  for (auto& l : logs) {
    down += l.find("unavailable") != std::string::npos;
    again += l.find("connected again") != std::string::npos;
  }
  EXPECT_EQ(down, 1u);
  EXPECT_EQ(again, 1u);
  c.stop();
  EXPECT_FALSE(c.up());
}

TEST(RedisClient, SubscriberGetsMessagesAgainAfterAReconnect) {
  RedisProcess redis;
  ASSERT_TRUE(redis.start());
  LogHandler h;
  auto server = make_server(&h);
  RedisUrl u;
  ASSERT_TRUE(RedisUrl::parse(redis.url(), &u, nullptr));
  RedisClient sub(*server, u, "sub", nullptr), pub(*server, u, "pub", nullptr);
  std::vector<std::string> heard;
  sub.on_message([&](std::string_view ch, std::string_view payload) {
    EXPECT_EQ(ch, "chan");
    heard.emplace_back(payload);
  });
  sub.subscribe("chan");
  std::string err;
  ASSERT_TRUE(sub.start(&err) && pub.start(&err)) << err;
  ASSERT_TRUE(poll_until(*server, [&] { return sub.up() && pub.up(); }));
  // Subscribed once PUBLISH reaches a subscriber.
  long long receivers = 0;
  auto publish = [&](const char* what) {
    receivers = -1;
    pub.command({"PUBLISH", "chan", what}, [&](const redisReply* r) { receivers = r ? r->integer : -2; });
    pub.flush();
    poll_until(*server, [&] { return receivers >= 0; });
  };
  ASSERT_TRUE(poll_until(*server, [&] {
    publish("probe");
    return receivers == 1;
  }, 50));
  // PUBLISH's reply can come before the subscriber has read the probe: wait
  // for it, so that it cannot arrive after the clear with "one".
  ASSERT_TRUE(poll_until(*server, [&] { return !heard.empty() && heard.back() == "probe"; }));
  heard.clear();
  publish("one");
  ASSERT_TRUE(poll_until(*server, [&] { return !heard.empty(); }));
  EXPECT_EQ(heard, std::vector<std::string>{"one"});
  redis.stop();
  ASSERT_TRUE(poll_until(*server, [&] { return !sub.up() && !pub.up(); }));
  ASSERT_TRUE(redis.start());
  ASSERT_TRUE(poll_until(*server, [&] { return sub.up() && pub.up(); }));
  ASSERT_TRUE(poll_until(*server, [&] {
    publish("two");
    return receivers == 1;
  }, 50));
  ASSERT_TRUE(poll_until(*server, [&] { return !heard.empty() && heard.back() == "two"; }));
  sub.stop();
  pub.stop();
}

}  // namespace

namespace {

// The library never raises SIGPIPE in its host (chatws.h): hiredis writes
// with write(2), so a write to a Redis that just died must not kill a host
// that kept SIGPIPE's default action (this test process).
TEST(RedisClient, WritingToADeadRedisRaisesNoSigpipe) {
  RedisProcess redis;
  ASSERT_TRUE(redis.start());
  LogHandler h;
  auto server = make_server(&h);
  RedisUrl u;
  ASSERT_TRUE(RedisUrl::parse(redis.url(), &u, nullptr));
  RedisClient c(*server, u, "test", nullptr);
  std::string err;
  ASSERT_TRUE(c.start(&err)) << err;
  ASSERT_TRUE(poll_until(*server, [&] { return c.up(); }));
  redis.stop();
  // Not polled since: the client still thinks it is up, and writes.
  std::string big(256 * 1024, 'x');
  int lost = 0;
  for (int i = 0; i < 4 && c.up(); ++i) {
    ASSERT_TRUE(c.command({"SET", "k", big}, [&](const redisReply* r) { lost += r == nullptr; }));
    c.flush();
  }
  ASSERT_TRUE(poll_until(*server, [&] { return !c.up(); }));
  EXPECT_GE(lost, 1);
  c.stop();
}

}  // namespace
