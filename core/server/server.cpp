// Server lifecycle, the loop iteration, cross-thread commands and timers.
#include "server/server.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/utf8.h"
#include "server/server_impl.h"

namespace chatws {

using protocol::Opcode;

namespace {

int tick_for(const ServerConfig& cfg) {
  int t = 250;
  for (int v : {cfg.handshake_timeout_ms, cfg.idle_timeout_ms, cfg.close_timeout_ms,
                cfg.drain_timeout_ms}) {
    if (v > 0) t = std::min(t, std::max(10, v / 4));
  }
  return t;
}

}  // namespace

// ------------------------------------------------------------------ create

std::unique_ptr<Server> Server::create(const ServerConfig& cfg, ServerHandler* handler,
                                       std::string* error, int* code) {
  auto fail = [&](int c, std::string msg) -> std::unique_ptr<Server> {
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
  impl->limits.max_message_size = cfg.max_message_size;
  impl->limits.max_fragments = cfg.max_fragments;
  impl->input_budget.max = cfg.max_buffered_input ? cfg.max_buffered_input : 4 * uint64_t(cfg.max_message_size);
  impl->limits.input_budget = &impl->input_budget;
  impl->tick_ms = tick_for(cfg);
  if (!cfg.static_dir.empty()) {
    if (access(cfg.static_dir.c_str(), R_OK | X_OK) != 0)
      return fail(kEInval, "static_dir '" + cfg.static_dir + "' is not a readable directory");
    impl->static_files = http::StaticFiles(cfg.static_dir);
  }
  std::string err;
  if (cfg.tls.enabled()) {
    // Before binding: a bad certificate is the host's mistake (EINVAL), and
    // the port must not be taken by a server that will not start.
    impl->tls = net::TlsContext::create(cfg.tls, &err);
    if (!impl->tls) return fail(kEInval, err);
    impl->tls_staging = std::make_unique<net::TlsStaging>();
  }
  if (!impl->poller.init(&err)) return fail(kESystem, err);
  impl->listen_fd = net::listen_tcp(cfg.host, cfg.port, &err);
  if (impl->listen_fd < 0) return fail(kESystem, err);
  impl->port = net::local_port(impl->listen_fd);
  if (!impl->poller.add_level_read(impl->listen_fd, Impl::kListenToken))
    return fail(kESystem, std::string("epoll_ctl: ") + std::strerror(errno));
  // The first SHA-1 loads the crypto library's provider and pages in about
  // 2 MB of its code: pay that once here rather than on the first client's
  // handshake (latency), so connection memory reflects connections only.
  (void)protocol::compute_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  impl->now_ms = net::monotonic_ms();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Server::Impl::~Impl() {
  // Destroyed without a graceful stop: tell every client we are going away
  // (best effort, non-blocking), then report each connection closed.
  now_ms = net::monotonic_ms();
  std::vector<Connection*> all;
  all.reserve(by_id.size());
  for (Connection* c : by_id) all.push_back(c);
  close_reports.clear();  // reported by destroy() below
  for (Connection* c : all) {
    if (c->state == ConnState::Open) {
      send_close(c, 1001, "server shutting down");
      flush(c);
    }
    if (c->state != ConnState::Dead) abort(c, c->close_sent ? c->close_code : 1006);
  }
  destroy_dead();
  if (state.load() != LoopState::Stopped) handler->on_iteration_end();
  if (listen_fd >= 0) ::close(listen_fd);
}

uint16_t Server::port() const { return impl_->port; }
int Server::fd() const { return impl_->poller.fd(); }
bool Server::stopped() const { return impl_->state.load() == LoopState::Stopped; }
size_t Server::connection_count() const { return impl_->ws_count.load(std::memory_order_relaxed); }
bool Server::on_loop_thread() const { return impl_->on_loop_thread(); }

Server::Impl::Caller Server::Impl::caller() const {
  auto me = std::this_thread::get_id();
  auto running = loop_thread.load(std::memory_order_acquire);
  if (running == me) return Caller::InLoop;
  return running == std::thread::id() && me == owner_thread ? Caller::BetweenPolls : Caller::Other;
}

bool Server::Impl::acts_directly(Caller who) {
  // Output the owner queues between its poll() calls (a host running its
  // own event loop) would wait for the next event or tick: make fd()
  // readable so the host polls again. Inside run()/poll() the iteration's
  // end flushes it.
  if (who == Caller::BetweenPolls && !nudged) {
    nudged = true;
    poller.wake();
  }
  return who != Caller::Other;
}

// -------------------------------------------------------------------- loop

namespace {
// Marks the calling thread as the loop thread for the scope.
struct LoopScope {
  std::atomic<std::thread::id>& slot;
  bool ok;
  explicit LoopScope(std::atomic<std::thread::id>& s) : slot(s) {
    std::thread::id none{};
    auto me = std::this_thread::get_id();
    ok = slot.compare_exchange_strong(none, me) || none == me;
  }
  ~LoopScope() {
    if (ok) slot.store(std::thread::id(), std::memory_order_release);
  }
};
}  // namespace

int Server::run() {
  LoopScope scope(impl_->loop_thread);
  if (!scope.ok) return kEState;
  impl_->owner_thread = std::this_thread::get_id();
  while (impl_->state.load() != LoopState::Stopped) {
    int rc = impl_->poll_once(-1);
    if (rc < 0 && rc != kEStopped) return rc;
  }
  return kOk;
}

int Server::poll(int timeout_ms) {
  LoopScope scope(impl_->loop_thread);
  if (!scope.ok) return kEState;
  impl_->owner_thread = std::this_thread::get_id();
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

  if (work_left()) timeout_ms = 0;
  if (accept_paused) {
    const int64_t left = accept_retry_ms - now_ms;
    if (left <= 0) {
      resume_accepting();
    } else if (timeout_ms < 0 || timeout_ms > left) {
      timeout_ms = int(left);
    }
  }
  if (state.load() == LoopState::Stopping) {
    int cap = by_id.empty() ? 0 : tick_ms;
    if (timeout_ms < 0 || timeout_ms > cap) timeout_ms = cap;
  }
  net::PollEvent evs[256];
  int n = poller.wait(evs, 256, timeout_ms);
  if (n < 0) return kESystem;
  now_ms = net::monotonic_ms();
  // Connections whose last turn ended with input possibly left get their
  // turn after the events; until then (flag still set) an event of theirs
  // does not give them a second one. Swapped, so both lists keep capacity.
  turns.swap(read_pending);
  for (int i = 0; i < n; ++i) on_event(evs[i]);
  for (Connection* c : turns) {
    c->read_pending = false;
    if (c->state != ConnState::Dead) read_ready(c);
  }
  turns.clear();
  run_commands();
  if (stop_requested.load() && state.load() == LoopState::Running) begin_stop();
  run_close_reports();

  handler->on_iteration_end();
  flush_all();
  destroy_dead();

  if (state.load() == LoopState::Stopping) {
    // Connections whose close is complete and flushed need not linger now.
    for (Connection* c : by_id)
      if (c->state == ConnState::Lingering && c->out.empty() && c->shut_done) abort(c, c->close_code);
    destroy_dead();
    if (by_id.empty()) {
      finish_stop();
    } else if (now_ms >= stop_deadline) {
      std::vector<Connection*> all;
      for (Connection* c : by_id) all.push_back(c);
      for (Connection* c : all)
        if (c->state != ConnState::Dead) abort(c, c->close_sent ? c->close_code : 1006);
      destroy_dead();
      finish_stop();
    }
  }
  update_tick();
  return n;
}

void Server::Impl::update_tick() {
  bool need = !by_id.empty() || state.load() == LoopState::Stopping;
  poller.set_tick(need ? tick_ms : 0);
}

void Server::stop() {
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
  stop_deadline = now_ms + (cfg.drain_timeout_ms > 0 ? cfg.drain_timeout_ms : 0);
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
      c->deadline_ms = now_ms + std::max(cfg.close_timeout_ms, 100);
      mark_dirty(c);
    }
  }
}

void Server::Impl::finish_stop() {
  handler->on_iteration_end();  // e.g. make the chat history durable
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
  if (!cmds_posted.exchange(false, std::memory_order_acq_rel)) return;
  {
    std::lock_guard<std::mutex> lock(cmd_mu);
    if (cmds.empty()) return;
    cmds_work.swap(cmds);
  }
  for (Command& c : cmds_work) {
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
    }
  }
  cmds_work.clear();
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
  const auto who = impl_->caller();
  if (int rc = impl_->check_message(op, payload, who != Impl::Caller::Other); rc != kOk) return rc;
  if (impl_->state.load() == LoopState::Stopped) return kEStopped;
  if (!impl_->acts_directly(who)) {
    impl_->post(Command{Command::Send, op, 0, id, std::string(payload)});
    return kOk;
  }
  return impl_->direct_send(id, op, payload);
}

int Server::send_frame(ConnId id, const FrameRef& frame) {
  if (!impl_->acts_directly(impl_->caller())) return kEThread;
  Connection* c = impl_->find_open(id);
  if (!c) return kENoConn;
  return impl_->enqueue(c, frame.get());
}

int Server::broadcast(Opcode op, std::string_view payload, ConnId exclude) {
  const auto who = impl_->caller();
  if (int rc = impl_->check_message(op, payload, who != Impl::Caller::Other); rc != kOk) return rc;
  if (impl_->state.load() == LoopState::Stopped) return kEStopped;
  if (!impl_->acts_directly(who)) {
    impl_->post(Command{Command::Broadcast, op, 0, exclude, std::string(payload)});
    return kOk;
  }
  FrameRef f(SharedFrame::make(op, payload));
  return impl_->direct_broadcast(f.get(), exclude);
}

int Server::broadcast_frame(const FrameRef& frame, ConnId exclude) {
  if (!impl_->acts_directly(impl_->caller())) return kEThread;
  return impl_->direct_broadcast(frame.get(), exclude);
}

int Server::close(ConnId id, uint16_t code, std::string_view reason) {
  if (!protocol::is_valid_close_code(code) || reason.size() > 123 ||
      !protocol::is_valid_utf8(reason.data(), reason.size()))
    return kEInval;
  if (impl_->state.load() == LoopState::Stopped) return kEStopped;
  if (!impl_->acts_directly(impl_->caller())) {
    impl_->post(Command{Command::Close, Opcode::Close, code, id, std::string(reason)});
    return kOk;
  }
  return impl_->direct_close(id, code, reason);
}

int Server::reload_tls(const std::string& cert_file, const std::string& key_file,
                       const std::string& key_passphrase, std::string* error) {
  if (!impl_->tls) {
    if (error) *error = "the server was not created with TLS (no certificate and key)";
    return kEState;
  }
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

const ConnInfo* Server::info(ConnId id) const {
  Connection* c = impl_->by_id.find(id);
  if (!c || !c->opened || c->state == ConnState::Dead) return nullptr;
  return impl_->conn_info(c);
}

std::string_view Server::subprotocol(ConnId id) const {
  Connection* c = impl_->by_id.find(id);
  if (!c || !c->opened || c->state == ConnState::Dead) return {};
  if (c->subprotocol < impl_->cfg.subprotocols.size()) return impl_->cfg.subprotocols[c->subprotocol];
  ConnInfo* i = c->built_info();
  return i ? std::string_view(i->subprotocol) : std::string_view();
}

std::string_view Server::path(ConnId id) const {
  Connection* c = impl_->by_id.find(id);
  if (!c || !c->opened || c->state == ConnState::Dead) return {};
  // Where handle_upgrade/conn_info left it: the ConnInfo, else the
  // PathTable, else (table full) the cold part.
  if (ConnInfo* i = c->built_info()) return i->path;
  if (c->path_ref != PathTable::kNone) return impl_->paths.get(c->path_ref);
  return c->has_cold() ? std::string_view(c->cold().path) : std::string_view();
}

void Server::wake() { impl_->poller.wake(); }

bool Server::backlogged(ConnId id) const {
  Connection* c = impl_->by_id.find(id);
  return c && c->opened && c->state != ConnState::Dead && c->over_soft;
}

size_t Server::max_output_buffer() const { return impl_->cfg.max_output_buffer; }

uint64_t Server::dropped(ConnId id) const {
  Connection* c = impl_->by_id.find(id);
  if (!c || !c->opened || c->state == ConnState::Dead) return 0;
  return c->dropped();
}

ConnInfo* Server::mutable_info(ConnId id) { return const_cast<ConnInfo*>(info(id)); }

void Server::connection_ids(std::vector<ConnId>* out) const {
  out->clear();
  out->reserve(impl_->open.size());
  for (Connection* c : impl_->open) out->push_back(c->id);
}

// ------------------------------------------------------------------ timers

void Server::Impl::on_tick() {
  poller.drain_timer();
  std::vector<Connection*> expired;
  for (Connection* c : by_id) {
    // A burst's spilled output array (and input kept between turns) goes
    // back once empty: a few allocations a second at most, never one per
    // message.
    c->out.trim();
    c->trim_input();
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
  for (Connection* c : expired) {
    switch (c->state) {
      case ConnState::Http:
        // Slow or silent client (slowloris): answer 408 and close; in the
        // TLS handshake there is no channel to answer on yet. An upgrade
        // whose decision never came: 503.
        if (c->upgrade_pending) {
          pending_timed_out(c);
        } else if (tls_handshaking(c)) {
          abort(c, 1006);
        } else {
          respond_and_close(c, 408, "request head not received in time");
        }
        break;
      case ConnState::Open:
        if (!c->ping_outstanding) {
          // Idle: probe the peer once; no answer within another period closes it.
          c->ping_outstanding = true;
          c->last_rx_ms = now_ms;
          FrameRef ping(SharedFrame::make(Opcode::Ping, "chatws"));
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
