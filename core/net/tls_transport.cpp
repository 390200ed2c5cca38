#include "net/tls_transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/no_sigpipe.h"
#include "net/tls_context.h"

namespace chatws::net {

// The BIO under every TlsTransport: reads recv() the socket, writes append
// to the loop's staging buffer (sent by TlsTransport::flush).
struct TlsBio {
  // OpenSSL's internal kTLS controls (include/internal/bio.h; bio.h lists
  // them): set keys, query, mark the next write as a non-data record.
  static constexpr int kSetKtls = 72, kCtrlMsg = 74, kClearCtrlMsg = 75;

  static int write(BIO* b, const char* data, size_t len, size_t* written) {
    auto* t = static_cast<TlsTransport*>(BIO_get_data(b));
    if (t->ktls_bio_ && BIO_get_ktls_send(t->ktls_bio_)) {
      // An OpenSSL record (alert, ticket) after kTLS took over: its socket
      // BIO sends it with the record type, by write(2) or sendmsg(2).
      NoSigpipe guard;
      return forward(b, BIO_write_ex(t->ktls_bio_, data, len, written));
    }
    t->staging_->bytes.append(data, len);
    *written = len;
    return 1;
  }
  static int read(BIO* b, char* buf, size_t len, size_t* got) {
    auto* t = static_cast<TlsTransport*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (t->ktls_bio_ && BIO_get_ktls_recv(t->ktls_bio_)) {
      t->socket_drained_ = false;  // not known: the loop reads once more
      return forward(b, BIO_read_ex(t->ktls_bio_, buf, len, got));
    }
    for (;;) {
      ssize_t n = ::recv(t->fd_, buf, len, 0);
      if (n > 0) {
        *got = size_t(n);
        t->socket_drained_ = size_t(n) < len;
        return 1;
      }
      if (n == 0) {  // EOF: OpenSSL tells a bare EOF from close_notify
        *got = 0;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->socket_drained_ = true;
        BIO_set_retry_read(b);
      }
      return -1;
    }
  }
  // The socket BIO's result, with its retry flags.
  static int forward(BIO* b, int r) {
    BIO* s = static_cast<TlsTransport*>(BIO_get_data(b))->ktls_bio_;
    BIO_clear_retry_flags(b);
    if (r <= 0 && BIO_should_retry(s)) BIO_set_flags(b, BIO_get_retry_flags(s) | BIO_FLAGS_SHOULD_RETRY);
    return r;
  }
  static long ctrl(BIO* b, int cmd, long num, void* ptr) {
    auto* t = static_cast<TlsTransport*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        // Staged bytes are otherwise sent by TlsTransport after each call.
        // Before handing keys to the kernel, OpenSSL flushes: what is staged
        // must be on the socket by then (encrypted by us), or kTLS is skipped.
        if (!t->ktls_allowed_ || (t->ktls_bio_ && BIO_get_ktls_send(t->ktls_bio_))) return 1;
        if (!t->flush()) return 0;
        if (t->pending_.empty()) return 1;
        BIO_set_retry_write(b);
        return 0;
      case kSetKtls:
        if (!t->ktls_allowed_) return 0;
        t->ktls_attempted_ = true;
        if (!t->ktls_bio_) t->ktls_bio_ = BIO_new_socket(t->fd_, BIO_NOCLOSE);
        return t->ktls_bio_ ? BIO_ctrl(t->ktls_bio_, cmd, num, ptr) : 0;
      case BIO_CTRL_GET_KTLS_SEND:
      case BIO_CTRL_GET_KTLS_RECV:
      case kCtrlMsg:
      case kClearCtrlMsg:
        return t->ktls_bio_ ? BIO_ctrl(t->ktls_bio_, cmd, num, ptr) : 0;
      default:
        return 0;
    }
  }
  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static const BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "chatws socket");
      BIO_meth_set_write_ex(bm, write);
      BIO_meth_set_read_ex(bm, read);
      BIO_meth_set_ctrl(bm, ctrl);
      BIO_meth_set_create(bm, create);
      return bm;
    }();
    return m;
  }
};

TlsTransport* TlsTransport::create(SSL* ssl, int fd, TlsStaging* staging) {
  if (!ssl) return nullptr;
  BIO* bio = BIO_new(TlsBio::method());
  if (!bio) {
    SSL_free(ssl);
    return nullptr;
  }
  auto* t = new TlsTransport(ssl, fd, staging);
  t->ktls_allowed_ = (SSL_get_options(ssl) & SSL_OP_ENABLE_KTLS) != 0;
  BIO_set_data(bio, t);
  SSL_set_bio(ssl, bio, bio);  // the SSL owns the BIO
  SSL_set_accept_state(ssl);
  return t;
}

TlsTransport::~TlsTransport() {
  SSL_free(ssl_);
  BIO_free(ktls_bio_);  // BIO_NOCLOSE: the fd is the connection's
}

void TlsTransport::handshake_done() {
  established_ = true;
  if (!ktls_bio_) return;
  ktls_tx_ = BIO_get_ktls_send(ktls_bio_);
  ktls_rx_ = BIO_get_ktls_recv(ktls_bio_);
  if (!ktls_tx_ && !ktls_rx_) {  // the kernel refused: user-space records, as without kTLS
    BIO_free(ktls_bio_);
    ktls_bio_ = nullptr;
  }
}

namespace {
// Reason of the error at the front of the queue, or 0.
int front_reason() { return ERR_GET_REASON(ERR_peek_error()); }
}  // namespace

TlsHandshake TlsTransport::handshake(std::string* why) {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done();
    return flush() ? TlsHandshake::Done : TlsHandshake::Failed;
  }
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return flush() ? TlsHandshake::Again : TlsHandshake::Failed;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return TlsHandshake::Closed;
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      ERR_clear_error();
      staging_->bytes.clear();
      return TlsHandshake::Closed;  // EOF or reset mid-handshake
    default: {
      failed_ = true;
      int reason = front_reason();
      if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) {
        ERR_clear_error();
        staging_->bytes.clear();  // no alert: the client would not understand it
        return TlsHandshake::PlainHttp;
      }
      if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        staging_->bytes.clear();
        return TlsHandshake::Closed;
      }
      if (why) *why = openssl_reason();
      ERR_clear_error();
      flush();  // the alert
      return TlsHandshake::Failed;
    }
  }
}

ssize_t TlsTransport::read(void* buf, size_t n) {
  if (end_ != 1) {
    ssize_t end = end_;
    end_ = 1;
    return end;
  }
  // Drained only if this call's own recv() found the socket short: a call
  // served from records OpenSSL already holds has not looked, and bytes may
  // have come since (their edge went to this turn).
  socket_drained_ = false;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read_record(static_cast<char*>(buf) + got, n - got);
    if (r > 0) {
      got += size_t(r);
      if (input_drained()) break;  // no need for the read that would say EAGAIN
      continue;
    }
    if (got == 0) return r;
    if (r != kAgain) end_ = int8_t(r);  // for the next call
    break;
  }
  return ssize_t(got);
}

ssize_t TlsTransport::read_record(void* buf, size_t n) {
  size_t got = 0;
  int r = SSL_read_ex(ssl_, buf, n, &got);
  // A read may produce output (a KeyUpdate reply, an alert).
  if (!staging_->bytes.empty() && !flush()) return kFailed;
  if (r == 1) return ssize_t(got);
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return kAgain;
    case SSL_ERROR_ZERO_RETURN:
      peer_notified_ = true;
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      failed_ = true;
      return errno == 0 ? 0 : kFailed;
    default: {
      int reason = front_reason();
      ERR_clear_error();
      failed_ = true;
      return reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ? 0 : kFailed;
    }
  }
}

bool TlsTransport::input_drained() const {
  return socket_drained_ && end_ == 1 && !SSL_has_pending(ssl_);
}

bool TlsTransport::write_record(const void* p, size_t n) {
  size_t written = 0;
  if (SSL_write_ex(ssl_, p, n, &written) == 1 && written == n) return true;
  ERR_clear_error();
  failed_ = true;
  return false;
}

ssize_t TlsTransport::write_gathered(const iovec* iov, int n, uint8_t* scratch) {
  if (ktls_tx_) {
    // The kernel makes the records: plaintext, as on a plain socket.
    if (!pending_.empty() && !flush()) return kFailed;
    if (!pending_.empty()) return 0;
    size_t offered = 0;
    for (int k = 0; k < n; ++k) offered += iov[k].iov_len;
    ssize_t w = plain::write_gathered(fd_, iov, n);
    if (w == kAgain) w = 0;
    if (w < 0) {
      failed_ = true;
      return kFailed;
    }
    tx_blocked_ = size_t(w) < offered;
    return w;
  }
  constexpr size_t kRecord = 16384;  // TLS's largest record plaintext
  size_t done = 0;
  int i = 0;
  size_t off = 0;  // into iov[i]
  while (i < n && done < TlsStaging::kPlainPerCall) {
    const size_t room = TlsStaging::kPlainPerCall - done;
    const size_t left = iov[i].iov_len - off;
    if (left >= kRecord) {
      // Large: whole records straight from the frame; the tail is
      // coalesced with what follows.
      size_t take = std::min(left / kRecord * kRecord, room / kRecord * kRecord);
      if (take == 0) break;
      if (!write_record(static_cast<const uint8_t*>(iov[i].iov_base) + off, take)) return kFailed;
      done += take;
      off += take;
    } else {
      // Small frames: as many as fit in one record.
      size_t fill = 0;
      const size_t cap = std::min(kRecord, room);
      while (i < n && fill < cap) {
        size_t take = std::min(iov[i].iov_len - off, cap - fill);
        std::memcpy(scratch + fill, static_cast<const uint8_t*>(iov[i].iov_base) + off, take);
        fill += take;
        off += take;
        if (off == iov[i].iov_len) {
          ++i;
          off = 0;
        }
      }
      if (!write_record(scratch, fill)) return kFailed;
      done += fill;
    }
    if (i < n && off == iov[i].iov_len) {
      ++i;
      off = 0;
    }
  }
  if (!flush()) return kFailed;
  return ssize_t(done);
}

void TlsTransport::tick(bool busy) {
  if (!established_ || failed_) return;
  if (busy && !keep_buffers_) {
    SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    keep_buffers_ = true;
  } else if (!busy && keep_buffers_) {
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    // Frees both record buffers unless one holds a partial record; that one
    // goes after its record, as for any connection in release mode.
    SSL_free_buffers(ssl_);
    keep_buffers_ = false;
  }
}

bool TlsTransport::shutdown() {
  if (notify_sent_) return flush();
  notify_sent_ = true;
  if (established_ && !failed_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // queues close_notify; we do not wait for the peer's
    ERR_clear_error();
  }
  return flush();
}

bool TlsTransport::flush() {
  tx_blocked_ = false;  // (kTLS send) the writable edge: try again
  std::string& staged = staging_->bytes;
  if (pending_.empty() && staged.empty()) return true;
  iovec iov[2];
  int k = 0;
  if (!pending_.empty()) iov[k++] = {pending_.data(), pending_.size()};
  if (!staged.empty()) iov[k++] = {staged.data(), staged.size()};
  size_t sent = 0;
  const size_t total = pending_.size() + staged.size();
  while (sent < total) {
    // Skip what is already sent.
    iovec cur[2];
    int m = 0;
    size_t skip = sent;
    for (int j = 0; j < k; ++j) {
      if (skip >= iov[j].iov_len) {
        skip -= iov[j].iov_len;
        continue;
      }
      cur[m++] = {static_cast<char*>(iov[j].iov_base) + skip, iov[j].iov_len - skip};
      skip = 0;
    }
    ssize_t w = plain::write_gathered(fd_, cur, m);
    if (w == kAgain) break;
    if (w < 0) {
      staged.clear();
      std::string().swap(pending_);
      failed_ = true;
      return false;
    }
    sent += size_t(w);
  }
  // What the kernel did not take waits here for the next writable edge.
  if (sent == total) {
    if (!pending_.empty()) std::string().swap(pending_);  // give the memory back
  } else if (sent < pending_.size()) {
    pending_.erase(0, sent);
    pending_.append(staged);
  } else {
    pending_.assign(staged, sent - pending_.size());
  }
  staged.clear();
  return true;
}

}  // namespace chatws::net
