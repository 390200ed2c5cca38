// Several event loops in one Server: creating them, running each on its
// own thread, stopping and tearing them all down, and what crosses loops
// (commands and frames by reference, in batches). See loop_group.h.
#include "server/loop_group.h"

#include <sched.h>

#include <thread>

#include "server/server_impl.h"

namespace chatws {

namespace {

unsigned available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return unsigned(std::max(1, CPU_COUNT(&set)));
  return std::max(1u, std::thread::hardware_concurrency());
}

// A snapshot's counters are uint64_t through and through (LoopCounters and
// its Histogram): summed as one array, so a counter added later is summed
// without a line here.
void add_counters(LoopCounters& to, const LoopCounters& from) {
  static_assert(sizeof(LoopCounters) % sizeof(uint64_t) == 0);
  auto* t = reinterpret_cast<uint64_t*>(&to);
  const auto* f = reinterpret_cast<const uint64_t*>(&from);
  for (size_t i = 0; i < sizeof(LoopCounters) / sizeof(uint64_t); ++i) t[i] += f[i];
}

}  // namespace

std::unique_ptr<Server> LoopGroup::create(const ServerConfig& cfg, ServerHandler* handler,
                                          std::string* error, int* code) {
  const unsigned n = cfg.threads ? cfg.threads : available_cores();
  if (n > kMaxThreads) {
    if (error) *error = "threads must be at most " + std::to_string(kMaxThreads) + " (0: one per core)";
    if (code) *code = kEInval;
    return nullptr;
  }
  ServerConfig one = cfg;
  one.threads = 1;
  if (n == 1) return Server::create(one, handler, error, code);
  // The limits are the whole server's (max_connections, _per_ip, the
  // handshake rate, max_buffered_input): the loops share loop 0's counts
  // and input budget, as they share its TLS context (one certificate, one
  // set of ticket keys).
  const bool reuse = cfg.accept_mode == ServerConfig::AcceptMode::ReusePort;
  auto first = Server::Impl::make(one, handler, Server::Impl::Role{reuse, true, nullptr, nullptr, nullptr}, error,
                                  code);
  if (!first) return nullptr;
  one.port = first->port;  // the others join the first one's port
  one.metrics_port = -1;   // served by loop 0
  std::vector<Server::Impl*> loops{first.get()};
  std::vector<std::unique_ptr<Server::Impl>> extra;
  for (unsigned i = 1; i < n; ++i) {
    // Handoff: no listener; loop 0 accepts for them.
    const Server::Impl::Role role{reuse, reuse, first->tls, first->counts, first->input_budget};
    auto l = Server::Impl::make(one, handler, role, error, code);
    if (!l) return nullptr;
    loops.push_back(l.get());
    extra.push_back(std::move(l));
  }
  auto group = std::make_unique<LoopGroup>(std::move(loops), std::move(extra));
  for (size_t i = 0; i < n; ++i) {
    Server::Impl* l = group->loops_[i];
    l->group = group.get();
    l->loop_index = uint32_t(i);
    l->loop_count = n;
    l->outbox.resize(n);
  }
  if (!reuse) first->handed.assign(n, 0);
  first->owned_group = std::move(group);
  return std::unique_ptr<Server>(new Server(std::move(first)));
}

LoopGroup::LoopGroup(std::vector<Server::Impl*> loops,
                     std::vector<std::unique_ptr<Server::Impl>> extra)
    : loops_(std::move(loops)), extra_(std::move(extra)) {}

LoopGroup::~LoopGroup() = default;

Server::Impl* LoopGroup::current() const {
  Server::Impl* l = t_running_loop;
  return l && l->group == this ? l : nullptr;
}

// ----------------------------------------------------------------- running

int LoopGroup::run() {
  LoopScope first(*loops_[0]);
  if (!first.ok) return kEState;
  std::vector<int> results(loops_.size(), kOk);
  std::vector<std::thread> threads;
  threads.reserve(loops_.size() - 1);
  try {
    for (size_t i = 1; i < loops_.size(); ++i)
      threads.emplace_back([this, i, &results] { results[i] = run_other(loops_[i]); });
  } catch (...) {
    results[0] = kESystem;  // no thread for a loop: the started ones stop again
  }
  if (results[0] == kOk) results[0] = loops_[0]->run_loop();
  if (results[0] != kOk) stop();
  for (std::thread& t : threads) t.join();
  for (int rc : results)
    if (rc != kOk) return rc;
  return kOk;
}

int LoopGroup::run_other(Server::Impl* l) {
  for (;;) {
    {
      LoopScope scope(*l);
      if (scope.ok) {
        const int rc = l->run_loop();
        if (rc != kOk) stop();  // the server cannot serve without this loop
        return rc;
      }
    }
    // Held for the moment of a call by the creating thread (between polls,
    // before run): it gives it back without waiting for anything.
    if (l->state.load() == LoopState::Stopped) return kOk;
    std::this_thread::yield();
  }
}

void LoopGroup::stop() {
  for (Server::Impl* l : loops_) {
    l->stop_requested.store(true);
    l->poller.wake();
  }
}

bool LoopGroup::stopped() const {
  for (Server::Impl* l : loops_)
    if (l->state.load() != LoopState::Stopped) return false;
  return true;
}

void LoopGroup::wake() {
  for (Server::Impl* l : loops_) l->poller.wake();
}

int LoopGroup::shutdown(bool force) {
  // Every loop held by this thread while any is torn down: the callbacks of
  // one loop's teardown may name connections of another.
  std::vector<std::unique_ptr<LoopScope>> scopes;
  bool all = true;
  for (Server::Impl* l : loops_) {
    scopes.push_back(std::make_unique<LoopScope>(*l));
    all &= scopes.back()->ok;
  }
  if (all || force) {
    for (Server::Impl* l : loops_) l->state.store(LoopState::Stopped);  // kEStopped from now on
    for (Server::Impl* l : loops_) l->teardown();
  }
  while (!scopes.empty()) scopes.pop_back();  // innermost first (t_running_loop)
  return all ? kOk : kEState;
}

// -------------------------------------------------------- crossing loops

int LoopGroup::broadcast(SharedFrame* f, ConnId exclude) {
  int n = 0;
  for (Server::Impl* l : loops_) {
    Server::LoopAccess access(l);
    if (access) {
      n += l->direct_broadcast(f, exclude);
      continue;
    }
    f->ref();
    Command c{Command::BroadcastFrame, f->opcode(), 0, exclude, {}, FrameRef(f)};
    Server::Impl::post_to(l, std::move(c));
  }
  return n;
}

void Server::Impl::post_to(Impl* to, Command&& c) {
  Impl* from = t_running_loop;
  if (from && from != to && from->group && from->group == to->group) {
    from->outbox[to->loop_index].push_back(std::move(c));
    from->outbox_pending = true;
    return;
  }
  to->post(std::move(c));
}

void Server::Impl::flush_outbox() {
  outbox_pending = false;
  for (size_t i = 0; i < outbox.size(); ++i) {
    if (outbox[i].empty()) continue;
    group->loop(i)->post_batch(outbox[i]);
    outbox[i].clear();
  }
}

void Server::Impl::post_batch(std::vector<Command>& batch) {
  {
    std::lock_guard<std::mutex> lock(cmd_mu);
    if (cmds.empty()) {
      cmds.swap(batch);  // the common case: no copy, the outbox takes the old capacity
    } else {
      for (Command& c : batch) cmds.push_back(std::move(c));
    }
  }
  if (!cmds_posted.exchange(true, std::memory_order_acq_rel)) poller.wake();
}

// ------------------------------------------------------------------- stats

void LoopGroup::read_stats(StatsSnapshot* out) const {
  loops_[0]->stats_cell.read(out);
  StatsSnapshot s;
  for (size_t i = 1; i < loops_.size(); ++i) {
    loops_[i]->stats_cell.read(&s);
    add_counters(out->c, s.c);
    out->websocket_connections += s.websocket_connections;
    out->http_connections += s.http_connections;
    out->closing_connections += s.closing_connections;
    out->queued_output_bytes += s.queued_output_bytes;
    out->accepting = out->accepting && s.accepting;
    out->running = out->running && s.running;
    // s.app: the handler's figures are the server's (the chat's rooms),
    // whichever loop asked: loop 0's stand.
  }
}

size_t LoopGroup::connection_count() const {
  size_t n = 0;
  for (Server::Impl* l : loops_) n += l->ws_count.load(std::memory_order_relaxed);
  return n;
}

}  // namespace chatws
