// Server::watch_fd: a descriptor of the handler's own served by the loop
// (what the Redis client of the cluster mode runs on). Real socketpairs;
// the loop polled on the test's thread, in bounded loops.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/test_server.h"

using namespace chatws;
using namespace chatws::test;

namespace {

class LogHandler : public RecordingHandler {
 public:
  void on_log(LogLevel level, std::string_view message) override {
    logs.emplace_back(level, std::string(message));
  }
  std::vector<std::pair<LogLevel, std::string>> logs;
};

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

std::unique_ptr<Server> make_server(ServerHandler* h) {
  ServerConfig cfg;
  std::string err;
  int code = 0;
  return Server::create(cfg, h, &err, &code);
}

TEST(FdWatch, ReadableRunsTheCallbackOnTheLoop) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p;
  std::string got;
  std::thread::id cb_thread;
  uint64_t id = 0;
  std::string err;
  ASSERT_EQ(server->watch_fd(p.fd[0], true, false, [&](bool r, bool w) {
    EXPECT_TRUE(r);
    EXPECT_FALSE(w);
    cb_thread = std::this_thread::get_id();
    char buf[64];
    ssize_t n;
    while ((n = ::read(p.fd[0], buf, sizeof buf)) > 0) got.append(buf, size_t(n));
  }, &id, &err), kOk) << err;
  EXPECT_GT(id, 0u);
  ASSERT_EQ(::write(p.fd[1], "hello", 5), 5);
  ASSERT_TRUE(poll_until(*server, [&] { return got == "hello"; }));
  EXPECT_EQ(cb_thread, std::this_thread::get_id());
  EXPECT_EQ(server->unwatch_fd(id), kOk);
  EXPECT_EQ(server->unwatch_fd(id), kENoConn);  // stale
  EXPECT_EQ(server->set_fd_interest(id, true, true), kENoConn);
}

TEST(FdWatch, WriteInterestAndNoInterest) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p;
  int writable = 0, readable = 0;
  uint64_t id = 0;
  ASSERT_EQ(server->watch_fd(p.fd[0], false, true, [&](bool r, bool w) {
    readable += r;
    writable += w;
  }, &id, nullptr), kOk);
  ASSERT_TRUE(poll_until(*server, [&] { return writable > 0; }));
  EXPECT_EQ(readable, 0);
  // Level-triggered: again on the next iteration while it stays writable.
  const int before = writable;
  server->poll(0);
  EXPECT_GT(writable, before);
  // No interest: out of the set, no callback even with input waiting.
  ASSERT_EQ(server->set_fd_interest(id, false, false), kOk);
  ASSERT_EQ(::write(p.fd[1], "x", 1), 1);
  const int w0 = writable, r0 = readable;
  for (int i = 0; i < 5; ++i) server->poll(0);
  EXPECT_EQ(writable, w0);
  EXPECT_EQ(readable, r0);
  // Read interest again: the waiting byte is reported.
  ASSERT_EQ(server->set_fd_interest(id, true, false), kOk);
  ASSERT_TRUE(poll_until(*server, [&] { return readable > 0; }));
  EXPECT_EQ(writable, w0);
  EXPECT_EQ(server->unwatch_fd(id), kOk);
}

TEST(FdWatch, CallbackMayUnwatchItselfAndThrowsAreLogged) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p, q;
  uint64_t self = 0, thrower = 0;
  int self_calls = 0, throw_calls = 0;
  ASSERT_EQ(server->watch_fd(p.fd[0], false, true, [&](bool, bool) {
    ++self_calls;
    EXPECT_EQ(server->unwatch_fd(self), kOk);
  }, &self, nullptr), kOk);
  ASSERT_EQ(server->watch_fd(q.fd[0], false, true, [&](bool, bool) {
    ++throw_calls;
    throw std::runtime_error("handler bug");
  }, &thrower, nullptr), kOk);
  EXPECT_NE(self, thrower);
  ASSERT_TRUE(poll_until(*server, [&] { return self_calls > 0 && throw_calls > 1; }));
  EXPECT_EQ(self_calls, 1);  // unwatched: never again
  bool logged = false;
  for (auto& [level, m] : h.logs)
    logged |= level == LogLevel::Error && m.find("handler bug") != std::string::npos;
  EXPECT_TRUE(logged);
  EXPECT_EQ(server->unwatch_fd(thrower), kOk);
}

TEST(FdWatch, HangupIsReportedForTheInterestAsked) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p;
  bool eof = false;
  uint64_t id = 0;
  ASSERT_EQ(server->watch_fd(p.fd[0], true, false, [&](bool r, bool) {
    char c;
    if (r && ::read(p.fd[0], &c, 1) == 0) eof = true;
  }, &id, nullptr), kOk);
  ::close(p.fd[1]);
  p.fd[1] = -1;
  ASSERT_TRUE(poll_until(*server, [&] { return eof; }));
  EXPECT_EQ(server->unwatch_fd(id), kOk);
}

TEST(FdWatch, BadArgumentsAndOtherThreads) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p;
  uint64_t id = 0;
  std::string err;
  EXPECT_EQ(server->watch_fd(-1, true, false, [](bool, bool) {}, &id, &err), kEInval);
  EXPECT_EQ(server->watch_fd(p.fd[0], true, false, nullptr, &id, &err), kEInval);
  // Not a descriptor epoll takes (a regular file is refused with EPERM).
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(server->watch_fd(fileno(f), true, false, [](bool, bool) {}, &id, &err), kESystem);
  EXPECT_NE(err.find("cannot watch"), std::string::npos);
  fclose(f);
  ASSERT_EQ(server->watch_fd(p.fd[0], true, false, [](bool, bool) {}, &id, &err), kOk);
  int rc_watch = 0, rc_set = 0, rc_unwatch = 0;
  std::thread other([&] {
    uint64_t other_id = 0;
    rc_watch = server->watch_fd(p.fd[1], true, false, [](bool, bool) {}, &other_id, nullptr);
    rc_set = server->set_fd_interest(id, false, true);
    rc_unwatch = server->unwatch_fd(id);
  });
  other.join();
  EXPECT_EQ(rc_watch, kEThread);
  EXPECT_EQ(rc_set, kEThread);
  EXPECT_EQ(rc_unwatch, kEThread);
  EXPECT_EQ(server->unwatch_fd(id), kOk);
}

TEST(FdWatch, ServerDestroyedWithAWatchLeftCallsNothing) {
  LogHandler h;
  auto server = make_server(&h);
  ASSERT_TRUE(server);
  Pair p;
  uint64_t id = 0;
  int calls = 0;
  ASSERT_EQ(server->watch_fd(p.fd[0], false, true, [&](bool, bool) { ++calls; }, &id, nullptr), kOk);
  server.reset();
  EXPECT_EQ(calls, 0);
}

}  // namespace
