// Several event loops in one server (ServerConfig::threads = 2), over real
// sockets on 127.0.0.1: connections spread over the loops (SO_REUSEPORT, or
// handed over by loop 0 to the loop with the fewest: AcceptMode::Handoff),
// ids unique and naming their loop, broadcasts from every loop at once
// delivered exactly once each, connections closing while a cross-loop
// broadcast is in flight, stop while busy, send/close from foreign threads,
// and create/run/stop/destroy cycles that leave no thread or descriptor.
// Run under TSan and ASan (label engine, scripts/sanitize.sh).
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/descriptors.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// The server is made before its loops run, so that the handler's pointer to
// it is set before any callback can read it.
struct Loops {
  explicit Loops(ServerHandler* h, ServerConfig cfg = {}) {
    cfg.threads = 2;
    std::string err;
    int code = 0;
    server = Server::create(cfg, h, &err, &code);
    EXPECT_TRUE(server) << err;
  }
  void run() {
    thread = std::thread([this] { run_rc = server->run(); });
  }
  ~Loops() { stop(); }
  void stop() {
    if (thread.joinable()) {
      server->stop();
      thread.join();
    }
  }
  std::unique_ptr<Server> server;
  std::thread thread;
  int run_rc = -100;
};

// Records which thread ran each connection's callbacks.
class ThreadNotingHandler : public RecordingHandler {
 public:
  void on_open(ConnId id) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      thread_of_[id] = std::this_thread::get_id();
    }
    RecordingHandler::on_open(id);
  }
  void on_message(ConnId id, Opcode op, const char* d, size_t n) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (thread_of_[id] != std::this_thread::get_id()) ++wrong_thread_;
    }
    RecordingHandler::on_message(id, op, d, n);
  }
  std::map<ConnId, std::thread::id> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return thread_of_;
  }
  int wrong_thread() {
    std::lock_guard<std::mutex> lock(mu_);
    return wrong_thread_;
  }

 private:
  std::mutex mu_;
  std::map<ConnId, std::thread::id> thread_of_;
  int wrong_thread_ = 0;
};

std::vector<std::unique_ptr<WsClient>> connect_all(uint16_t port, size_t n) {
  std::vector<std::unique_ptr<WsClient>> v;
  for (size_t i = 0; i < n; ++i) {
    v.push_back(std::make_unique<WsClient>());
    EXPECT_TRUE(v.back()->connect(port)) << v.back()->error();
  }
  return v;
}

// At least n clients, and more (bounded) until both loops have one: the
// kernel's hash may put a few connections all on one loop.
std::vector<std::unique_ptr<WsClient>> connect_spread(RecordingHandler& h, uint16_t port, size_t n) {
  auto v = connect_all(port, n);
  for (size_t extra = 0; extra < 64; ++extra) {
    EXPECT_TRUE(h.wait_count(Event::Open, v.size()));
    std::set<ConnId> loops;
    for (const Event& e : h.events())
      if (e.kind == Event::Open) loops.insert(e.id % 2);
    if (loops.size() == 2) break;
    v.push_back(std::make_unique<WsClient>());
    EXPECT_TRUE(v.back()->connect(port)) << v.back()->error();
  }
  return v;
}

size_t entries(const char* dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

// Opened ids in the order of their on_open.
std::vector<ConnId> opened(RecordingHandler& h) {
  std::vector<ConnId> ids;
  for (const Event& e : h.events())
    if (e.kind == Event::Open) ids.push_back(e.id);
  return ids;
}

}  // namespace

TEST(MultiLoop, ConnectionsLandOnEveryLoopWithUniqueIdsNamingTheirLoop) {
  ThreadNotingHandler h;
  Loops l(&h);
  ASSERT_EQ(l.server->loop_count(), 2u);
  l.run();
  // 32 connections: the kernel's hash puts all on one loop with
  // probability 2^-31.
  auto clients = connect_all(l.server->port(), 32);
  ASSERT_TRUE(h.wait_count(Event::Open, 32));
  auto threads = h.threads();
  ASSERT_EQ(threads.size(), 32u);  // 32 distinct ids
  std::map<ConnId, std::thread::id> loop_thread;  // id % 2 -> thread
  std::set<std::thread::id> distinct;
  for (auto& [id, t] : threads) {
    EXPECT_NE(id, 0u);
    auto [it, fresh] = loop_thread.emplace(id % 2, t);
    EXPECT_EQ(it->second, t) << "connection " << id << " ran on another loop's thread";
    distinct.insert(t);
  }
  EXPECT_EQ(loop_thread.size(), 2u) << "every connection landed on one loop";
  EXPECT_EQ(distinct.size(), 2u);
  EXPECT_EQ(l.server->connection_count(), 32u);
  // Each message handled on its connection's loop thread.
  for (auto& c : clients) ASSERT_TRUE(c->send_text("x"));
  ASSERT_TRUE(h.wait_count(Event::Message, 32));
  EXPECT_EQ(h.wrong_thread(), 0);
  // Stats: summed over the loops (published at each loop's iteration end).
  StatsSnapshot s;
  for (int i = 0; i < 500; ++i) {
    l.server->stats(&s);
    if (s.c.messages_in == 32 && s.websocket_connections == 32) break;
    l.server->wake();
    std::this_thread::yield();
    h.wait([](auto&) { return false; }, 2);
  }
  EXPECT_EQ(s.c.messages_in, 32u);
  EXPECT_EQ(s.websocket_connections, 32u);
  EXPECT_EQ(s.c.handshakes_accepted, 32u);
  // Ids never reused: new connections after closes get new ids.
  for (size_t i = 0; i < 8; ++i) clients[i]->close();
  ASSERT_TRUE(h.wait_count(Event::Close, 8));
  auto more = connect_all(l.server->port(), 8);
  ASSERT_TRUE(h.wait_count(Event::Open, 40));
  auto ids = opened(h);
  EXPECT_EQ(std::set<ConnId>(ids.begin(), ids.end()).size(), 40u);
}

TEST(MultiLoop, PollAndFdAreRefused) {
  RecordingHandler h;
  Loops l(&h);
  EXPECT_EQ(l.server->poll(0), kEState);
  EXPECT_EQ(l.server->fd(), kEState);
}

TEST(MultiLoop, BroadcastFromEveryLoopAtOnceReachesEveryClientExactlyOnceInSenderOrder) {
  RecordingHandler h;
  Loops l(&h);
  h.on_msg = [&](ConnId, Opcode op, const char* d, size_t n) {
    l.server->broadcast(op, std::string_view(d, n), 0);
  };
  l.run();
  constexpr size_t kEach = 60;
  auto clients = connect_spread(h, l.server->port(), 8);
  const size_t kClients = clients.size();
  ASSERT_TRUE(h.wait_count(Event::Open, kClients));
  std::set<ConnId> loops_used;
  for (ConnId id : opened(h)) loops_used.insert(id % 2);
  ASSERT_EQ(loops_used.size(), 2u);
  // Every client sends at once, from a thread each; every client reads all.
  std::vector<std::thread> senders;
  for (size_t i = 0; i < kClients; ++i)
    senders.emplace_back([&, i] {
      for (size_t k = 0; k < kEach; ++k)
        clients[i]->send_text("c" + std::to_string(i) + "-" + std::to_string(k));
    });
  std::vector<std::vector<std::string>> got(kClients);
  std::vector<std::thread> readers;
  for (size_t i = 0; i < kClients; ++i)
    readers.emplace_back([&, i] {
      for (size_t k = 0; k < kClients * kEach; ++k) got[i].push_back(clients[i]->read_text(10000));
    });
  for (auto& t : senders) t.join();
  for (auto& t : readers) t.join();
  for (size_t i = 0; i < kClients; ++i) {
    std::map<std::string, int> seen;
    std::map<size_t, size_t> next;  // sender -> next expected k
    for (const std::string& m : got[i]) {
      ++seen[m];
      ASSERT_EQ(m[0], 'c') << m;
      const size_t dash = m.find('-');
      const size_t from = std::stoul(m.substr(1, dash - 1)), k = std::stoul(m.substr(dash + 1));
      EXPECT_EQ(k, next[from]++) << "client " << i << ": sender " << from << " out of order";
    }
    EXPECT_EQ(seen.size(), kClients * kEach) << "client " << i;
    for (auto& [m, n] : seen) EXPECT_EQ(n, 1) << m;
  }
  // Nothing more (no duplicate): a ping round trip would show it, the
  // server answers none, so ask for the next message with a short wait.
  for (auto& c : clients) EXPECT_EQ(c->read_text(100).rfind("<no message", 0), 0u);
}

TEST(MultiLoop, ConnectionsClosingWhileACrossLoopBroadcastIsInFlight) {
  RecordingHandler h;
  Loops l(&h);
  h.on_msg = [&](ConnId, Opcode op, const char* d, size_t n) {
    l.server->broadcast(op, std::string_view(d, n), 0);
  };
  l.run();
  constexpr size_t kClients = 24, kMessages = 300;
  auto clients = connect_all(l.server->port(), kClients);
  ASSERT_TRUE(h.wait_count(Event::Open, kClients));
  // Client 0 publishes; the odd ones leave abruptly meanwhile (a reset, no
  // close frame), so frames handed to the other loop find them gone.
  std::thread publisher([&] {
    for (size_t k = 0; k < kMessages; ++k) clients[0]->send_text("m" + std::to_string(k));
  });
  for (size_t i = 1; i < kClients; i += 2) {
    clients[i]->read_text(5000);  // at least one broadcast is under way
    linger lg{1, 0};
    setsockopt(clients[i]->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    clients[i]->close();
  }
  publisher.join();
  for (size_t i = 0; i < kClients; i += 2)
    for (size_t k = 0; k < kMessages; ++k)
      ASSERT_EQ(clients[i]->read_text(10000), "m" + std::to_string(k)) << "client " << i;
  ASSERT_TRUE(h.wait_count(Event::Close, kClients / 2));
  // The survivors still work both ways after it.
  ASSERT_TRUE(clients[2]->send_text("after"));
  for (size_t i = 0; i < kClients; i += 2) EXPECT_EQ(clients[i]->read_text(5000), "after");
}

TEST(MultiLoop, StopWhileBusyClosesEveryLoopWith1001AndDrains) {
  RecordingHandler h;
  Loops l(&h);
  h.on_msg = [&](ConnId, Opcode op, const char* d, size_t n) {
    l.server->broadcast(op, std::string_view(d, n), 0);
  };
  l.run();
  auto clients = connect_spread(h, l.server->port(), 10);
  const size_t kClients = clients.size();
  ASSERT_TRUE(h.wait_count(Event::Open, kClients));
  std::set<ConnId> loops_used;
  for (ConnId id : opened(h)) loops_used.insert(id % 2);
  ASSERT_EQ(loops_used.size(), 2u);
  for (auto& c : clients)
    for (int k = 0; k < 100; ++k) ASSERT_TRUE(c->send_text("busy " + std::to_string(k)));
  ASSERT_TRUE(h.wait_count(Event::Message, 20));  // the loops are broadcasting
  l.server->stop();
  // Every client, on either loop, reads to a 1001 close and answers it.
  for (auto& c : clients) {
    uint16_t code = 0;
    for (int i = 0; i < 20000 && code == 0; ++i) {
      auto m = c->read_message(10000);
      if (!m) break;
      if (m->op == Opcode::Close) code = m->close_code();
    }
    EXPECT_EQ(code, 1001);
    c->send_close(1001);
  }
  l.thread.join();
  EXPECT_EQ(l.run_rc, kOk);
  EXPECT_TRUE(l.server->stopped());
  EXPECT_EQ(h.count(Event::Close), kClients);
  for (const Event& e : h.events()) {
    if (e.kind == Event::Close) { EXPECT_EQ(e.code, 1001); }
  }
}

TEST(MultiLoop, SendAndCloseFromForeignThreadsReachTheOwningLoop) {
  RecordingHandler h;
  Loops l(&h);
  l.run();
  constexpr size_t kClients = 8, kThreads = 4, kEach = 25;
  auto clients = connect_all(l.server->port(), kClients);
  ASSERT_TRUE(h.wait_count(Event::Open, kClients));
  const std::vector<ConnId> ids = opened(h);
  std::vector<std::thread> foreign;
  for (size_t t = 0; t < kThreads; ++t)
    foreign.emplace_back([&, t] {
      for (size_t k = 0; k < kEach; ++k)
        for (ConnId id : ids)
          EXPECT_EQ(l.server->send(id, Opcode::Text, "t" + std::to_string(t) + "-" + std::to_string(k)), kOk);
    });
  for (auto& t : foreign) t.join();
  std::thread closer([&] {
    for (ConnId id : ids) EXPECT_EQ(l.server->close(id, 4001, "bye"), kOk);
  });
  closer.join();
  // The loops are not held by this thread: queued, never acted on here.
  EXPECT_EQ(l.server->info(ids[0]), nullptr);
  // Each client: every thread's messages in that thread's order, then 4001.
  // Which client is which id does not matter: each got the same.
  for (auto& c : clients) {
    std::vector<size_t> next(kThreads, 0);
    for (size_t n = 0; n < kThreads * kEach; ++n) {
      const std::string m = c->read_text(10000);
      ASSERT_EQ(m[0], 't') << m;
      const size_t t = std::stoul(m.substr(1, m.find('-') - 1));
      EXPECT_EQ(std::stoul(m.substr(m.find('-') + 1)), next[t]++);
    }
    EXPECT_EQ(c->read_text(5000), "<closed 4001>");
    c->send_close(4001);
  }
  ASSERT_TRUE(h.wait_count(Event::Close, kClients));
  for (const Event& e : h.events()) {
    if (e.kind == Event::Close) { EXPECT_EQ(e.code, 4001); }
  }
  // A stale id from any thread: an error, never a crash.
  EXPECT_EQ(l.server->send(ids[0], Opcode::Text, "late"), kOk);  // queued, found gone there
}

TEST(MultiLoop, CallbacksReachOtherLoopsConnections) {
  // on_message of a connection on one loop sends a frame (by reference) to
  // every connection of the other loop: queued to the owning loop, batched.
  RecordingHandler h;
  Loops l(&h);
  std::mutex mu;
  std::map<ConnId, size_t> client_of;  // id -> client index (from its "who-i")
  h.on_msg = [&](ConnId from, Opcode, const char* d, size_t n) {
    std::string_view m(d, n);
    std::lock_guard<std::mutex> lock(mu);
    if (m.starts_with("who-")) {
      client_of[from] = std::stoul(std::string(m.substr(4)));
      return;
    }
    for (auto& [to, i] : client_of)
      if (to % 2 != from % 2) {
        EXPECT_EQ(l.server->info(to), nullptr);  // another loop's: not this thread's to read
        FrameRef f(SharedFrame::make(Opcode::Text, m));
        EXPECT_EQ(l.server->send_frame(to, f), kOk);
      }
  };
  l.run();
  constexpr size_t kClients = 16, kEach = 20;
  auto clients = connect_all(l.server->port(), kClients);
  for (size_t i = 0; i < kClients; ++i) ASSERT_TRUE(clients[i]->send_text("who-" + std::to_string(i)));
  ASSERT_TRUE(h.wait_count(Event::Message, kClients));
  std::vector<int> loop(kClients, -1);
  size_t on0 = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [id, i] : client_of) {
      loop[i] = int(id % 2);
      on0 += id % 2 == 0;
    }
  }
  ASSERT_GT(on0, 0u);
  ASSERT_LT(on0, kClients);
  for (size_t k = 0; k < kEach; ++k)
    for (auto& c : clients) ASSERT_TRUE(c->send_text("from-" + std::to_string(k)));
  for (size_t i = 0; i < kClients; ++i) {
    const size_t others = loop[i] == 0 ? kClients - on0 : on0;
    for (size_t n = 0; n < kEach * others; ++n)
      ASSERT_EQ(clients[i]->read_text(10000).rfind("from-", 0), 0u) << "client " << i;
  }
  // Nothing beyond: each client's last expected message was the last.
  for (auto& c : clients) EXPECT_EQ(c->read_text(50).rfind("<no message", 0), 0u);
}

TEST(MultiLoop, StartStopCyclesLeakNoThreadsOrDescriptors) {
  RecordingHandler h;
  // The baseline is taken after one cycle: TSan's runtime starts its own
  // background thread at the process's first pthread_create, which is not
  // ours to count. A thread or descriptor lost per cycle still shows 999 times.
  { Loops warm(&h); warm.run(); warm.stop(); ASSERT_EQ(warm.run_rc, kOk); }
  const size_t tasks = entries("/proc/self/task"), fds = open_descriptors();
  for (int cycle = 0; cycle < 1000; ++cycle) {
    Loops l(&h);
    ASSERT_TRUE(l.server);
    l.run();
    if (cycle % 100 == 0) {  // now and then with a client on it at stop
      WsClient c;
      ASSERT_TRUE(c.connect(l.server->port()));
      l.server->stop();
      EXPECT_EQ(c.read_text(5000), "<closed 1001>");
      c.send_close(1001);
    }
    l.stop();
    ASSERT_EQ(l.run_rc, kOk);
  }
  EXPECT_EQ(entries("/proc/self/task"), tasks);
  EXPECT_EQ(open_descriptors(), fds);
}

// ---------------------------------------------------- AcceptMode::Handoff

namespace {
ServerConfig handoff(ServerConfig cfg = {}) {
  cfg.accept_mode = ServerConfig::AcceptMode::Handoff;
  return cfg;
}
size_t on_loop(const std::vector<ConnId>& ids, ConnId loop, size_t from = 0) {
  size_t n = 0;
  for (size_t i = from; i < ids.size(); ++i) n += ids[i] % 2 == loop;
  return n;
}
}  // namespace

// Loop 0 accepts; each connection goes to the loop with fewer connections,
// counting those handed to it and not taken in yet. Clients connect one
// after another here (each upgrade done before the next connect), so the
// split is exact: the kernel's hash would only be even on average, and
// would not make up for the connections that left one loop.
TEST(MultiLoopHandoff, EachConnectionGoesToTheLoopWithFewestAndDeparturesAreMadeUp) {
  ThreadNotingHandler h;
  Loops l(&h, handoff());
  l.run();
  auto clients = connect_all(l.server->port(), 40);
  ASSERT_TRUE(h.wait_count(Event::Open, 40));
  auto ids = opened(h);
  EXPECT_EQ(on_loop(ids, 0), 20u);
  EXPECT_EQ(on_loop(ids, 1), 20u);
  // A handed-over connection is served by its loop like any other.
  for (auto& c : clients) ASSERT_TRUE(c->send_text("x"));
  ASSERT_TRUE(h.wait_count(Event::Message, 40));
  EXPECT_EQ(h.wrong_thread(), 0);
  std::set<std::thread::id> distinct;
  for (auto& [id, t] : h.threads()) distinct.insert(t);
  EXPECT_EQ(distinct.size(), 2u);

  // Every client of loop 1 leaves (the i-th client is the i-th opened).
  size_t left = 0;
  for (size_t i = 0; i < clients.size(); ++i)
    if (ids[i] % 2 == 1) {
      clients[i]->close();
      ++left;
    }
  ASSERT_TRUE(h.wait_count(Event::Close, left));
  // The next 20 all go to loop 1, which has none now.
  auto more = connect_all(l.server->port(), 20);
  ASSERT_TRUE(h.wait_count(Event::Open, 60));
  ids = opened(h);
  EXPECT_EQ(on_loop(ids, 1, 40), 20u);
  for (auto& c : more) ASSERT_TRUE(c->send_text("y"));
  ASSERT_TRUE(h.wait_count(Event::Message, 60));
  EXPECT_EQ(h.wrong_thread(), 0);
  EXPECT_EQ(l.server->connection_count(), 40u);
  StatsSnapshot s;
  l.server->stats(&s);
  EXPECT_TRUE(s.accepting);  // loop 1 has no listener, and is accepting all the same
  // Ids stay unique and name their loop.
  EXPECT_EQ(std::set<ConnId>(ids.begin(), ids.end()).size(), 60u);
}

// max_connections and max_connections_per_ip count the server's
// connections, not a loop's: with either way of spreading them, exactly the
// first `limit` are admitted and the rest answered 503, and a slot given
// back on one loop can be taken on the other. (Counted per loop, the
// kernel's hash would admit a connection to a loop with room while the
// server is at its limit, and per address up to threads x the limit.)
class MultiLoopLimits : public ::testing::TestWithParam<ServerConfig::AcceptMode> {};
INSTANTIATE_TEST_SUITE_P(Accept, MultiLoopLimits,
                         ::testing::Values(ServerConfig::AcceptMode::ReusePort, ServerConfig::AcceptMode::Handoff),
                         [](const auto& p) {
                           return p.param == ServerConfig::AcceptMode::Handoff ? "handoff" : "reuseport";
                         });

TEST_P(MultiLoopLimits, TheServersLimitsAreReachedExactly) {
  for (bool per_ip : {false, true}) {
    SCOPED_TRACE(per_ip ? "max_connections_per_ip" : "max_connections");
    RecordingHandler h;
    ServerConfig cfg;
    cfg.accept_mode = GetParam();
    (per_ip ? cfg.max_connections_per_ip : cfg.max_connections) = 3;
    Loops l(&h, cfg);
    l.run();
    std::vector<std::unique_ptr<WsClient>> in;
    int refused = 0;
    for (int i = 0; i < 8; ++i) {
      auto c = std::make_unique<WsClient>();
      if (c->connect(l.server->port())) {
        EXPECT_LT(in.size(), 3u) << "connection " << i << " admitted over the limit";
        in.push_back(std::move(c));
      } else {
        EXPECT_EQ(c->status(), 503) << "connection " << i;
        EXPECT_GE(in.size(), 3u) << "connection " << i << " refused under the limit";
        ++refused;
      }
    }
    EXPECT_EQ(in.size(), 3u);
    EXPECT_EQ(refused, 5);
    ASSERT_TRUE(h.wait_count(Event::Open, 3));
    // One leaves: its slot is the server's again, whichever loop it was on
    // (an address's count is given back with the socket, once the server
    // has let it go: no longer closing or lingering).
    in.front()->close();
    ASSERT_TRUE(h.wait_count(Event::Close, 1));
    in.erase(in.begin());  // and its socket
    StatsSnapshot st;
    for (int i = 0; i < 500; ++i) {
      l.server->stats(&st);
      if (st.websocket_connections == 2 && st.closing_connections == 0 && st.http_connections == 0) break;
      l.server->wake();
      h.wait([](auto&) { return false; }, 2);
    }
    ASSERT_EQ(st.closing_connections, 0u) << st.websocket_connections << " open, " << st.http_connections << " http";
    WsClient again;
    EXPECT_TRUE(again.connect(l.server->port())) << again.status();
    WsClient over;
    EXPECT_FALSE(over.connect(l.server->port()));
    EXPECT_EQ(over.status(), 503);
    for (auto& c : in) EXPECT_TRUE(c->send_text("still here"));
    ASSERT_TRUE(h.wait_count(Event::Message, 2));
  }
}

// max_handshakes_per_second_per_ip is the server's rate too: a burst of
// upgrades from one address gets its allowance once, not once per loop
// (with per-loop buckets both ways of spreading admit up to twice it).
TEST_P(MultiLoopLimits, TheHandshakeRateIsTheServers) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.accept_mode = GetParam();
  cfg.max_handshakes_per_second_per_ip = 3;
  Loops l(&h, cfg);
  l.run();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<WsClient>> in;
  int refused = 0;
  for (int i = 0; i < 10; ++i) {
    auto c = std::make_unique<WsClient>();
    if (c->connect(l.server->port())) {
      in.push_back(std::move(c));
    } else {
      EXPECT_EQ(c->status(), 429) << "connection " << i;
      ++refused;
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(in.size() + size_t(refused), 10u);
  // The burst of 3, and 3 a second refilled while the test ran.
  EXPECT_GE(in.size(), 3u);
  EXPECT_LE(in.size(), 3u + size_t(ms) * 3 / 1000 + 1) << "admitted in " << ms << " ms";
  for (auto& c : in) EXPECT_TRUE(c->send_text("in"));
  ASSERT_TRUE(h.wait_count(Event::Message, in.size()));
  StatsSnapshot st;
  l.server->stats(&st);
  EXPECT_EQ(st.websocket_connections, in.size());
}

// max_buffered_input is the server's budget too: partial messages held on
// both loops count together. Each client, one after the other, sends the
// first 300 KiB fragment of a message and a ping: while the 1 MiB budget
// has room, the fragment is held and the ping answered; the fourth would
// take it over and is closed 1013. (With a budget per loop, 2 + 2 fit.)
TEST_P(MultiLoopLimits, TheBufferedInputBudgetIsTheServers) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.accept_mode = GetParam();
  cfg.max_buffered_input = 1 << 20;
  cfg.drain_timeout_ms = 300;
  Loops l(&h, cfg);
  l.run();
  const std::string fragment(300 << 10, 'f');
  std::vector<std::unique_ptr<WsClient>> held;
  for (int i = 0; i < 4; ++i) {
    auto c = std::make_unique<WsClient>();
    ASSERT_TRUE(c->connect(l.server->port())) << c->status();
    ASSERT_TRUE(c->send_frame(protocol::Opcode::Binary, fragment, /*fin=*/false));
    ASSERT_TRUE(c->send_frame(protocol::Opcode::Ping, "held?"));
    auto f = c->read_frame(5000);
    ASSERT_TRUE(f) << "connection " << i << ": " << c->error();
    if (i < 3) {
      EXPECT_EQ(f->op, protocol::Opcode::Pong) << "connection " << i << " refused under the budget";
      held.push_back(std::move(c));
    } else {
      ASSERT_EQ(f->op, protocol::Opcode::Close) << "connection " << i << " held over the budget";
      ASSERT_GE(f->payload.size(), 2u);
      EXPECT_EQ((uint8_t(f->payload[0]) << 8) | uint8_t(f->payload[1]), 1013);
    }
  }
  // One holder finishes its message: its share comes back, and a client
  // turned away before fits now.
  ASSERT_TRUE(held.front()->send_frame(protocol::Opcode::Continuation, "end"));
  ASSERT_TRUE(h.wait_count(Event::Message, 1));
  WsClient again;
  ASSERT_TRUE(again.connect(l.server->port()));
  ASSERT_TRUE(again.send_frame(protocol::Opcode::Binary, fragment, false));
  ASSERT_TRUE(again.send_frame(protocol::Opcode::Ping, "held?"));
  auto f = again.read_frame(5000);
  ASSERT_TRUE(f) << again.error();
  EXPECT_EQ(f->op, protocol::Opcode::Pong);
}

// Sockets loop 0 has accepted but loop 1 has not taken in yet when the
// server stops (in loop 0's outbox, in loop 1's queue, or reaching loop 1
// as it stops) are closed, not leaked.
TEST(MultiLoopHandoff, StopWithHandOversInFlightLeaksNoDescriptors) {
  RecordingHandler h;
  { Loops warm(&h, handoff()); warm.run(); warm.stop(); ASSERT_EQ(warm.run_rc, kOk); }
  const size_t fds = open_descriptors();
  for (int cycle = 0; cycle < 50; ++cycle) {
    Loops l(&h, handoff());
    ASSERT_TRUE(l.server);
    l.run();
    // Raw TCP: connect() completes in the kernel's backlog; the server
    // accepts and hands over while the stop below comes.
    std::vector<int> socks;
    for (int i = 0; i < 32; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(l.server->port());
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
      socks.push_back(fd);
    }
    if (cycle % 2) std::this_thread::yield();
    l.stop();
    ASSERT_EQ(l.run_rc, kOk);
    l.server.reset();
    for (int fd : socks) ::close(fd);
  }
  EXPECT_EQ(open_descriptors(), fds);
}
