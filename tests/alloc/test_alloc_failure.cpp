// Allocation-failure injection across server iterations (issue 19 item 3).
//
// A replaced global operator new (this test binary only) counts the loop
// thread's allocations while armed and throws std::bad_alloc at the Nth
// one: once, or (the persistent mode) at that one and every later one
// until the poll returns, so that the clean-up paths run out of memory too. Each scenario builds a fresh server through the C ABI,
// brings it unarmed to the state before one step (accept and upgrade, an
// echo, a chat post broadcast to members, a join, a leave, a close, commands
// posted from another thread), then polls with the Nth allocation failing,
// for N = 1, 2, 3, ... until the step completes without an injected
// failure. After each failure it checks, with real clients on 127.0.0.1,
// that the server either keeps working (every client still open gets its
// echo or its chat message, exactly once; nothing is replayed or delivered
// twice; a new client can join and talk) or that a client it could not
// serve was closed cleanly (a close frame or EOF), and that no descriptor
// is left behind. Crashes and leaks show under ASan (scripts/sanitize.sh).
#include <gtest/gtest.h>

#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "chatws.h"
#include "support/descriptors.h"
#include "support/ws_client.h"

namespace {
// Armed only around chatws_server_poll on the test thread: the clients,
// which run on the same thread between polls, never see a failure.
thread_local bool t_armed = false;
thread_local long t_countdown = 0;   // the allocation that fails (1 = the next)
thread_local bool t_injected = false;
thread_local bool t_persistent = false;  // after the Nth, every armed allocation fails too
}  // namespace

// Every non-aligned form is replaced (simdjson uses new (std::nothrow)),
// so that under ASan each allocation and its release come from the same
// family (the aligned forms stay ASan's, both ways).
namespace {
void* counted_alloc(std::size_t n) noexcept {
  if (t_armed && (t_injected ? t_persistent : --t_countdown == 0)) {
    t_injected = true;
    return nullptr;
  }
  return std::malloc(n ? n : 1);
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using chatws::test::Frame;
using chatws::test::WsClient;
using chatws::protocol::Opcode;

namespace {

constexpr int kMaxN = 5000;  // bounds the N loop (a step allocates far fewer)

void echo(chatws_server* s, chatws_conn_id c, const char* d, size_t n, int binary, void*) {
  chatws_send(s, c, d, n, binary ? CHATWS_BINARY : CHATWS_TEXT);
}

// A client and everything the server sent it, read between polls.
// Bytes for the client to read: buffered, or on its socket.
bool has_input(WsClient& ws) {
  if (!ws.buffer().empty()) return true;
  if (!ws.ok()) return false;
  pollfd p{ws.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

struct Peer {
  std::unique_ptr<WsClient> ws = std::make_unique<WsClient>();
  std::vector<std::string> texts;  // text messages, in order
  bool closed = false;             // a close frame or EOF came
  uint16_t close_code = 0;

  // Reads what has arrived (without waiting for more).
  void drain() {
    while (!closed && ws->status() == 101 && has_input(*ws)) {
      auto f = ws->read_message(100);
      if (!f) {
        if (ws->error().find("timeout") == std::string::npos) closed = true;  // EOF, reset
        return;
      }
      if (f->op == Opcode::Close) {
        closed = true;
        close_code = f->close_code();
        return;
      }
      texts.push_back(f->payload);
    }
  }
  size_t count(const std::string& needle) const {
    size_t n = 0;
    for (const auto& t : texts) n += t.find(needle) != std::string::npos;
    return n;
  }
};

struct Fixture {
  chatws_server* s = nullptr;
  uint16_t port = 0;
  int last_rc = 0;
  std::map<std::string, Peer> peers;

  Fixture() {
    chatws_options o;
    chatws_options_init(&o);
    o.chat = 1;
    o.subprotocols = "chatws.v1,json,echo";
    o.on_message = echo;
    if (chatws_server_create(&o, &s) != CHATWS_OK) {
      ADD_FAILURE() << "create: " << chatws_last_error();
      return;
    }
    port = uint16_t(chatws_server_port(s));
  }
  ~Fixture() {
    peers.clear();  // clients first: the server's destroy need not wait for them
    chatws_server_destroy(s);
  }

  // One poll; while `armed`, the countdown (set by run_step) goes on
  // across polls, so the Nth allocation of the whole step fails.
  int poll(bool armed = false, int timeout_ms = 5) {
    t_armed = armed;
    const int rc = chatws_server_poll(s, timeout_ms);
    t_armed = false;
    last_rc = rc;
    return rc;
  }

  // Polls (unarmed) until done() or a bounded number of iterations pass.
  bool pump(const std::function<bool()>& done, int iterations = 400) {
    for (int i = 0; i < iterations; ++i) {
      for (auto& [name, p] : peers) p.drain();
      if (done()) return true;
      poll();
    }
    for (auto& [name, p] : peers) p.drain();
    return done();
  }
  // A few iterations that let anything still due (a replay, a duplicate)
  // show up.
  void settle() {
    for (int i = 0; i < 20; ++i) poll(false, 1);
    for (auto& [name, p] : peers) p.drain();
  }

  Peer& connect(const std::string& name, const std::string& path, const std::string& proto) {
    Peer& p = peers[name];
    EXPECT_TRUE(p.ws->open(port));
    EXPECT_TRUE(p.ws->send_handshake(path, proto));
    return p;
  }
  // Finishes the handshake if its answer came: 101, another status, or 0 (not yet).
  static int answered(Peer& p) {
    if (p.ws->status() != 0) return p.ws->status();
    if (!has_input(*p.ws)) return 0;
    const int st = p.ws->finish_handshake(100);
    return st > 0 ? st : (p.ws->error().find("timeout") == std::string::npos ? -1 : 0);
  }
  bool join(const std::string& name, const std::string& path, const std::string& proto) {
    Peer& p = connect(name, path, proto);
    if (!pump([&] { return answered(p) != 0; })) return false;
    if (p.ws->status() != 101) return false;
    if (proto == "chatws.v1" && !pump([&] { return p.count("\"hello\"") == 1; })) return false;
    return true;
  }
};

std::string chat_msg(const std::string& text) { return R"({"user":"u","text":")" + text + "\"}"; }

// A step: `act` starts it (the clients' side, unarmed), `done` says it is
// complete, `check` verifies the server after an injected failure.
struct Step {
  std::string name;
  std::function<bool(Fixture&)> setup;  // unarmed; false: the test fails
  std::function<void(Fixture&)> act;  // unarmed, except what it arms itself (arm())
  std::function<bool(Fixture&)> done;
  std::function<void(Fixture&, const std::string& where)> check;
};

// Every client still open talks: echo clients get their probe echoed
// once, chat members hear a probe post once; a new client can join the
// room and talk; each peer saw each payload at most once.
void check_working(Fixture& f, const std::string& where) {
  ASSERT_FALSE(chatws_server_stopped(f.s)) << where << ": stopped";
  int k = 0;
  for (auto& [name, p] : f.peers) {
    if (p.closed || p.ws->status() != 101) continue;
    const std::string probe = "probe-" + name + "-" + std::to_string(k++);
    if (p.ws->subprotocol() == "chatws.v1") {
      ASSERT_TRUE(p.ws->send_text(chat_msg(probe)));
      ASSERT_TRUE(f.pump([&] { return p.closed || p.count(probe) >= 1; })) << where << ": " << name
          << " never heard its own chat post (the chat stopped delivering)";
    } else {
      ASSERT_TRUE(p.ws->send_text(probe));
      ASSERT_TRUE(f.pump([&] { return p.closed || p.count(probe) >= 1; }))
          << where << ": " << name << " got no echo";
    }
  }
  // A newcomer joins the room and is heard by everyone in it.
  Peer& n = f.connect("zz-new", "/rooms/lobby", "chatws.v1");
  ASSERT_TRUE(f.pump([&] { return Fixture::answered(n) != 0; })) << where << ": no handshake answer";
  ASSERT_EQ(n.ws->status(), 101) << where;
  ASSERT_TRUE(f.pump([&] { return n.count("\"hello\"") == 1; })) << where << ": no hello";
  ASSERT_TRUE(n.ws->send_text(chat_msg("newcomer")));
  ASSERT_TRUE(f.pump([&] {
    for (auto& [name, p] : f.peers)
      if (!p.closed && p.ws->subprotocol() == "chatws.v1" && p.count("newcomer") == 0) return false;
    return true;
  })) << where << ": the room's members did not all hear the newcomer";
  f.settle();
  for (auto& [name, p] : f.peers) {
    std::map<std::string, int> seen;
    for (const auto& t : p.texts) {
      if (t.find("\"type\":\"join\"") != std::string::npos || t.find("\"type\":\"leave\"") != std::string::npos)
        continue;  // presence counts may repeat a number
      EXPECT_EQ(++seen[t], 1) << where << ": " << name << " got twice: " << t;
    }
  }
}

void run_step_mode(const Step& st, bool persistent) {
  t_persistent = persistent;
  const size_t fds_before = chatws::test::open_descriptors();
  int failures = 0;
  long n = 1;
  for (; n <= kMaxN; ++n) {
    const std::string where = st.name + " with allocation " + std::to_string(n) +
                              (persistent ? " and all after it failing" : " failing");
    bool injected = false;
    {
      Fixture f;
      ASSERT_TRUE(f.s);
      ASSERT_TRUE(st.setup(f)) << st.name << ": setup";
      t_injected = false;
      t_countdown = n;
      st.act(f);
      // Armed iterations until the step is done or the failure was injected
      // (then the rest runs unarmed).
      for (int i = 0; i < 400 && !t_injected; ++i) {
        for (auto& [name, p] : f.peers) p.drain();
        if (st.done(f)) break;
        f.poll(true);
      }
      injected = t_injected;
      t_injected = false;
      if (injected) {
        ++failures;
        // The poll that failed said so (ENOMEM), or the failure was handled
        // inside (a client closed); either way the server goes on.
        if (f.last_rc < 0) {
          EXPECT_EQ(f.last_rc, CHATWS_ENOMEM) << where << ": " << chatws_last_error();
        }
        st.check(f, where);
        if (::testing::Test::HasFatalFailure()) return;
      } else {
        ASSERT_TRUE(st.done(f)) << where << ": the step never completed";
      }
    }
    ASSERT_EQ(chatws::test::open_descriptors(), fds_before) << where << ": descriptors left open";
#if defined(__SANITIZE_ADDRESS__)
    // Under ASan, each case's leaks are told apart (LSan's report follows).
    ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0) << where << ": memory leaked";
#endif
    if (!injected) break;
  }
  ASSERT_LE(n, kMaxN) << st.name << ": still failing at " << kMaxN;
  std::printf("[ info     ] %s (%s): %d injected failures, completes with %ld allocations armed\n",
              st.name.c_str(), persistent ? "persistent" : "once", failures, n);
}

// Both modes: one failure, and every allocation after the Nth failing too,
// so that the clean-up paths run out of memory as well (this found
// PathTable::release allocating in a noexcept release, and a log line built
// in a destructor).
void run_step(const Step& st) {
  run_step_mode(st, false);
  if (::testing::Test::HasFatalFailure()) return;
  run_step_mode(st, true);
}

bool no_setup(Fixture&) { return true; }

// A client whose upgrade was under way when the failure came: upgraded
// (101 and its hello) or answered with an error status or closed, never
// left waiting.
void expect_upgraded_or_closed(Fixture& f, Peer& p, const std::string& where) {
  f.pump([&] {
    const int st = Fixture::answered(p);
    return p.closed || st < 0 || (st > 0 && st != 101) || (st == 101 && p.count("\"hello\"") == 1);
  });
  const int st = Fixture::answered(p);
  if (st == 101 && !p.closed) {
    EXPECT_EQ(p.count("\"hello\""), 1u) << where;
  } else if (st == 0 && !p.closed) {
    ADD_FAILURE() << where << ": the client was left waiting for an answer";
  }
  if (st != 101) p.closed = true;
}

bool chat_pair(Fixture& f) {
  return f.join("a", "/rooms/lobby", "chatws.v1") && f.join("b", "/rooms/lobby", "chatws.v1") &&
         f.pump([&] { return f.peers["a"].count("\"members\":2") >= 1; });
}

void check_chat_step(Fixture& f, const std::string& where, const std::string& text) {
  // The post reached each member once, or not at all (lost to the failure
  // with an error return): never twice.
  for (auto& [name, p] : f.peers) EXPECT_LE(p.count(text), 1u) << where << ": " << name;
  check_working(f, where);
}

TEST(AllocFailure, AcceptAndUpgrade) {
  run_step({"accept+upgrade", no_setup,
            [](Fixture& f) { f.connect("a", "/rooms/lobby", "chatws.v1"); },
            [](Fixture& f) {
              Peer& p = f.peers["a"];
              return Fixture::answered(p) == 101 && p.count("\"hello\"") == 1;
            },
            [](Fixture& f, const std::string& where) {
              expect_upgraded_or_closed(f, f.peers["a"], where);
              check_working(f, where);
            }});
}

TEST(AllocFailure, EchoMessage) {
  run_step({"echo", [](Fixture& f) { return f.join("e", "/", ""); },
            [](Fixture& f) { f.peers["e"].ws->send_text("hello-echo"); },
            [](Fixture& f) { return f.peers["e"].count("hello-echo") == 1; },
            [](Fixture& f, const std::string& where) {
              EXPECT_LE(f.peers["e"].count("hello-echo"), 1u) << where;
              check_working(f, where);
            }});
}

TEST(AllocFailure, ChatPostBroadcastToMembers) {
  run_step({"chat post", chat_pair, [](Fixture& f) { f.peers["a"].ws->send_text(chat_msg("first-post")); },
            [](Fixture& f) { return f.peers["b"].count("first-post") == 1 && f.peers["a"].count("first-post") == 1; },
            [](Fixture& f, const std::string& where) { check_chat_step(f, where, "first-post"); }});
}

TEST(AllocFailure, ChatHostPost) {
  // chatws_chat_post from the loop thread between polls is a call of its
  // own: the failure comes out of it, not out of a poll.
  run_step({"host post", chat_pair,
            [](Fixture& f) {
              t_armed = true;
              const int rc = chatws_chat_post(f.s, "lobby", "host", "host-post");
              t_armed = false;
              f.last_rc = rc;
            },
            [](Fixture& f) { return f.peers["b"].count("host-post") == 1; },
            [](Fixture& f, const std::string& where) { check_chat_step(f, where, "host-post"); }});
}

TEST(AllocFailure, JoinAndLeave) {
  run_step({"join", [](Fixture& f) { return f.join("a", "/rooms/lobby", "chatws.v1"); },
            [](Fixture& f) { f.connect("b", "/rooms/lobby", "chatws.v1"); },
            [](Fixture& f) {
              return Fixture::answered(f.peers["b"]) == 101 && f.peers["b"].count("\"hello\"") == 1 &&
                     f.peers["a"].count("\"members\":2") == 1;
            },
            [](Fixture& f, const std::string& where) {
              expect_upgraded_or_closed(f, f.peers["b"], where);
              check_working(f, where);
            }});
  run_step({"leave", chat_pair, [](Fixture& f) { f.peers["b"].ws->send_close(1000); },
            [](Fixture& f) { return f.peers["b"].closed && f.peers["a"].count("\"type\":\"leave\"") == 1; },
            [](Fixture& f, const std::string& where) {
              Peer& b = f.peers["b"];
              EXPECT_TRUE(f.pump([&] { return b.closed; })) << where << ": the leaver's close was not answered";
              check_working(f, where);
            }});
}

TEST(AllocFailure, AbruptClose) {
  run_step({"close", chat_pair,
            [](Fixture& f) {
              f.peers["b"].ws->close();
              f.peers["b"].closed = true;
            },
            [](Fixture& f) { return f.peers["a"].count("\"type\":\"leave\"") == 1; },
            [](Fixture& f, const std::string& where) { check_working(f, where); }});
}

TEST(AllocFailure, CommandsFromAnotherThread) {
  // Commands queued by another thread run as one batch in the next
  // iteration: a failure in the middle (the close's reason is the one
  // command that allocates with operator new; frames come from the frame
  // pool's malloc) must neither replay the batch nor lose the commands
  // after the failing one.
  static chatws_conn_id e_id = 0, f_id = 0;
  run_step({"commands",
            [](Fixture& f) {
              if (!f.join("e", "/", "") || !f.join("f", "/", "")) return false;
              chatws_conn_id ids[4];
              if (chatws_connections(f.s, ids, 4) != 2) return false;
              e_id = std::min(ids[0], ids[1]);  // e joined first
              f_id = std::max(ids[0], ids[1]);
              return true;
            },
            [](Fixture& f) {
              std::thread t([&] {
                auto send = [&](int i) {
                  const std::string m = "cmd-" + std::to_string(i);
                  chatws_send(f.s, e_id, m.data(), m.size(), CHATWS_TEXT);
                };
                send(0);
                send(1);
                chatws_close(f.s, f_id, 4000, "closed by the host from another thread");
                for (int i = 2; i < 6; ++i) send(i);
                chatws_broadcast(f.s, "cmd-all", 7, CHATWS_TEXT, 0);
              });
              t.join();
            },
            [](Fixture& f) { return f.peers["e"].count("cmd-all") == 1 && f.peers["f"].closed; },
            [](Fixture& f, const std::string& where) {
              Peer& e = f.peers["e"];
              f.pump([&] { return e.closed || e.count("cmd-all") == 1; }, 50);
              // In order, each at most once; none lost (the close failed).
              int last = -1, got = 0;
              for (const auto& t : e.texts) {
                if (t.rfind("cmd-", 0) != 0 || t == "cmd-all") continue;
                const int i = std::atoi(t.c_str() + 4);
                EXPECT_GT(i, last) << where << ": replayed or out of order: " << t;
                last = i;
                ++got;
              }
              if (!e.closed) {
                EXPECT_EQ(got, 6) << where << ": commands lost or replayed";
              }
              check_working(f, where);
            }});
}

}  // namespace
