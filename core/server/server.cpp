// Server lifecycle, the loop iteration, cross-thread commands and timers.
#include "server/server.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/utf8.h"
#include "server/loop_group.h"
#include "server/server_impl.h"

namespace chatws {

using protocol::Opcode;

thread_local Server::Impl* t_running_loop = nullptr;

namespace {

// close_timeout_ms (chatws.h): 0 is the default, a negative value disables
// the wait for the peer's close reply, a positive one is raised to this
// floor: a close frame and the FIN behind it need a few round trips on a
// loaded loop, and a peer that answers at once must not be cut with 1006.
constexpr int kDefaultCloseMs = 5000;
constexpr int kMinCloseMs = 100;

int close_wait_for(int configured) {
  if (configured < 0) return 0;
  return configured == 0 ? kDefaultCloseMs : std::max(configured, kMinCloseMs);
}

int tick_for(const ServerConfig& cfg, int close_wait_ms) {
  int t = 250;
  for (int v : {cfg.handshake_timeout_ms, cfg.idle_timeout_ms, close_wait_ms,
                cfg.drain_timeout_ms}) {
    if (v > 0) t = std::min(t, std::max(10, v / 4));
  }
  return t;
}

}  // namespace

// ------------------------------------------------------------------ create

std::unique_ptr<Server> Server::create(const ServerConfig& cfg, ServerHandler* handler,
                                       std::string* error, int* code) {
  if (cfg.threads != 1) return LoopGroup::create(cfg, handler, error, code);
  auto impl = Impl::make(cfg, handler, Impl::Role{}, error, code);
  if (!impl) return nullptr;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::unique_ptr<Server::Impl> Server::Impl::make(const ServerConfig& cfg, ServerHandler* handler,
                                                 const Role& role, std::string* error, int* code) {
  auto fail = [&](int c, std::string msg) -> std::unique_ptr<Impl> {
    if (error) *error = std::move(msg);
    if (code) *code = c;
    return nullptr;
  };
  if (!handler) return fail(kEInval, "a handler is required");
  if (cfg.max_message_size == 0 || cfg.max_message_size > (size_t{1} << 31))
    return fail(kEInval, "max_message_size must be between 1 byte and 2 GiB");
  if (cfg.max_request_size < 256) return fail(kEInval, "max_request_size must be at least 256");
  if (cfg.max_output_buffer == 0) return fail(kEInval, "max_output_buffer must be positive");
  if (cfg.ipv6_prefix_length < 1 || cfg.ipv6_prefix_length > 128)
    return fail(kEInval, "ipv6_prefix_length must be between 1 and 128");

  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->handler = handler;
  impl->upgrade_cfg.subprotocols = cfg.subprotocols;
  impl->upgrade_cfg.allowed_origins = cfg.allowed_origins;
  impl->configure_compression();
  impl->limits.max_message_size = cfg.max_message_size;
  impl->limits.max_fragments = cfg.max_fragments;
  impl->input_budget = role.input_budget
                          ? role.input_budget
                          : std::make_shared<protocol::InputBudget>(
                                cfg.max_buffered_input ? cfg.max_buffered_input : 4 * uint64_t(cfg.max_message_size));
  impl->limits.input_budget = impl->input_budget.get();
  // The one place the close timeout's meaning is decided: disabled, no
  // deadline for the close reply; once our side is done the wait for the
  // peer's FIN stays bounded (by the default when the reply wait is off),
  // so a peer that never closes TCP cannot hold a descriptor for good.
  impl->close_wait_ms = close_wait_for(cfg.close_timeout_ms);
  impl->linger_ms = impl->close_wait_ms > 0 ? impl->close_wait_ms : kDefaultCloseMs;
  impl->tick_ms = tick_for(cfg, impl->close_wait_ms);
  if (!cfg.static_dir.empty()) {
    if (access(cfg.static_dir.c_str(), R_OK | X_OK) != 0)
      return fail(kEInval, "static_dir '" + cfg.static_dir + "' is not a readable directory");
    impl->static_files = http::StaticFiles(cfg.static_dir);
  }
  std::string err;
  if (cfg.tls.enabled()) {
    // Before binding: a bad certificate is the host's mistake (EINVAL), and
    // the port must not be taken by a server that will not start.
    impl->tls = role.tls ? role.tls : std::shared_ptr<net::TlsContext>(net::TlsContext::create(cfg.tls, &err));
    if (!impl->tls) return fail(kEInval, err);
    impl->tls_staging = std::make_unique<net::TlsStaging>();
  }
  if (!impl->poller.init(&err)) return fail(kESystem, err);
  impl->counts = role.counts ? role.counts : std::make_shared<ConnectionCounts>();
  impl->listens = role.listen;
  if (role.listen) {
    impl->listen_fd = net::listen_tcp(cfg.host, cfg.port, &err, role.reuse_port);
    if (impl->listen_fd < 0) return fail(kESystem, err);
    impl->port = net::local_port(impl->listen_fd);
    if (!impl->poller.add_level_read(impl->listen_fd, Impl::kListenToken))
      return fail(kESystem, std::string("epoll_ctl: ") + std::strerror(errno));
  } else {
    impl->port = cfg.port;
  }
  // The first SHA-1 loads the crypto library's provider and pages in about
  // 2 MB of its code: pay that once here rather than on the first client's
  // handshake (latency), so connection memory reflects connections only.
  (void)protocol::compute_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  impl->now_ms = net::monotonic_ms();
  impl->start_wall_ms = wall_clock_ms();
  if (cfg.metrics_port >= 0 && !impl->start_metrics(&err)) return fail(kESystem, err);
  impl->publish_stats(0);
  return impl;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  // Every loop torn down while the group is whole: one loop's on_close may
  // name another's connections.
  if (impl_->group) impl_->group->shutdown(true);
}

Server::Impl* Server::loop_of(ConnId id) const {
  return impl_->group ? impl_->group->of(id) : impl_.get();
}

unsigned Server::loop_count() const { return impl_->loop_count; }

int Server::current_loop() const {
  if (!impl_->group) return t_running_loop == impl_.get() ? 0 : -1;
  Impl* l = impl_->group->current();
  return l ? int(l->loop_index) : -1;
}

void Server::wake_loop(unsigned index) {
  (impl_->group ? impl_->group->loop(index) : impl_.get())->poller.wake();
}

Server::Impl::~Impl() {
  stop_metrics();
  // Destroyed without shutdown() (a C++ host, a failed create): the same
  // teardown, the handler still reachable.
  teardown();
  close_adoptions();  // posted after the teardown, or never run
}

void Server::Impl::teardown() noexcept {
  if (torn_down) return;
  torn_down = true;
  // Stopped from here on: what the callbacks below ask of a server that is
  // going away (send, close, another iteration) gets a clear kEStopped.
  const bool was_stopped = state.load() == LoopState::Stopped;
  state.store(LoopState::Stopped);
  // A handler (or an allocation) that throws here (from ~Impl: noexcept)
  // must neither end the host nor leave the rest unreported and their
  // sockets open: each throw is logged, the teardown goes on.
  auto guarded = [this](const char* what, auto&& step) {
    try {
      step();
      return true;
    } catch (const std::exception& e) {
      log_noexcept(LogLevel::Error, std::string(what) + " threw during shutdown: " + e.what());
    } catch (...) {
      log_noexcept(LogLevel::Error, std::string(what) + " threw during shutdown");
    }
    return false;
  };
  // Tell every client we are going away (best effort, non-blocking), then
  // report each connection closed. Out of memory for the close frames:
  // closed without them.
  now_ms = net::monotonic_ms();
  close_reports.clear();  // reported by destroy() below
  guarded("closing", [this] {
    std::vector<Connection*> all;
    all.reserve(by_id.size());
    for (Connection* c : by_id) all.push_back(c);
    for (Connection* c : all) {
      if (c->state == ConnState::Open) {
        send_close(c, 1001, "server shutting down");
        flush(c);
      }
      if (c->state != ConnState::Dead) abort(c, c->close_sent ? c->close_code : 1006);
    }
  });
  for (Connection* c : by_id)
    if (c->state != ConnState::Dead) abort(c, c->close_sent ? c->close_code : 1006);
  while (!guarded("on_close", [this] { destroy_dead(); })) {
  }
  if (!was_stopped) guarded("on_iteration_end", [this] { handler->on_iteration_end(); });
  if (listen_fd >= 0) ::close(listen_fd);
  listen_fd = -1;
}

int Server::shutdown() {
  if (impl_->group) return impl_->group->shutdown(false);
  LoopScope scope(*impl_);
  if (!scope.ok) return kEState;
  impl_->teardown();
  return kOk;
}

uint16_t Server::port() const { return impl_->port; }
// Several loops: no one descriptor stands for them (see chatws.h, threads).
int Server::fd() const { return impl_->group ? kEState : impl_->poller.fd(); }
bool Server::stopped() const {
  if (impl_->group) return impl_->group->stopped();
  return impl_->state.load() == LoopState::Stopped;
}
size_t Server::connection_count() const {
  if (impl_->group) return impl_->group->connection_count();
  return impl_->ws_count.load(std::memory_order_relaxed);
}

// With several loops: the loop the calling thread runs (a callback's), else
// loop 0 (the creating thread before run()).
Server::LoopAccess::LoopAccess(const Server& s) : impl_(s.impl_.get()) {
  if (impl_->group)
    if (Impl* l = impl_->group->current()) impl_ = l;
  take();
}

Server::LoopAccess::LoopAccess(const Server& s, ConnId id) : impl_(s.loop_of(id)) { take(); }

Server::LoopAccess::LoopAccess(Impl* impl) : impl_(impl) { take(); }

void Server::LoopAccess::take() {
  const auto me = std::this_thread::get_id();
  const auto held = impl_->loop_thread.load(std::memory_order_acquire);
  if (held == me) {
    ok_ = true;  // in run()/poll() (a callback), the teardown, or an outer scope
    return;
  }
  if (held != std::thread::id() || impl_->owner_thread.load(std::memory_order_relaxed) != me) return;
  std::thread::id none{};
  if (!impl_->loop_thread.compare_exchange_strong(none, me, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed))
    return;  // another thread entered poll() meanwhile: it owns the loop now
  // The owner changes only under the slot, which this thread now holds:
  // read again, another thread may have polled between the check and here.
  if (impl_->owner_thread.load(std::memory_order_relaxed) != me) {
    impl_->loop_thread.store(std::thread::id(), std::memory_order_release);
    return;
  }
  ok_ = claimed_ = true;
}

Server::LoopAccess::~LoopAccess() {
  if (!claimed_) return;
  impl_->between_polls_done();
  impl_->loop_thread.store(std::thread::id(), std::memory_order_release);
}

void Server::Impl::between_polls_done() {
  // Output the owner queued between its poll() calls (a host running its
  // own event loop) would wait for the next event or tick: make fd()
  // readable so the host polls again. Inside run()/poll() the iteration's
  // end flushes it.
  if (work_left() && !nudged) {
    nudged = true;
    poller.wake();
  }
}

// -------------------------------------------------------------------- loop

int Server::run() {
  if (impl_->group) return impl_->group->run();
  LoopScope scope(*impl_);
  if (!scope.ok) return kEState;
  return impl_->run_loop();
}

int Server::Impl::run_loop() {
  while (state.load() != LoopState::Stopped) {
    int rc = poll_once(-1);
    if (rc < 0 && rc != kEStopped) return rc;
  }
  return kOk;
}

int Server::poll(int timeout_ms) {
  if (impl_->group) return kEState;  // each loop runs on its own thread: run()
  LoopScope scope(*impl_);
  if (!scope.ok) return kEState;
  int rc = impl_->poll_once(timeout_ms);
  // A host running its own event loop calls poll() when fd() is readable:
  // keep it readable while work is left for the next iteration (the rest
  // of a long flush list, a read budget that ran out), or that work would
  // wait for the next timer tick. run() needs no such nudge.
  if (rc >= 0 && impl_->work_left()) impl_->poller.wake();
  return rc;
}

int Server::Impl::poll_once(int timeout_ms) {
  if (state.load() == LoopState::Stopped) return kEStopped;
  nudged = false;
  now_ms = net::monotonic_ms();
  run_commands();
  if (stop_requested.load() && state.load() == LoopState::Running) begin_stop();

  int n;
  if (ev_next < ev_count) {
    // The last iteration was cut short by an exception (the host got its
    // error): its events come first; the connections they name are alive,
    // since nothing is destroyed before an iteration's end.
    n = ev_count - ev_next;
  } else {
    if (work_left()) timeout_ms = 0;
    if (accept_paused) {
      const int64_t left = accept_retry_ms - now_ms;
      if (left <= 0) {
        resume_accepting();
      } else if (timeout_ms < 0 || timeout_ms > left) {
        timeout_ms = int(left);
      }
    }
    for (const auto& [c, until] : paused) {  // few: flood-controlled clients
      const int64_t left = std::max<int64_t>(until - now_ms, 0);
      if (timeout_ms < 0 || timeout_ms > left) timeout_ms = int(left);
    }
    if (state.load() == LoopState::Stopping) {
      int cap = by_id.empty() ? 0 : tick_ms;
      if (timeout_ms < 0 || timeout_ms > cap) timeout_ms = cap;
    }
    n = poller.wait(events, kMaxEvents, timeout_ms);
    if (n < 0) return kESystem;
    ev_count = n;
    ev_next = 0;
    now_ms = net::monotonic_ms();
    // Connections whose last turn ended with input possibly left get their
    // turn after the events; until then (flag still set) an event of theirs
    // does not give them a second one. Swapped, so both lists keep
    // capacity; turns an unwound iteration left go first.
    light_turns = 0;
    if (!paused.empty()) resume_paused();
    if (turns.empty()) {
      turns.swap(read_pending);
    } else {
      turns.insert(turns.end(), read_pending.begin(), read_pending.end());
      read_pending.clear();
    }
  }
  const uint64_t busy_from = monotonic_ns();  // the loop's busy time, for its histogram
  // Counted as handled before it is: an event whose handling throws is not
  // handled twice.
  while (ev_next < ev_count) on_event(events[ev_next++]);
  serve_turns();
  run_commands();
  if (stop_requested.load() && state.load() == LoopState::Running) begin_stop();
  run_close_reports();

  handler->on_iteration_end();
  if (outbox_pending) flush_outbox();  // the other loops' share, one batch each
  flush_all();
  destroy_dead();
  retired_watches.clear();

  if (state.load() == LoopState::Stopping) {
    // Connections whose close is complete and flushed need not linger now.
    for (Connection* c : by_id)
      if (c->state == ConnState::Lingering && c->out.empty() && c->shut_done) abort(c, c->close_code);
    destroy_dead();
    if (by_id.empty()) {
      finish_stop();
    } else if (stop_deadline != 0 && now_ms >= stop_deadline) {
      std::vector<Connection*> all;
      for (Connection* c : by_id) all.push_back(c);
      for (Connection* c : all)
        if (c->state != ConnState::Dead) abort(c, c->close_sent ? c->close_code : 1006);
      destroy_dead();
      finish_stop();
    }
  }
  update_tick();
  publish_stats(monotonic_ns() - busy_from);
  return n;
}

void Server::Impl::serve_turns() {
  // Index loop; if it unwinds, the turns not yet served stay (flagged) for
  // the next iteration, and destroy() takes a connection out of them.
  size_t served = 0;
  struct Served {
    std::vector<Connection*>& list;
    size_t& n;
    ~Served() { list.erase(list.begin(), list.begin() + ptrdiff_t(n)); }
  } guard{turns, served};
  while (served < turns.size()) {
    Connection* c = turns[served++];
    c->read_pending = false;
    if (c->state != ConnState::Dead) read_ready(c);
  }
}

void Server::Impl::update_tick() {
  bool need = !by_id.empty() || state.load() == LoopState::Stopping;
  poller.set_tick(need ? tick_ms : 0);
}

void Server::stop() {
  if (impl_->group) return impl_->group->stop();
  impl_->stop_requested.store(true);
  impl_->poller.wake();
}

void Server::Impl::begin_stop() {
  // The iteration that noticed stop() may have run long (host callbacks, a
  // large broadcast): deadlines start now, not when its epoll_wait returned.
  now_ms = net::monotonic_ms();
  state.store(LoopState::Stopping);
  if (listen_fd >= 0) {
    poller.remove(listen_fd);
    ::close(listen_fd);
    listen_fd = -1;
  }
  // Disabled (-1): no deadline, the stop waits for every close (0 clears it).
  stop_deadline = cfg.drain_timeout_ms > 0 ? now_ms + cfg.drain_timeout_ms : 0;
  std::vector<Connection*> all;
  for (Connection* c : by_id) all.push_back(c);
  for (Connection* c : all) {
    if (c->state == ConnState::Open) {
      send_close(c, 1001, "server shutting down");
    } else if (tls_handshaking(c)) {
      abort(c, 1006);  // nothing in flight to let finish
    } else if (c->upgrade_pending) {
      drop_pending(c);
      respond_and_close(c, 503, "server is shutting down");
    } else if (c->state == ConnState::Http) {
      // Let a response in flight finish, then close.
      set_state(c, ConnState::Lingering);
      c->end_http();
      c->deadline_ms = linger_deadline();
      mark_dirty(c);
    }
  }
}

void Server::Impl::finish_stop() {
  handler->on_iteration_end();  // e.g. make the chat history durable
  stop_metrics();
  state.store(LoopState::Stopped);
  poller.set_tick(0);
}

// ---------------------------------------------------------------- commands

void Server::Impl::post(Command&& c) {
  {
    std::lock_guard<std::mutex> lock(cmd_mu);
    cmds.push_back(std::move(c));
  }
  // Only the first poster since the loop last took the batch writes the
  // eventfd; later ones find the flag set and the wake-up already coming.
  if (!cmds_posted.exchange(true, std::memory_order_acq_rel)) poller.wake();
}

void Server::Impl::run_commands() {
  if (cmds_next == cmds_work.size()) {
    if (!cmds_posted.exchange(false, std::memory_order_acq_rel)) return;
    std::lock_guard<std::mutex> lock(cmd_mu);
    if (cmds.empty()) return;
    cmds_work.clear();
    cmds_work.swap(cmds);
    cmds_next = 0;
  }
  // Else a batch an exception cut short (the host got the error): the rest
  // of it first. Each command counts as run before it runs, so none runs
  // twice (the one that threw is not retried) and none after it is lost.
  while (cmds_next < cmds_work.size()) {
    Command& c = cmds_work[cmds_next++];
    switch (c.kind) {
      case Command::Send:
        direct_send(c.id, c.op, c.data);
        break;
      case Command::Broadcast: {
        FrameRef f(SharedFrame::make(c.op, c.data));
        direct_broadcast(f.get(), c.id);
        break;
      }
      case Command::Close:
        direct_close(c.id, c.code, c.data);
        break;
      case Command::Resolve:
        apply_resolution(c.id);
        break;
      case Command::SendFrame:
        if (Connection* to = find_open(c.id)) enqueue(to, c.frame.get());
        break;
      case Command::BroadcastFrame:
        direct_broadcast(c.frame.get(), c.id);
        break;
      case Command::Adopt: {
        net::Accepted a{int(c.id), std::move(c.data), c.code};
        c.kind = Command::Send;  // taken: close_adoptions must not close it again
        adopted.fetch_add(1, std::memory_order_release);
        // A stopping loop takes no new connection (its listener would be
        // closed by now): the client sees the connection closed.
        if (state.load() != LoopState::Running) {
          ::close(a.fd);
          break;
        }
        admit(a);  // on failure it has closed the socket and logged why
        break;
      }
    }
  }
  cmds_work.clear();
  cmds_next = 0;
}

// -------------------------------------------------------------- public API

int Server::Impl::check_message(Opcode op, std::string_view payload, bool on_loop) const {
  if (op != Opcode::Text && op != Opcode::Binary) return kEInval;
  if (payload.size() > cfg.max_message_size) return kETooBig;
  if (op == Opcode::Text) {
    // The exact buffer on_message is being handed was validated on receipt
    // (`delivering` is only set, and only read, on the loop thread).
    const bool known_valid = on_loop && !delivering.empty() &&
                             payload.data() == delivering.data() &&
                             payload.size() == delivering.size();
    if (!known_valid && !protocol::is_valid_utf8(payload.data(), payload.size())) return kEInval;
  }
  return kOk;
}

int Server::send(ConnId id, Opcode op, std::string_view payload) {
  Impl* l = loop_of(id);
  LoopAccess loop(l);
  if (int rc = l->check_message(op, payload, bool(loop)); rc != kOk) return rc;
  if (l->state.load() == LoopState::Stopped) return kEStopped;
  if (!loop) {
    Impl::post_to(l, Command{Command::Send, op, 0, id, std::string(payload), {}});
    return kOk;
  }
  return l->direct_send(id, op, payload);
}

int Server::send_frame(ConnId id, const FrameRef& frame) {
  Impl* l = loop_of(id);
  LoopAccess loop(l);
  if (!loop) {
    // Another loop's connection, from a loop thread: by reference, batched.
    if (!impl_->group || !impl_->group->current()) return kEThread;
    if (l->state.load() == LoopState::Stopped) return kEStopped;
    Impl::post_to(l, Command{Command::SendFrame, frame->opcode(), 0, id, {}, frame});
    return kOk;
  }
  Connection* c = l->find_open(id);
  if (!c) return kENoConn;
  return l->enqueue(c, frame.get());
}

int Server::broadcast(Opcode op, std::string_view payload, ConnId exclude) {
  LoopAccess loop(*this);
  Impl* l = loop.impl();
  if (int rc = l->check_message(op, payload, bool(loop)); rc != kOk) return rc;
  if (l->state.load() == LoopState::Stopped) return kEStopped;
  if (impl_->group) {
    FrameRef f(SharedFrame::make(op, payload));  // encoded once for every loop
    return impl_->group->broadcast(f.get(), exclude);
  }
  if (!loop) {
    impl_->post(Command{Command::Broadcast, op, 0, exclude, std::string(payload), {}});
    return kOk;
  }
  FrameRef f(SharedFrame::make(op, payload));
  return impl_->direct_broadcast(f.get(), exclude);
}

int Server::broadcast_frame(const FrameRef& frame, ConnId exclude) {
  LoopAccess loop(*this);
  if (!loop) return kEThread;
  if (impl_->group) return impl_->group->broadcast(frame.get(), exclude);
  return impl_->direct_broadcast(frame.get(), exclude);
}

int Server::close(ConnId id, uint16_t code, std::string_view reason) {
  if (!protocol::is_valid_close_code(code) || reason.size() > 123 ||
      !protocol::is_valid_utf8(reason.data(), reason.size()))
    return kEInval;
  Impl* l = loop_of(id);
  if (l->state.load() == LoopState::Stopped) return kEStopped;
  LoopAccess loop(l);
  if (!loop) {
    Impl::post_to(l, Command{Command::Close, Opcode::Close, code, id, std::string(reason), {}});
    return kOk;
  }
  return l->direct_close(id, code, reason);
}

int Server::reload_tls(const std::string& cert_file, const std::string& key_file,
                       const std::string& key_passphrase, std::string* error) {
  if (!impl_->tls) {
    if (error) *error = "the server was not created with TLS (no certificate and key)";
    return kEState;
  }
  // One context for every loop: all take the new pair, or none.
  std::string err;
  if (!impl_->tls->reload(cert_file, key_file, key_passphrase, &err)) {
    if (error) *error = std::move(err);
    return kEInval;
  }
  return kOk;
}

Connection* Server::Impl::find_open(ConnId id) const {
  Connection* c = by_id.find(id);
  return c && c->state == ConnState::Open ? c : nullptr;
}

Connection* Server::Impl::seen(ConnId id, Impl** owner) const {
  Impl* l = group ? group->of(id) : const_cast<Impl*>(this);
  if (group && !l->holds_loop()) return nullptr;  // another thread's to read
  Connection* c = l->by_id.find(id);
  if (!l->visible(c)) return nullptr;
  *owner = l;
  return c;
}

const ConnInfo* Server::info(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  return c ? l->conn_info(c) : nullptr;
}

std::string_view Server::subprotocol(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  if (!c) return {};
  if (c->subprotocol < l->cfg.subprotocols.size()) return l->cfg.subprotocols[c->subprotocol];
  ConnInfo* i = c->built_info();
  return i ? std::string_view(i->subprotocol) : std::string_view();
}

std::string_view Server::path(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  if (!c) return {};
  // Where handle_upgrade/conn_info left it: the ConnInfo, else the
  // PathTable, else (table full) the cold part.
  if (ConnInfo* i = c->built_info()) return i->path;
  if (c->path_ref != PathTable::kNone) return l->paths.get(c->path_ref);
  return c->has_cold() ? std::string_view(c->cold().path) : std::string_view();
}

std::string_view Server::query(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  if (!c) return {};
  ConnInfo* i = c->built_info();
  return i ? std::string_view(i->query) : std::string_view();
}

void Server::wake() {
  if (impl_->group) return impl_->group->wake();
  impl_->poller.wake();
}

bool Server::backlogged(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  return c && c->state != ConnState::Dead && c->over_soft;
}

int Server::pause_input(ConnId id, int ms) {
  LoopAccess loop(*this, id);  // the connection's own loop
  if (!loop) return kEThread;
  if (ms < 1) return kEInval;
  Impl* l = loop.impl();
  Connection* c = l->find_open(id);
  if (!c) return kENoConn;
  const int64_t until = net::monotonic_ms() + ms + 1;  // at least ms (the clock is in whole ms)
  if (c->paused) {
    for (auto& [h, t] : l->paused)
      if (h == c) t = std::max(t, until);
    return kOk;
  }
  l->paused.emplace_back(c, until);
  c->paused = true;  // after: the flag says it is listed
  return kOk;
}

size_t Server::max_output_buffer() const { return impl_->cfg.max_output_buffer; }

uint64_t Server::dropped(ConnId id) const {
  Impl* l;
  Connection* c = impl_->seen(id, &l);
  return c ? c->dropped() : 0;
}

ConnInfo* Server::mutable_info(ConnId id) { return const_cast<ConnInfo*>(info(id)); }

void Server::connection_ids(std::vector<ConnId>* out) const {
  out->clear();
  const size_t n = impl_->group ? impl_->group->size() : 1;
  for (size_t i = 0; i < n; ++i) {
    const Impl* l = impl_->group ? impl_->group->loop(i) : impl_.get();
    if (impl_->group && !l->holds_loop()) continue;  // another thread's
    out->reserve(out->size() + l->open.size());
    for (Connection* c : l->open) out->push_back(c->id);
  }
}

// ------------------------------------------------------------------ timers

void Server::Impl::on_tick() {
  poller.drain_timer();
  std::vector<Connection*> expired;
  uint64_t queued = 0;
  for (Connection* c : by_id) {
    queued += c->out.bytes();
    if (c->is_tls) tls_tick(c);
    // A burst's spilled output array (and input kept between turns) goes
    // back once the connection has been quiet for a whole tick: one that
    // keeps talking keeps them, so its steady state allocates nothing (a
    // trim whenever the tick found its queue empty for a moment would make
    // the next burst allocate them again, a few times a second).
    if (c->busy) {
      c->busy = false;
    } else {
      c->out.trim();
      c->trim_input();
      deflate_idle(c);
    }
    switch (c->state) {
      case ConnState::Http:
      case ConnState::Closing:
      case ConnState::Lingering:
        if (c->deadline_ms.reached(now_ms)) expired.push_back(c);
        break;
      case ConnState::Open:
        if (cfg.idle_timeout_ms > 0 &&
            c->last_rx_ms.elapsed(now_ms) >= uint32_t(cfg.idle_timeout_ms))
          expired.push_back(c);
        break;
      case ConnState::Dead:
        break;
    }
  }
  queued_gauge = queued;  // a gauge as fresh as the tick: no sum per write
  for (Connection* c : expired) {
    switch (c->state) {
      case ConnState::Http:
        // Slow or silent client (slowloris): answer 408 and close; in the
        // TLS handshake there is no channel to answer on yet. An upgrade
        // whose decision never came: 503.
        if (c->upgrade_pending) {
          pending_timed_out(c);
        } else if (tls_handshaking(c)) {
          ++ctr.tls_failures;
          count_reject(c, RejectReason::Timeout, 0, "TLS handshake not done in time");
          abort(c, 1006);
        } else {
          count_reject(c, RejectReason::Timeout, 408, "request head not received in time");
          respond_and_close(c, 408, "request head not received in time");
        }
        break;
      case ConnState::Open:
        if (!c->ping_outstanding) {
          // Idle: probe the peer once; no answer within another period closes it.
          FrameRef ping(SharedFrame::make(Opcode::Ping, "chatws"));  // before the state changes
          c->ping_outstanding = true;
          c->last_rx_ms = now_ms;
          enqueue(c, ping.get());
        } else {
          abort(c, 1006);
        }
        break;
      case ConnState::Closing:
      case ConnState::Lingering:
        abort(c, c->close_code ? c->close_code : 1006);
        break;
      case ConnState::Dead:
        break;
    }
  }
}

}  // namespace chatws
