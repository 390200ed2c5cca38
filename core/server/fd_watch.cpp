// Descriptors the handler watches in the loop (Server::watch_fd): the
// handler's own I/O (a Redis connection, its timer) served on the loop
// thread, level-triggered, next to the connections.
#include <cerrno>
#include <cstring>
#include <exception>

#include "server/server_impl.h"

namespace chatws {

FdWatch* Server::Impl::find_watch(uint64_t id) const {
  for (const auto& w : watches)
    if (w->id == id) return w.get();
  return nullptr;
}

void Server::Impl::on_watch_event(const net::PollEvent& ev) {
  // Unwatched since the wait returned: its event is stale.
  FdWatch* w = find_watch(kWatchTokenTop - ev.token);
  if (!w) return;
  const bool readable = w->want_read && (ev.readable || ev.hangup);
  const bool writable = w->want_write && (ev.writable || ev.hangup);
  if (!readable && !writable) return;
  // The callback may unwatch itself: its object stays in retired_watches
  // until the end of the iteration, so it is never destroyed while it runs.
  try {
    w->cb(readable, writable);
  } catch (const std::exception& e) {
    log_noexcept(LogLevel::Error, std::string("watched descriptor callback threw: ") + e.what());
  } catch (...) {
    log_noexcept(LogLevel::Error, "watched descriptor callback threw");
  }
}

int Server::watch_fd(int fd, bool want_read, bool want_write, FdCallback cb, uint64_t* id,
                     std::string* error) {
  if (fd < 0 || !cb || !id) return kEInval;
  LoopAccess loop(*this);
  if (!loop) return kEThread;
  Impl* l = loop.impl();  // the calling thread's loop
  if (l->state.load() == LoopState::Stopped) return kEStopped;
  if (l->next_watch_id >= Impl::kMaxWatchId) return kESystem;  // 2^40 watches: never
  auto w = std::make_unique<FdWatch>();
  w->id = l->next_watch_id;
  w->fd = fd;
  w->want_read = want_read;
  w->want_write = want_write;
  w->cb = std::move(cb);
  l->watches.reserve(l->watches.size() + 1);
  if (want_read || want_write) {
    if (!l->poller.set_level(fd, Impl::kWatchTokenTop - w->id, want_read, want_write, false)) {
      if (error) *error = std::string("cannot watch descriptor: ") + std::strerror(errno);
      return kESystem;
    }
    w->in_set = true;
  }
  ++l->next_watch_id;
  *id = w->id;
  l->watches.push_back(std::move(w));  // reserved: no failure once in the set
  return kOk;
}

int Server::set_fd_interest(uint64_t id, bool want_read, bool want_write) {
  LoopAccess loop(*this);
  if (!loop) return kEThread;
  Impl* l = loop.impl();  // the calling thread's loop
  FdWatch* w = l->find_watch(id);
  if (!w) return kENoConn;
  if (w->want_read == want_read && w->want_write == want_write) return kOk;
  if (!want_read && !want_write) {
    if (w->in_set) l->poller.remove(w->fd);
    w->in_set = false;
  } else {
    if (!l->poller.set_level(w->fd, Impl::kWatchTokenTop - id, want_read, want_write, w->in_set))
      return kESystem;
    w->in_set = true;
  }
  w->want_read = want_read;
  w->want_write = want_write;
  return kOk;
}

int Server::unwatch_fd(uint64_t id) {
  LoopAccess loop(*this);
  if (!loop) return kEThread;
  Impl* l = loop.impl();  // the calling thread's loop
  auto& ws = l->watches;
  for (size_t i = 0; i < ws.size(); ++i) {
    if (ws[i]->id != id) continue;
    l->retired_watches.reserve(l->retired_watches.size() + 1);
    if (ws[i]->in_set) l->poller.remove(ws[i]->fd);
    l->retired_watches.push_back(std::move(ws[i]));
    ws.erase(ws.begin() + ptrdiff_t(i));
    return kOk;
  }
  return kENoConn;
}

}  // namespace chatws
