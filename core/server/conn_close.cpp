// The end of a connection: it leaves the open list, the host hears of it
// (on_close, after the current I/O step), the socket lingers for the peer's
// FIN, then it is released and its memory given back; and the connection
// details a host asks for (ConnInfo), built on first use.
#include <malloc.h>
#include <unistd.h>

#include <mutex>

#include "server/server_impl.h"

namespace chatws {

void Server::Impl::leave_open(Connection* c) {
  if (c->open_index == Connection::kNotOpen) return;
  Connection* last = open.back();
  open[c->open_index] = last;
  last->open_index = c->open_index;
  open.pop_back();
  c->open_index = Connection::kNotOpen;
  ws_count.fetch_sub(1, std::memory_order_relaxed);
}

// The WebSocket is over (close frames exchanged or the connection failed):
// the host hears about it now; the socket lingers until the peer's FIN.
void Server::Impl::linger(Connection* c) {
  leave_open(c);
  set_state(c, ConnState::Lingering);
  c->deadline_ms = linger_deadline();
  mark_dirty(c);
  // on_close runs after the current I/O step, never inside a send or a
  // broadcast loop, so host code cannot re-enter those mid-iteration.
  close_reports.push_back(c->id);
}

void Server::Impl::run_close_reports() {
  for (size_t i = 0; i < close_reports.size(); ++i) {
    if (Connection* c = by_id.find(close_reports[i])) report_close(c);
  }
  close_reports.clear();
}

void Server::Impl::report_close(Connection* c) {
  if (!c->opened || c->close_reported) return;
  c->close_reported = true;
  ++ctr.closes[close_slot(c->close_code ? c->close_code : 1006)];
  // The host frees what it attached to the connection here: its info and
  // user data answer until the callback returns (visible()), whichever
  // path closed it.
  struct Reporting {
    Connection*& slot;
    Connection* outer;
    ~Reporting() { slot = outer; }
  } scope{reporting, reporting};
  reporting = c;
  handler->on_close(c->id, c->close_code ? c->close_code : 1006, c->close_reason());
}

void Server::Impl::abort(Connection* c, uint16_t code) {
  if (c->state == ConnState::Dead) return;
  leave_open(c);
  if (!c->close_code || !c->close_sent) c->close_code = code;
  if (code == 1006 && !c->close_received && !c->close_sent) c->set_close_reason({});
  set_state(c, ConnState::Dead);
  dead.push_back(c);
}

void Server::Impl::destroy(Connection* c) {
  // First, while the connection is still whole and found by its id: the
  // host's on_close may read its info and user data (issue 19 item 9).
  // Released after it even if on_close throws (nothing below can).
  struct Release {
    Impl* impl;
    Connection* c;
    ~Release() { impl->release(c); }
  } release_after{this, c};
  report_close(c);
}

void Server::Impl::release(Connection* c) noexcept {
  // Still dirty only if it died during destroy_dead() (another's on_close
  // closed it) after that function's one-pass removal.
  if (c->dirty) {
    auto it = std::find(dirty.begin(), dirty.end(), c);
    if (it != dirty.end()) dirty.erase(it);
    else dirty_first.erase(std::find(dirty_first.begin(), dirty_first.end(), c));
  }
  if (c->read_pending) {
    // In read_pending, or in the turns an unwound iteration left (never
    // while serve_turns walks them: nothing is destroyed then).
    auto it = std::find(read_pending.begin(), read_pending.end(), c);
    if (it != read_pending.end()) {
      read_pending.erase(it);
    } else {
      std::erase(turns, c);
    }
  }
  if (c->upgrade_pending) drop_pending(c);
  if (c->paused) std::erase_if(paused, [c](const std::pair<Connection*, int64_t>& h) { return h.first == c; });
  poller.remove(c->fd);
  ::close(c->fd);
  if (accept_paused) accept_retry_ms = now_ms;  // a descriptor is free: retry now
  by_id.erase(c->id);
  open_gauge.fetch_sub(1, std::memory_order_relaxed);
  counts->remove_live();  // Dead, so not lingering: counted since admit()
  paths.release(c->path_ref);
  if (c->counted_ip) {
    try {  // an IPv6 group is a string that may not fit in place
      counts->remove_address(net::address_group(c->address(), cfg.ipv6_prefix_length));
    } catch (...) {
      // Out of memory: that address keeps one count too many, nothing worse.
    }
  }
  --state_count[size_t(ConnState::Dead)];
  pool.destroy(c);
}

void Server::Impl::destroy_dead() {
  // The flush list can be long (see flush_all): take every dead connection
  // out of it in one pass rather than a search per connection.
  bool any_dirty = false;
  for (Connection* c : dead) any_dirty |= c->dirty;
  if (any_dirty) {
    auto gone = [](Connection* c) {
      if (c->state != ConnState::Dead) return false;
      c->dirty = false;
      return true;
    };
    std::erase_if(dirty, gone);
    std::erase_if(dirty_first, gone);
  }
  // on_close may close other connections: index loop over a growing list.
  // An on_close that throws leaves the ones not yet destroyed for the next
  // call, never one destroyed twice.
  {
    struct Destroyed {
      std::vector<Connection*>& list;
      size_t n = 0;
      ~Destroyed() { list.erase(list.begin(), list.begin() + ptrdiff_t(n)); }
    } done{dead};
    while (done.n < dead.size()) destroy(dead[done.n++]);
  }
  if (by_id.empty() && had_connections) {
    // The last client left: give the memory of the burst back to the OS
    // (pooled frames, allocator arenas) so an idle server returns to its
    // baseline instead of staying at its peak.
    had_connections = false;
    SharedFrame::trim_pool();
    trim_allocator();
  }
}

// Under a sanitizer glibc's malloc serves nothing of ours, and its first
// use initialises it without a lock: two loops trimming at once corrupted
// its arena list (a crash at thread exit). Not trimmed there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHATWS_SANITIZED_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHATWS_SANITIZED_MALLOC 1
#endif
#endif

void Server::Impl::trim_allocator() {
#if defined(__GLIBC__) && !defined(CHATWS_SANITIZED_MALLOC)
  // malloc_trim is process-wide: one loop's trim serves every loop, so a
  // loop that finds another trimming skips it rather than queue behind the
  // arena locks.
  static std::mutex trimming;
  std::unique_lock<std::mutex> lock(trimming, std::try_to_lock);
  if (lock.owns_lock()) malloc_trim(0);
#endif
}

ConnInfo* Server::Impl::conn_info(Connection* c) {
  ConnInfo* info = c->built_info();
  if (!info) {
    auto built = std::make_unique<ConnInfo>();
    built->remote_address = c->address();
    built->remote_port = c->remote_port;
    if (c->path_ref != PathTable::kNone) {
      built->path = paths.get(c->path_ref);
      paths.release(c->path_ref);
      c->path_ref = PathTable::kNone;
    } else {
      built->path.swap(c->cold().path);
    }
    if (c->subprotocol != Connection::kNoSubprotocol)
      built->subprotocol = upgrade_cfg.subprotocols[c->subprotocol];
    info = built.get();
    c->cold().info = std::move(built);
  }
  info->queued_bytes = c->out.bytes();
  info->dropped = c->dropped();
  return info;
}

}  // namespace chatws
