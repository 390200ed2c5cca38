// The I/O paths of the loop: accepting, reading, WebSocket frames, output,
// and the calls of the loop's own thread (direct_*). The HTTP front is in
// http_front.cpp, the end of a connection in conn_close.cpp.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/deflate_message.h"
#include "server/loop_group.h"
#include "server/server_impl.h"

namespace chatws {

using protocol::Opcode;

// ---------------------------------------------------------------- accepting

void Server::Impl::accept_all() {
  using R = net::Acceptor::Result;
  for (int i = 0; i < 64 && listen_fd >= 0; ++i) {
    net::Accepted a;
    const R rc = acceptor.accept_one(listen_fd, &a);
    if (rc == R::Empty) return;
    if (rc == R::Exhausted) {
      pause_accepting();
      return;
    }
    if (rc == R::Retry) continue;
    if (!(hands_off() ? place(a) : admit(a))) return;  // out of memory: the rest wait in the backlog
  }
}

// The loop whose load (connections, and sockets handed to it that it has
// not taken yet) is lowest; ties to the lowest index. Only running loops.
Server::Impl* Server::Impl::least_loaded() {
  Impl* best = this;
  uint64_t best_load = UINT64_MAX;
  for (uint32_t i = 0; i < loop_count; ++i) {
    Impl* l = group->loop(i);
    if (l->state.load(std::memory_order_acquire) != LoopState::Running) continue;
    uint64_t load = l->open_gauge.load(std::memory_order_relaxed);
    if (l != this) load += handed[i] - l->adopted.load(std::memory_order_acquire);
    if (load < best_load) {
      best = l;
      best_load = load;
    }
  }
  return best;
}

bool Server::Impl::place(net::Accepted& a) {
  Impl* to = least_loaded();
  if (to == this) return admit(a);
  try {
    Command c{Command::Adopt, Opcode::Text, a.port, ConnId(a.fd), std::move(a.address), {}};
    post_to(to, std::move(c));  // the outbox: handed over at this iteration's end
  } catch (...) {
    ::close(a.fd);  // out of memory for the command: the client sees its connection closed
    try {
      log(LogLevel::Error, "out of memory: an accepted connection was closed");
    } catch (...) {
    }
    return false;
  }
  ++handed[to->loop_index];
  return true;
}

void Server::Impl::close_adoptions() noexcept {
  auto close_in = [](std::vector<Command>& v, size_t from) {
    for (size_t i = from; i < v.size(); ++i)
      if (v[i].kind == Command::Adopt) {
        ::close(int(v[i].id));
        v[i].kind = Command::Send;
      }
  };
  std::lock_guard<std::mutex> lock(cmd_mu);
  close_in(cmds, 0);
  close_in(cmds_work, cmds_next);
  for (std::vector<Command>& box : outbox) close_in(box, 0);
}

// One accepted socket becomes a connection. False if that failed for lack
// of memory: the socket or the half-made connection is closed (the client
// sees its connection closed at once, not a hang), the failure logged.
bool Server::Impl::admit(const net::Accepted& a) {
  Connection* c = nullptr;
  bool listed = false;  // in by_id: abort() takes it from there
  try {
    reserve_dead();
    c = pool.create(limits);
    c->fd = a.fd;
    c->remote_port = a.port;
    if (!c->set_address(a.address)) conn_info(c)->remote_address = a.address;  // not expected
    c->last_rx_ms = now_ms;
    c->start_http(cfg.max_request_size);
    c->id = next_id++ * loop_count + loop_index;  // names its loop (Server::loop_of)
    by_id.insert(c);
    open_gauge.fetch_add(1, std::memory_order_relaxed);
    const uint64_t live = counts->add_live();  // release() takes it off
    listed = true;
    ++state_count[size_t(ConnState::Http)];  // with listed: abort() then counts it out
    ++ctr.connections_accepted;
    accept_setup(c, a, live);
    return true;
  } catch (...) {
    if (listed) {
      abort(c, 1006);  // allocates nothing (reserve_dead)
    } else {
      if (c) pool.destroy(c);
      ::close(a.fd);
    }
    try {
      log(LogLevel::Error, "out of memory: an accepted connection was closed");
    } catch (...) {
    }
    return false;
  }
}

void Server::Impl::accept_setup(Connection* c, const net::Accepted& a, uint64_t live) {
  if (cfg.socket_send_buffer > 0)
    setsockopt(a.fd, SOL_SOCKET, SO_SNDBUF, &cfg.socket_send_buffer, sizeof cfg.socket_send_buffer);
  if (cfg.handshake_timeout_ms > 0) c->deadline_ms = now_ms + cfg.handshake_timeout_ms;
  had_connections = true;
  if (tls && !start_tls(c)) {
    abort(c, 1006);
    return;
  }
  // The token is the connection itself (no fd table to keep: 8 bytes per
  // descriptor). It cannot outlive it: destroy() deregisters the fd before
  // freeing the connection, and runs only after a batch's events are handled.
  if (!poller.add_edge(a.fd, reinterpret_cast<uintptr_t>(c))) {
    abort(c, 1006);
    return;
  }
  if (cfg.max_connections_per_ip > 0) {
    uint32_t n = counts->add_address(net::address_group(a.address, cfg.ipv6_prefix_length));
    c->counted_ip = true;  // once counted: destroy() gives it back
    if (n > cfg.max_connections_per_ip) {
      count_reject(c, RejectReason::Limit, 503, "too many connections from this address");
      respond_and_close(c, 503, "too many connections from this address");
      return;
    }
  }
  if (live > cfg.max_connections) {
    // Over the limit: answer right away so the client gets a clear status
    // and the listener keeps serving.
    count_reject(c, RejectReason::Limit, 503, "server is at its connection limit");
    respond_and_close(c, 503, "server is at its connection limit");
  }
}

// Out of descriptors with nothing to shed: the level-triggered listener
// would report the pending connection on every wait and the loop would spin.
// It is left out of the poll set until a descriptor is freed here (destroy)
// or the back-off passes (see poll_once), whichever comes first.
void Server::Impl::pause_accepting() {
  if (accept_paused || listen_fd < 0) return;
  poller.remove(listen_fd);
  accept_paused = true;
  accept_retry_ms = now_ms + kAcceptBackoffMs;
}

void Server::Impl::resume_accepting() {
  if (!accept_paused) return;
  if (listen_fd < 0) {  // stopped meanwhile
    accept_paused = false;
    return;
  }
  if (poller.add_level_read(listen_fd, kListenToken)) {
    accept_paused = false;
  } else {
    accept_retry_ms = now_ms + kAcceptBackoffMs;
  }
}

void Server::Impl::on_event(const net::PollEvent& ev) {
  if (ev.token == kListenToken) {
    accept_all();
    return;
  }
  if (ev.token == net::Poller::kWakeToken) {
    // Level-triggered: drained only here, when it fired, not every iteration.
    poller.drain_wake();
    run_commands();
    return;
  }
  if (ev.token == net::Poller::kTimerToken) {
    on_tick();
    return;
  }
  if (ev.token == kMetricsToken) {
    poll_metrics();
    return;
  }
  if (is_watch_token(ev.token)) {
    on_watch_event(ev);
    return;
  }
  Connection* c = reinterpret_cast<Connection*>(uintptr_t(ev.token));
  if (c->state == ConnState::Dead) return;
  if (c->paused && ev.hangup) {
    // Reset while its input is paused: nothing it left can be answered, and
    // a flood's remainder would otherwise keep posting for it.
    abort(c, 1006);
    return;
  }
  if (ev.peer_closed) c->peer_closed = true;  // no further edge will say so
  if (ev.writable) {
    c->writable = true;
    // TLS: ciphertext (a handshake flight, a close_notify) may be waiting.
    if (!c->out.empty() || c->is_tls) flush(c);
  }
  // A connection whose turn is due from the pending list gets that one
  // (after the events), not a second one now.
  if (ev.readable && c->state != ConnState::Dead && !c->read_pending) read_ready(c);
}

// ------------------------------------------------------------------ reading

// One turn of the connection: the input an earlier turn left, else one read
// of at most kReadBufferSize; of it, at most kMessagesPerTurn messages
// (kBulkTurn for a bulk sender while others are served) are handled and the
// rest is kept for the next turn (see feed_frames).
void Server::Impl::read_ready(Connection* c) {
  if (c->paused) return;  // resume_paused gives it its turn
  // A bulk sender's turn is short when others have had theirs in this
  // iteration (their output waits for this turn to end); see kBulkTurn.
  // Bulk senders are always on the pending list, so their turns come after
  // every event's.
  turn_budget = c->bulk && light_turns != 0 ? kBulkTurn : kMessagesPerTurn;
  light_turns += !c->bulk;
  try {
    read_turn(c);
    // No turn due any more: its input is all handled, so it is not a bulk
    // sender now (feed_frames sets the flag when a budget runs out).
    if (!c->read_pending) c->bulk = false;
  } catch (const std::bad_alloc&) {
    fail_turn(c, "out of memory");
  } catch (const std::exception& e) {
    fail_turn(c, e.what());
  } catch (...) {
    fail_turn(c, "unknown exception");
  }
  turn_budget = kMessagesPerTurn;  // bytes fed outside a turn (an upgrade resolved later)
}

// A turn cut short by an exception (the host's or the chat's callback, or
// an allocation): how much of the input it handled is unknown, so the
// connection cannot go on. Closed with 1011 (an HTTP connection with 500)
// if that can be queued, else dropped; logged. The loop and every other
// connection go on.
void Server::Impl::fail_turn(Connection* c, const char* what) {
  try {
    if (c->state == ConnState::Open) {
      send_close(c, 1011, "internal error");
      linger(c);
    } else if (c->state == ConnState::Http && c->out.empty()) {
      respond_and_close(c, 500, "internal error");
    } else {
      abort(c, c->close_code ? c->close_code : 1006);
    }
  } catch (...) {
    abort(c, 1006);  // allocates nothing (reserve_dead)
  }
  try {
    log(LogLevel::Error, std::string("connection closed: its turn failed: ") + what);
  } catch (...) {
  }
}

void Server::Impl::read_turn(Connection* c) {
  // A response is still going out: the next requests stay in the socket
  // (continue_http takes a turn again once it is out).
  if (c->http_hold && c->state == ConnState::Http) return;
  if (c->has_input()) {
    // Handled in place from the kept buffer; only its position moves.
    ConnCold& k = c->cold();
    k.input_pos += feed_frames(c, reinterpret_cast<uint8_t*>(k.input.data()) + k.input_pos,
                               k.input.size() - k.input_pos);
    if (c->state == ConnState::Dead) return;
    if (!c->has_input() || (c->state != ConnState::Open && c->state != ConnState::Closing)) {
      k.input.clear();  // capacity kept for the next burst (see trim_input)
      k.input_pos = 0;
    }
    take_turn_later(c);  // the rest, or the socket (unread since the kept read)
    return;
  }
  if (c->is_tls) {
    tls_read_ready(c);  // the socket's turn, through the transport
    return;
  }
  for (;;) {
    ssize_t n = net::plain::read(c->fd, rbuf.get(), kReadBufferSize);
    if (n > 0) {
      // A full read: more may be waiting. A peer that closed: its EOF (or
      // reset) may be right behind these bytes, and no new edge comes for it.
      took_input(c, size_t(n), size_t(n) == kReadBufferSize || c->peer_closed);
      return;
    }
    if (n == 0) {
      peer_ended(c);
      return;
    }
    if (n == net::kAgain) return;
    abort(c, 1006);
    return;
  }
}

void Server::Impl::took_input(Connection* c, size_t n, bool more) {
  ctr.bytes_in += uint64_t(n);
  c->last_rx_ms = now_ms;
  c->ping_outstanding = false;
  c->busy = true;
  const size_t used = on_bytes(c, rbuf.get(), n);
  if (c->state == ConnState::Dead) return;
  if (used < n) {
    c->keep_input(rbuf.get() + used, n - used);
    take_turn_later(c);
  } else if (more) {
    take_turn_later(c);
  }
}

void Server::Impl::resume_paused() {
  std::erase_if(paused, [&](const std::pair<Connection*, int64_t>& h) {
    if (h.second > now_ms) return false;
    h.first->paused = false;
    // Whatever was left (kept input, the socket: edge-triggered, no new
    // event may come for it) is read in this iteration's turns.
    take_turn_later(h.first);
    return true;
  });
}

void Server::Impl::peer_ended(Connection* c) {
  // An HTTP client may half-close once its requests are sent (RFC 9112
  // 9.6): those already read are still answered, then the connection
  // closes. Over TLS the close_notify has already been answered.
  if (c->state == ConnState::Http && !c->is_tls && (c->http_hold || !c->out.empty())) {
    c->peer_eof = true;
    if (!c->http_hold) finish_half_closed(c);
    return;
  }
  abort(c, c->state == ConnState::Open || !c->close_code ? 1006 : c->close_code);
}

// The half-closed client's requests are all answered (or queued): the
// connection lingers until its output is out, then closes (see flush).
void Server::Impl::finish_half_closed(Connection* c) {
  set_state(c, ConnState::Lingering);
  c->end_http();
  c->deadline_ms = linger_deadline();
  mark_dirty(c);
}

void Server::Impl::take_turn_later(Connection* c) {
  if (!c->read_pending && !c->paused) {
    read_pending.push_back(c);  // first: the flag says it is listed
    c->read_pending = true;
  }
}

size_t Server::Impl::on_bytes(Connection* c, uint8_t* data, size_t n) {
  switch (c->state) {
    case ConnState::Http:
      if (c->upgrade_pending) {
        keep_early_input(c, data, n);  // the head stays parsed as it is
      } else {
        on_http_bytes(c, data, n);
      }
      return n;
    case ConnState::Open:
    case ConnState::Closing:
      return feed_frames(c, data, n);
    case ConnState::Lingering:
    case ConnState::Dead:
      break;  // discarded
  }
  return n;
}

// ---------------------------------------------------------------- WebSocket

namespace {
// Adapts parser events to the connection; no virtual call per byte, one
// (inlined) call per frame.
struct FrameEvents {
  Server::Impl* s;
  Connection* c;
  int left = s->turn_budget;  // events this turn may still handle

  // Go on with the next frame: the connection still reads frames and the
  // turn has budget left (else consume() stops and the rest waits).
  bool next() {
    return (c->state == ConnState::Open || c->state == ConnState::Closing) && !c->paused && --left > 0;
  }

  bool on_message(Opcode op, const char* data, size_t len) {
    if (c->state != ConnState::Open) return next();  // Closing: discarded
    // While the handler runs, send()/broadcast() of this very buffer need
    // not validate it again (the common echo and relay).
    struct Serving {  // reset however on_message returns
      Server::Impl* s;
      ~Serving() {
        s->serving = nullptr;
        s->delivering = {};
      }
    } reset{s};
    if (op == Opcode::Text) s->delivering = std::string_view(data, len);
    ++s->ctr.messages_in;
    s->serving = c;
    s->handler->on_message(c->id, op, data, len);
    return next();
  }
  bool on_ping(const char* data, size_t len) {
    if (c->state == ConnState::Open) {
      FrameRef pong(SharedFrame::make(Opcode::Pong, std::string_view(data, len)));
      s->enqueue(c, pong.get());
    }
    return next();
  }
  // RSV1: inflated within this connection's message limit, validated, then
  // handled like any message (1009 past the limit, 1007 if it does not
  // inflate or is not UTF-8).
  bool on_compressed_message(Opcode op, const char* data, size_t len) {
    if (c->state != ConnState::Open) return next();  // Closing: discarded
    s->ctr.inflate_bytes_in += len;
    const bool go_on = protocol::deliver_inflated(s->inflater_of(c), c->ws.max_message_size(),
                                                  &s->inflated, op, data, len, *this);
    if (c->state == ConnState::Open || c->state == ConnState::Closing)
      s->ctr.inflate_bytes_out += s->inflated.size();
    s->trim_inflate_buffer();
    return go_on;
  }
  bool on_pong(const char*, size_t) {
    c->ping_outstanding = false;
    return next();
  }
  bool on_close(uint16_t code, std::string_view reason) {
    c->close_received = true;
    if (!c->close_sent) {
      // Echo the peer's code (RFC 6455 5.5.1); no code in, no code out.
      c->close_code = code;
      c->set_close_reason(reason);
      s->send_close(c, code == 1005 ? 0 : code, "");
    }
    // Both close frames exchanged: the server closes TCP first (7.1.1).
    s->linger(c);
    return false;
  }
  void on_error(uint16_t code, const char* reason) {
    // Fail the connection (7.1.7): our close frame, then TCP close.
    if (!c->close_sent) s->send_close(c, code, reason);
    s->linger(c);
  }
};
}  // namespace

// The frames in data[0, n) until the turn's budget is spent; returns the
// bytes consumed. Less than n only if the turn ended with frames left: the
// caller keeps them for the next turn (a connection that is closing, whose
// input is discarded, counts as all consumed).
size_t Server::Impl::feed_frames(Connection* c, uint8_t* data, size_t n) {
  FrameEvents ev{this, c};
  const size_t used = c->ws.consume(data, n, ev);
  const bool reading = c->state == ConnState::Open || c->state == ConnState::Closing;
  if (!reading || c->ws.finished()) return n;
  if (used < n && ev.left <= 0) c->bulk = true;
  return used;
}

// Bytes that came with the upgrade request: a turn of their own.
void Server::Impl::on_ws_bytes(Connection* c, uint8_t* data, size_t n) {
  const size_t used = feed_frames(c, data, n);
  if (used < n) {
    c->keep_input(data + used, n - used);
    take_turn_later(c);
  }
}

// ------------------------------------------------------------------- output

// The common case of an echo or a fan-out, taken before enqueue's general
// checks (about half of a broadcast's instructions per receiver went to
// them): an open connection without compression and without greeting bytes,
// whose queue stays within half the cap with f. None of enqueue's other
// outcomes can apply then (no cap, no soft limit, nothing to compress), so
// the result is the same as enqueue's.
inline bool Server::Impl::enqueue_plain(Connection* c, SharedFrame* f) {
  if (c->state != ConnState::Open || c->ws.deflate() || c->greeting || c == opening ||
      c->out.bytes() + f->size() > cfg.max_output_buffer / 2)
    return false;
  c->out.push(f);
  ctr.messages_out += (uint8_t(f->data()[0]) & 0x0Fu) - 1u < 2u;  // text or binary
  c->busy = true;
  mark_dirty(c);
  return true;
}

int Server::Impl::enqueue(Connection* c, SharedFrame* f) {
  if (enqueue_plain(c, f)) return kOk;
  const size_t limit = cfg.max_output_buffer;
  FrameRef own;  // a frame compressed for c alone (dedicated mode)
  if (c->ws.deflate() && f->compressible() && c->state == ConnState::Open) {
    f = compressed_for(c, f, &own);
    ctr.compressed_frames_out += !f->compressible();
  }
  // Not capped: an HTTP response (never dropped; HTTP output is bounded by
  // the next request waiting while the queue is busy, see on_http_bytes),
  // and the greeting while on_open runs. The greeting's bytes stay exempt
  // until written (greeting_bytes), nothing queued after them is.
  const bool exempt = c == opening || c->state == ConnState::Http;
  auto capped = [&] { return c->out.bytes() - c->greeting_bytes(); };
  auto over_cap = [&] { return !exempt && capped() != 0 && capped() + f->size() > limit; };
  // Over the cap only because its turn to be flushed has not come yet (a
  // burst within an iteration, a long flush list): write what the kernel
  // takes now; a client is too slow only if the kernel refuses. Its
  // on_drain, if due, comes from the regular flush (it stays dirty): host
  // code must not run inside a send or a broadcast loop.
  if (c->writable && over_cap() && !write_out(c)) return kENoConn;
  if (over_cap()) {
    if (cfg.slow_policy == SlowConsumerPolicy::Drop) {
      c->count_dropped();
      ++ctr.slow_consumer_drops;
      // Deflated with c's own context, which now holds a message the
      // client will never see: the next one starts a new stream.
      if (own) c->cold().deflate->deflater.release();
      return kEFull;
    }
    // Too slow: what it has not started receiving is dropped and it is
    // closed (a close already queued is kept).
    if (c->state == ConnState::Open) {
      ++ctr.slow_consumer_closes;
      log_slow_close(c);
      c->out.drop_unstarted(c->greeting_bytes());
      send_close(c, 1008, "too slow: output queue full");
      linger(c);  // it does not read, so do not wait for its close reply
    }
    return kEFull;
  }
  c->out.push(f);
  // Data frames to a WebSocket (the header's opcode: text 1, binary 2).
  ctr.messages_out += c->state == ConnState::Open && (uint8_t(f->data()[0]) & 0x0Fu) - 1u < 2u;
  c->busy = true;
  mark_dirty(c);
  if (!exempt && capped() > limit / 2) {
    c->over_soft = true;
    return kQueuedOverLimit;
  }
  return kOk;
}

void Server::Impl::mark_dirty(Connection* c) {
  if (!c->dirty) {
    // Output for the connection whose message is being handled (its echo,
    // its own copy of a broadcast) is flushed before the fan-out to the
    // others: the sender hears back, and can send again, while the loop
    // is still writing to everyone else, instead of after all of them.
    (c == serving ? dirty_first : dirty).push_back(c);
    c->dirty = true;  // after: the flag says it is listed
  }
}

void Server::Impl::send_close(Connection* c, uint16_t code, std::string_view reason) {
  std::string payload = code ? protocol::close_payload(code, reason) : std::string();
  FrameRef f(SharedFrame::make(Opcode::Close, payload));
  c->out.push(f.get());  // never subject to the output cap
  mark_dirty(c);
  c->close_sent = true;
  if (!c->close_code) {
    c->close_code = code ? code : 1005;
    c->set_close_reason(reason);
  }
  if (c->state == ConnState::Open) {
    leave_open(c);
    set_state(c, ConnState::Closing);
    c->deadline_ms = close_deadline();  // none when disabled
  }
}

bool Server::Impl::write_out(Connection* c) {
  if (c->is_tls) return tls_write_out(c);
  while (!c->out.empty() && c->writable) {
    iovec iov[64];
    int n = c->out.gather(iov, 64);
    ssize_t w;
    size_t total = 0;
    for (int i = 0; i < n; ++i) total += iov[i].iov_len;
    if (n > 1 && total <= kCoalesceMax) {
      // Many small frames (an echo burst, several broadcasts): one copy
      // into the loop's buffer is cheaper than the kernel walking an
      // iovec per frame, and it is still one syscall and one segment.
      uint8_t* p = wbuf.get();
      for (int i = 0; i < n; ++i) {
        std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
      }
      iovec one{wbuf.get(), total};
      w = net::plain::write_gathered(c->fd, &one, 1);
    } else {
      w = net::plain::write_gathered(c->fd, iov, n);
    }
    if (w > 0) {
      ctr.bytes_out += uint64_t(w);
      c->out.consume(size_t(w));
      if (c->greeting) c->greeting_written(size_t(w));
      continue;
    }
    if (w == net::kAgain) {
      c->writable = false;
      return true;
    }
    abort(c, c->close_sent ? c->close_code : 1006);  // EPIPE, ECONNRESET
    return false;
  }
  return true;
}

void Server::Impl::flush(Connection* c) {
  if (!write_out(c)) return;
  if (c->http_hold && !continue_http(c)) return;
  if (!c->out.empty()) return;
  if (c->is_tls && !tls_drained(c)) return;  // ciphertext still pending, or no handshake yet
  if (c->over_soft) {
    c->over_soft = false;
    if (c->state == ConnState::Open) handler->on_drain(c->id);
  }
  if (c->state == ConnState::Lingering && !c->shut_done) {
    if (c->is_tls && !tls_shutdown(c)) return;  // close_notify first, FIN once it is out
    c->shut_done = true;
    net::plain::shutdown(c->fd);
    if (c->peer_eof) abort(c, 1006);  // its FIN came first: no other event will
  }
}

namespace {
// Takes the first `n` entries out of a flush list however the loop over
// them ends: their flags are cleared, and a list entry without its flag
// would outlive its connection.
struct Flushed {
  std::vector<Connection*>& list;
  size_t n = 0;
  ~Flushed() { list.erase(list.begin(), list.begin() + ptrdiff_t(n)); }
};
}  // namespace

void Server::Impl::flush_all() {
  {
    Flushed done{dirty_first};
    while (done.n < dirty_first.size()) {
      Connection* c = dirty_first[done.n++];
      c->dirty = false;
      if (c->state != ConnState::Dead) flush(c);  // on_drain may run
    }
  }
  // A long flush list (a fan-out to a big room) is written over a few
  // iterations, with new input read in between: the members still waiting
  // then get the messages that arrived meanwhile in the same write. Under
  // load each write carries more messages; no write is delayed, since the
  // loop does not wait while the list is not empty (see poll_once).
  if (round_left == 0 || round_left > dirty.size()) {
    round_left = dirty.size();
    round_step = std::max(kFlushMinStep, (round_left + kFlushSteps - 1) / kFlushSteps);
  }
  size_t take = std::min(round_step, round_left);
  round_left -= take;
  // Index loop: on_drain may make more connections dirty (they go last).
  Flushed done{dirty};
  while (done.n < take) {
    Connection* c = dirty[done.n++];
    c->dirty = false;
    if (c->state != ConnState::Dead) flush(c);
  }
}

// ----------------------------------------------------- direct (loop thread)

int Server::Impl::direct_send(ConnId id, Opcode op, std::string_view payload) {
  Connection* c = find_open(id);
  if (!c) return kENoConn;
  FrameRef f(SharedFrame::make(op, payload));
  return enqueue(c, f.get());
}

int Server::Impl::direct_broadcast(SharedFrame* f, ConnId exclude) {
  int n = 0;
  ++ctr.broadcasts;
  // Backwards: a receiver closed for being too slow is swap-removed with the
  // last element, which was already visited.
  for (size_t i = open.size(); i-- > 0;) {
    if (i >= open.size()) continue;
    Connection* c = open[i];
    if (c->id == exclude) continue;
    if (enqueue_plain(c, f) || enqueue(c, f) >= 0) ++n;
  }
  ctr.broadcast_deliveries += uint64_t(n);
  return n;
}

int Server::Impl::direct_close(ConnId id, uint16_t code, std::string_view reason) {
  Connection* c = find_open(id);
  if (!c) return kENoConn;
  send_close(c, code, reason);
  return kOk;
}

}  // namespace chatws
