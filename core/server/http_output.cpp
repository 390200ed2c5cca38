// HTTP output: responses go out in order and none is dropped, with a bound
// per connection instead of the WebSocket output cap. A connection whose
// queue is past the window (pipelined requests from a client that reads
// late) or that is sending a file parses and reads no further request until
// that output is written; a file is read in chunks into pooled frames as the
// socket drains, so each connection holds at most a window of it, whatever
// the file's size. Reading goes through http::FileBody (not sendfile), so
// it works the same over any transport.
#include <algorithm>

#include "server/server_impl.h"

namespace chatws {

namespace {

// Progress of a response resets its connection's deadline: a download is
// cut when it stalls, not when it is long.
int64_t stall_deadline(const ServerConfig& cfg, int64_t now_ms) {
  return cfg.idle_timeout_ms > 0 ? now_ms + cfg.idle_timeout_ms : 0;
}

}  // namespace

void Server::Impl::send_file(Connection* c, http::FileBody&& body) {
  c->set_file(std::make_unique<http::FileBody>(std::move(body)));
  fill_file(c);  // a small file is read whole now: the next request need not wait
  if (!c->file()) return;
  c->http_hold = true;
  c->deadline_ms = stall_deadline(cfg, now_ms);
}

// Tops the queue up to the window with the file's next chunks (one read).
// A file that changed ends the response short: the connection closes.
void Server::Impl::fill_file(Connection* c) {
  http::FileBody& body = *c->file();
  const size_t window = std::max(http_window(), kFileChunk);
  const size_t queued = c->out.bytes();
  const size_t room = window > queued ? window - queued : 0;
  uint64_t want = room - room % kFileChunk;  // whole chunks: no small reads
  if (body.left() <= room) want = body.left();
  want = std::min<uint64_t>(want, body.left());
  if (want == 0) return;

  FrameRef frames[http::FileBody::kMaxBuffers];
  iovec iov[http::FileBody::kMaxBuffers];
  int n = 0;
  for (uint64_t at = 0; at < want; at += kFileChunk, ++n) {
    const size_t len = size_t(std::min<uint64_t>(kFileChunk, want - at));
    frames[n] = FrameRef(SharedFrame::buffer(len));
    iov[n] = iovec{frames[n]->mutable_data(), len};
  }
  const bool ok = body.read_next(iov, n);
  if (ok) {
    for (int i = 0; i < n; ++i) c->out.push_adopt(frames[i].release());
    mark_dirty(c);
    c->deadline_ms = stall_deadline(cfg, now_ms);
    if (body.left() > 0) return;
  }
  // Done, or the file changed or shrank under us: its head announced a
  // length this response can no longer have, so it ends short and the
  // connection closes after what is queued (the client sees the truncation).
  c->end_file();
  if (!ok && c->state == ConnState::Http) {
    set_state(c, ConnState::Lingering);
    c->end_http();
    mark_dirty(c);
  }
  if (c->state == ConnState::Lingering) {
    c->deadline_ms = linger_deadline();
  } else if (c->state == ConnState::Http) {
    c->deadline_ms = cfg.handshake_timeout_ms > 0 ? now_ms + cfg.handshake_timeout_ms : 0;
  }
}

// Called by flush() for a held connection, after a write: refills the file
// (a few rounds, then the other connections' turn), and once the response
// is out and the queue back under half the window, serves the requests that
// waited. True when the connection has no HTTP output in progress left.
bool Server::Impl::continue_http(Connection* c) {
  for (int round = 0; c->file(); ++round) {
    if (!c->writable) return false;  // EPOLLOUT brings it back
    if (round == kFileRounds) {
      mark_dirty(c);  // more next iteration
      return false;
    }
    fill_file(c);
    if (!write_out(c)) return false;
  }
  if (c->state != ConnState::Http) {  // Lingering: the rest of the input is discarded
    c->http_hold = false;
    return true;
  }
  if (c->out.bytes() > http_window() / 2) return false;
  c->http_hold = false;
  on_http_bytes(c, nullptr, 0);  // requests already buffered
  if (c->state == ConnState::Dead) return false;
  if (c->peer_eof) {
    if (c->http_hold) return false;  // more requests wait for this output
    if (c->state == ConnState::Http) finish_half_closed(c);
    return true;  // nothing more will come from the socket
  }
  take_turn_later(c);  // and those still in the socket
  return !c->http_hold;
}

}  // namespace chatws
