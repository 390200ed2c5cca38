// The host's upgrade hook (issue 12): the request view it sees, its verdict
// (accept, with an identity, user data and extra headers; reject with its
// own status, reason, body and headers; pending until a resolve call from
// any thread), and the completion of an accepted upgrade.
//
// A pending upgrade keeps its connection in Http with the head parsed in
// place (the parser is fed nothing more: the views stay valid); bytes that
// arrive meanwhile are kept aside, bounded by max_request_size. Its entry in
// Impl::pending is under a lock so that a resolve call from another thread
// knows at once whether the request still waits (kENoConn if not).
#include <algorithm>

#include "server/server_impl.h"

namespace chatws {

bool Server::Impl::handshake_allowed(Connection* c) {
  const RateLimit l{cfg.max_handshakes_per_second_per_ip, cfg.max_handshakes_per_second_per_ip};
  if (!l.enabled()) return true;
  if (counts->take_handshake(net::address_group(c->address(), cfg.ipv6_prefix_length), l, TokenBucket::now_ms()))
    return true;
  count_reject(c, RejectReason::Rate, 429, "too many handshakes from this address");
  respond_and_close(c, 429, "too many handshakes from this address", "Retry-After: 1\r\n");
  return false;
}

bool Server::Impl::run_upgrade_hook(Connection* c, const protocol::HttpRequest& req,
                                    protocol::UpgradeResult& u, UpgradeVerdict* v) {
  UpgradeRequest r;
  r.id = c->id;
  r.method = req.method;
  r.raw_path = req.path;
  r.query = protocol::query_of(req.target);
  // What the host is shown must be what was sent: a path or query that does
  // not decode is refused here rather than shown half-decoded.
  if (!protocol::percent_decode(req.path, false, &r.path)) {
    respond_and_close(c, 400, "malformed percent-encoding in the request path");
    return false;
  }
  if (!protocol::parse_query(r.query, &r.params)) {
    respond_and_close(c, 400, "malformed percent-encoding in the query string");
    return false;
  }
  r.headers = &req.headers;
  protocol::parse_cookies(req, &r.cookies);
  r.remote_address = c->address();
  r.remote_port = c->remote_port;
  r.offered = protocol::offered_subprotocols(req);
  r.subprotocol = u.subprotocol;
  {
    // Registered before the hook runs: a host that hands the id to another
    // thread inside the hook may see it resolved before the hook returns.
    std::lock_guard<std::mutex> lock(pending_mu);
    pending[c->id].in_hook = true;
  }
  handler->on_upgrade_request(r, v);
  bool resolved_early = false;
  {
    std::lock_guard<std::mutex> lock(pending_mu);
    auto it = pending.find(c->id);
    if (v->kind == UpgradeVerdict::Pending && c->state == ConnState::Http && it != pending.end()) {
      it->second.in_hook = false;
      it->second.upgrade = std::move(u);
      resolved_early = it->second.resolved;
      c->upgrade_pending = true;
    } else if (it != pending.end()) {
      pending.erase(it);  // decided in the hook: a resolve meanwhile is moot
    }
  }
  if (c->upgrade_pending) {
    if (resolved_early) apply_resolution(c->id);
    return false;
  }
  if (c->state != ConnState::Http) return false;  // the host closed it meanwhile (not expected)
  if (std::string why = validate_verdict(*v); !why.empty()) {
    log(LogLevel::Error, "upgrade hook answer refused (500 sent instead): " + why);
    respond_and_close(c, 500, "upgrade hook gave an invalid answer");
    return false;
  }
  switch (v->kind) {
    case UpgradeVerdict::Accept:
      return true;
    case UpgradeVerdict::Reject:
      send_reject(c, *v);
      return false;
    case UpgradeVerdict::Pending:
      return false;  // handled above
  }
  return false;
}

void Server::Impl::send_reject(Connection* c, const UpgradeVerdict& v) {
  count_reject(c, RejectReason::Hook, v.status, v.reason.empty() ? "refused by the upgrade hook" : v.reason);
  FrameRef f(SharedFrame::raw(reject_response(v)));
  enqueue(c, f.get());
  set_state(c, ConnState::Lingering);
  c->deadline_ms = linger_deadline();
  c->end_http();
}

bool Server::Impl::complete_upgrade(Connection* c, const protocol::HttpRequest& req,
                                    protocol::UpgradeResult& u, UpgradeVerdict* v,
                                    std::string_view early) {
  if (!v->headers.empty()) u.response = with_headers(u.response, header_lines(v->headers));
  // Before any frame (the leftover below included) is parsed.
  c->ws.set_max_message_size(handler->message_limit(req.path, u.subprotocol));
  if (ConnInfo* i = c->built_info()) {
    i->path = req.path;  // built early (not expected)
  } else if ((c->path_ref = paths.acquire(req.path)) == PathTable::kNone) {
    c->cold().path.assign(req.path);  // the table is full
  }
  if (!u.subprotocol.empty()) {
    const auto& list = upgrade_cfg.subprotocols;
    size_t i = size_t(std::find(list.begin(), list.end(), u.subprotocol) - list.begin());
    if (i < list.size() && i < Connection::kNoSubprotocol) {
      c->subprotocol = uint8_t(i);
    } else {
      conn_info(c)->subprotocol = std::move(u.subprotocol);  // not expected
    }
  }
  // What the hook bound, and the query (the host reads both later through
  // the ConnInfo): only connections that have one of them get it built.
  std::string_view query = protocol::query_of(req.target);
  if (v->has_identity || v->user_data || !query.empty()) {
    ConnInfo* i = conn_info(c);
    i->has_identity = v->has_identity;
    i->identity = std::move(v->identity);
    i->query.assign(query);
    if (v->user_data) i->user_data = v->user_data;
  }
  std::string leftover(c->http()->leftover());
  leftover.append(early);
  {
    // The 101 and what on_open queues (e.g. a room's history, which may
    // exceed the cap) are the joiner's greeting, not a backlog: not capped
    // while they are queued.
    opening = c;
    struct Opening {
      Connection*& slot;
      ~Opening() { slot = nullptr; }
    } reset{opening};
    // Nothing below may fail between queueing the 101 and the connection
    // being Open and listed (or it would be answered twice).
    if (open.size() == open.capacity()) open.reserve(2 * open.size() + 8);
    FrameRef f(SharedFrame::raw(u.response));
    enqueue(c, f.get());
    if (u.deflate) start_deflate(c, u.deflate_params);
    set_state(c, ConnState::Open);
    c->deadline_ms = 0;
    c->opened = true;
    c->open_index = uint32_t(open.size());
    open.push_back(c);
    ws_count.fetch_add(1, std::memory_order_relaxed);
    ++ctr.handshakes_accepted;
    handler->on_open(c->id);
  }
  // The greeting (with any response before it) is then exempt from the cap
  // once, by its own size, until it is written: the cap applies to what
  // comes after it, and a slow-consumer close keeps it (the 101 must
  // precede the close frame).
  if (c->state != ConnState::Dead) c->set_greeting(c->out.bytes());
  c->end_http();
  if (!leftover.empty() && c->state == ConnState::Open)
    on_ws_bytes(c, reinterpret_cast<uint8_t*>(leftover.data()), leftover.size());
  return false;
}

void Server::Impl::keep_early_input(Connection* c, const uint8_t* data, size_t n) {
  // A client must wait for the 101 before it sends frames (RFC 6455 4.1);
  // what a hasty one sends is kept for after the decision, within the size
  // a request head may have.
  std::unique_lock<std::mutex> lock(pending_mu);
  auto it = pending.find(c->id);
  if (it == pending.end()) return;  // resolved and applied meanwhile (not expected)
  if (it->second.early.size() + n > cfg.max_request_size) {
    pending.erase(it);
    lock.unlock();
    c->upgrade_pending = false;
    respond_and_close(c, 400, "data sent before the upgrade was answered");
    return;
  }
  it->second.early.append(reinterpret_cast<const char*>(data), n);
}

void Server::Impl::drop_pending(Connection* c) {
  std::lock_guard<std::mutex> lock(pending_mu);
  pending.erase(c->id);
  c->upgrade_pending = false;
}

void Server::Impl::pending_timed_out(Connection* c) {
  drop_pending(c);
  count_reject(c, RejectReason::Hook, 503, "the upgrade was not decided in time");
  respond_and_close(c, 503, "the upgrade was not decided in time",
                    "Retry-After: 1\r\n");
}

void Server::Impl::apply_resolution(ConnId id) {
  PendingUpgrade p;
  {
    std::lock_guard<std::mutex> lock(pending_mu);
    auto it = pending.find(id);
    if (it == pending.end() || !it->second.resolved || it->second.in_hook) return;
    p = std::move(it->second);
    pending.erase(it);
  }
  Connection* c = by_id.find(id);
  if (!c || !c->upgrade_pending || c->state != ConnState::Http) return;
  c->upgrade_pending = false;
  if (state.load() != LoopState::Running) {
    respond_and_close(c, 503, "server is shutting down");
    return;
  }
  if (p.verdict.kind == UpgradeVerdict::Reject) {
    send_reject(c, p.verdict);
  } else {
    complete_upgrade(c, c->http()->request(), p.upgrade, &p.verdict, p.early);
  }
  if (c->state != ConnState::Dead) mark_dirty(c);
}

int Server::resolve_upgrade(ConnId id, UpgradeVerdict verdict, std::string* error) {
  if (verdict.kind == UpgradeVerdict::Pending) {
    *error = "a resolve answer must accept or reject";
    return kEInval;
  }
  if (std::string why = validate_verdict(verdict); !why.empty()) {
    *error = std::move(why);
    return kEInval;
  }
  Impl* l = loop_of(id);  // the pending request is its connection's loop's
  {
    std::lock_guard<std::mutex> lock(l->pending_mu);
    auto it = l->pending.find(id);
    if (it == l->pending.end() || it->second.resolved) {
      *error = "no pending upgrade with this id (its client left, it timed out, or it was "
               "already resolved)";
      return kENoConn;
    }
    it->second.resolved = true;
    it->second.verdict = std::move(verdict);
  }
  LoopAccess loop(l);
  if (loop) {
    l->apply_resolution(id);
  } else {
    Impl::post_to(l, Command{Command::Resolve, protocol::Opcode::Text, 0, id, {}, {}});
  }
  return kOk;
}

const std::string* Server::identity(ConnId id) const {
  Connection* c = loop_of(id)->by_id.find(id);
  if (!c || !c->opened || c->state == ConnState::Dead) return nullptr;
  ConnInfo* i = c->built_info();
  return i && i->has_identity ? &i->identity : nullptr;
}

}  // namespace chatws
