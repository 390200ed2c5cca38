// The loop's side of a TLS connection: the handshake, reading records,
// writing the output queue as records, close_notify, and the clients that
// do not speak TLS. The rest of the server sees a TLS connection only as
// is_tls and these entry points (read_ready and write_out branch here).
#include <algorithm>
#include <string>

#include "server/server_impl.h"

namespace chatws {

namespace {
std::string peer(const Connection* c) {
  return c->address() + ":" + std::to_string(c->remote_port);
}
}  // namespace

bool Server::Impl::start_tls(Connection* c) {
  net::TlsTransport* t = net::TlsTransport::create(tls->new_ssl(), c->fd, tls_staging.get());
  if (!t) return false;
  c->set_tls(t);
  return true;
}

bool Server::Impl::tls_handshaking(const Connection* c) const {
  return c->is_tls && !c->tls()->established();
}

void Server::Impl::tls_read_ready(Connection* c) {
  net::TlsTransport* t = c->tls();
  if (c->shut_done || t->failed()) {
    discard_input(c);
    return;
  }
  if (!t->established()) {
    std::string why;
    switch (t->handshake(&why)) {
      case net::TlsHandshake::Again:
        return;  // the deadline set at accept bounds a slow handshake
      case net::TlsHandshake::Done:
        ++ctr.tls_handshakes;
        // Output queued meanwhile (an answer at the connection limit) can go now.
        if (!c->out.empty()) mark_dirty(c);
        break;
      case net::TlsHandshake::Closed:
        abort(c, 1006);
        return;
      case net::TlsHandshake::PlainHttp:
        ++ctr.tls_failures;
        tls_refuse_plain_http(c);
        return;
      case net::TlsHandshake::Failed:
        ++ctr.tls_failures;
        log(LogLevel::Debug, "TLS handshake with " + peer(c) + " failed: " + why);
        abort(c, 1006);
        return;
    }
  }
  // The socket's turn, as for plain: one read (here of as many records as
  // fit kReadBufferSize), its frames up to the turn's budget, the rest kept.
  ssize_t n = t->read(rbuf.get(), kReadBufferSize);
  if (n > 0) {
    // Records may be buffered in OpenSSL, not the socket: no new edge would come for them.
    took_input(c, size_t(n), !t->input_drained() || c->peer_closed);  // (see read_turn)
    return;
  }
  if (n == 0) {
    // Their close_notify gets ours (best effort) before the socket goes.
    if (t->clean_close()) t->shutdown();
    peer_ended(c);
    return;
  }
  if (n == net::kAgain) return;
  abort(c, 1006);  // a bad record: OpenSSL sent the alert
}

// write_gathered coalesces small frames into one record in wbuf.
static_assert(Server::Impl::kCoalesceMax >= 16384, "wbuf must hold a whole TLS record");

bool Server::Impl::tls_write_out(Connection* c) {
  net::TlsTransport* t = c->tls();
  if (!c->writable) return true;
  auto failed = [&] {
    abort(c, c->close_sent ? c->close_code : 1006);
    return false;
  };
  if (t->wants_write()) {
    if (!t->flush()) return failed();
    if (t->wants_write()) {
      c->writable = false;
      return true;
    }
  }
  if (!t->established() || t->failed()) return true;  // output waits for the handshake
  while (!c->out.empty()) {
    iovec iov[64];
    int n = c->out.gather(iov, 64);
    // wbuf (kCoalesceMax, 16 KiB) is the scratch where small frames are
    // gathered into one record.
    ssize_t w = t->write_gathered(iov, n, wbuf.get());
    if (w < 0) return failed();
    ctr.bytes_out += uint64_t(w);
    c->out.consume(size_t(w));
    if (c->greeting) c->greeting_written(size_t(w));  // as write_out does
    if (t->wants_write()) {
      c->writable = false;
      return true;
    }
  }
  return true;
}

void Server::Impl::tls_tick(Connection* c) {
  if (net::TlsTransport* t = c->tls()) t->tick(c->busy);
}

bool Server::Impl::tls_drained(Connection* c) const {
  const net::TlsTransport* t = c->tls();
  return t->established() && !t->wants_write();
}

bool Server::Impl::tls_shutdown(Connection* c) {
  net::TlsTransport* t = c->tls();
  if (!t->shutdown()) {
    abort(c, c->close_code ? c->close_code : 1006);
    return false;
  }
  if (t->wants_write()) {
    c->writable = false;  // the FIN follows on the next writable edge
    return false;
  }
  return true;
}

void Server::Impl::tls_refuse_plain_http(Connection* c) {
  // A clear answer in the only language the client speaks, then the close.
  static constexpr std::string_view k400 =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 44\r\nConnection: close\r\n\r\n"
      "This port speaks TLS: use https:// or wss://";
  log(LogLevel::Debug, "plain HTTP from " + peer(c) + " on the TLS port: answered 400 and closed");
  iovec v{const_cast<char*>(k400.data()), k400.size()};
  net::plain::write_gathered(c->fd, &v, 1);  // small: fits an empty socket buffer
  c->end_http();
  c->out.clear();
  set_state(c, ConnState::Lingering);
  c->deadline_ms = linger_deadline();
  c->shut_done = true;
  net::plain::shutdown(c->fd);
  discard_input(c);  // the rest of the request, up to the client's FIN
}

// Our side is done: what still arrives is read and dropped (not decrypted)
// until the peer's FIN, so that closing never resets the connection under
// a reply the peer has not read yet.
void Server::Impl::discard_input(Connection* c) {
  ssize_t n = net::plain::read(c->fd, rbuf.get(), kReadBufferSize);
  if (n > 0) {
    if (size_t(n) == kReadBufferSize || c->peer_closed) take_turn_later(c);  // more, or the EOF, may be waiting
    return;
  }
  if (n == net::kAgain) return;
  abort(c, c->close_code ? c->close_code : 1006);
}

}  // namespace chatws
