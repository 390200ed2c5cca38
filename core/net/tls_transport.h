// A TLS connection over a non-blocking socket, driven by the event loop
// (the interface of transport.h, plus the handshake). OpenSSL does the
// protocol; a custom BIO does the socket I/O so that:
//  - every write uses MSG_NOSIGNAL (OpenSSL's socket BIO uses write(),
//    which raises SIGPIPE on a reset peer);
//  - the records of one write_gathered() call (and of a handshake flight)
//    are staged in the loop's buffer and leave in one syscall;
//  - a write never has to be retried with the same plaintext (OpenSSL's
//    rule for WANT_WRITE): ciphertext the kernel does not take yet is kept
//    here (pending) and sent first on the next writable edge.
// Kernel TLS (the context's SSL_OP_ENABLE_KTLS): the BIO really flushes
// when OpenSSL asks (its condition for handing keys over) and passes
// OpenSSL's kTLS controls to a socket BIO on the same fd, which does the
// setsockopt()s. Where the kernel took the keys, application data goes to
// the socket as plaintext (send, MSG_NOSIGNAL: the kernel makes the
// records), and OpenSSL's own records (alerts, tickets) and reads go
// through that socket BIO. Where it refused, nothing changes: records stay
// in user space, as without the option.
// An idle connection holds no buffer: OpenSSL's record buffers are released
// between records (SSL_MODE_RELEASE_BUFFERS) and `pending` is freed once sent.
// A connection that stays busy keeps them instead (see tick()).
// Loop thread only.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/transport.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace chatws::net {

// The loop's ciphertext staging buffer: filled by one transport call,
// emptied (sent, or moved to that connection's pending output) before the
// call returns, so one buffer serves every connection of the loop.
struct TlsStaging {
  std::string bytes;
  TlsStaging() { bytes.reserve(kPlainPerCall + 4096); }
  // Plaintext per write_gathered() call: bounds the staging buffer and the
  // ciphertext a connection can hold beyond its output queue.
  static constexpr size_t kPlainPerCall = 64 * 1024;
};

enum class TlsHandshake : uint8_t {
  Done,       // established
  Again,      // waiting for the peer's next flight
  Closed,     // the peer closed (EOF) before finishing
  Failed,     // protocol error; OpenSSL queued an alert, flushed already
  PlainHttp,  // the client spoke plain HTTP to the TLS port
};

class TlsTransport {
 public:
  // Adopts `ssl` (from TlsContext::new_ssl) for `fd`; `staging` is the
  // loop's. nullptr when out of memory (ssl freed).
  static TlsTransport* create(SSL* ssl, int fd, TlsStaging* staging);
  ~TlsTransport();
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // One step of the server handshake. On Failed, *why has OpenSSL's reason.
  TlsHandshake handshake(std::string* why);
  bool established() const { return established_; }

  // Plaintext into buf from as many records as are there, up to n (like
  // one read() of the socket): > 0 bytes, 0 end of stream (close_notify, or
  // EOF; see clean_close()), kAgain, kFailed (a bad record: alert sent). An
  // end met after some data is returned by the next call.
  ssize_t read(void* buf, size_t n);
  // Encrypts up to TlsStaging::kPlainPerCall bytes of iov[] into records of
  // up to 16 KiB (small frames coalesced through `scratch`, >= 16 KiB) and
  // sends them. Returns the plaintext taken (all of it is then committed:
  // sent, or pending until writable), or kFailed.
  ssize_t write_gathered(const iovec* iov, int n, uint8_t* scratch);
  // close_notify, then FIN once it is out (see wants_write). False on failure.
  bool shutdown();
  bool close_notify_sent() const { return notify_sent_; }
  // The peer's close_notify arrived (as opposed to a bare EOF).
  bool clean_close() const { return peer_notified_; }

  // Sends pending ciphertext; false if the socket failed.
  bool flush();
  bool wants_write() const { return !pending_.empty() || tx_blocked_; }
  // The last read left nothing behind: in that call the socket had less
  // than OpenSSL asked for (so it is empty: a new edge comes with new
  // bytes) and no record is buffered. False after a read served wholly
  // from buffered records (it did not look at the socket). Lets the loop skip the read that would only say
  // EAGAIN, as the plain path does.
  bool input_drained() const;
  bool failed() const { return failed_; }

  SSL* ssl() const { return ssl_; }  // e.g. to query the negotiated version

  // The server's tick: `busy` says whether the connection read or wrote
  // since the previous one. Busy for a whole tick: OpenSSL's record
  // buffers (~17 KiB each) are kept from record to record, which saves
  // their malloc and free per record (4% of the instructions of echo-32);
  // quiet for a tick: they are freed and released after each record again.
  void tick(bool busy);
  bool keeps_buffers() const { return keep_buffers_; }

  // OpenSSL asked to move this connection's records to the kernel.
  bool ktls_attempted() const { return ktls_attempted_; }
  // The kernel encrypts what is sent / decrypts what is read (after the handshake).
  bool ktls_send() const { return ktls_tx_; }
  bool ktls_recv() const { return ktls_rx_; }

 private:
  TlsTransport(SSL* ssl, int fd, TlsStaging* staging) : ssl_(ssl), staging_(staging), fd_(fd) {}
  void handshake_done();
  bool write_record(const void* p, size_t n);
  ssize_t read_record(void* buf, size_t n);  // one SSL_read
  friend struct TlsBio;

  SSL* ssl_;
  TlsStaging* staging_;
  std::string pending_;  // ciphertext the kernel has not taken yet
  BIO* ktls_bio_ = nullptr;  // OpenSSL's socket BIO on fd_, once OpenSSL asked for kTLS
  int fd_;
  bool established_ = false;
  bool failed_ = false;
  bool notify_sent_ = false;
  bool peer_notified_ = false;
  bool socket_drained_ = false;  // the BIO's last recv() came back short or EAGAIN
  bool keep_buffers_ = false;    // SSL_MODE_RELEASE_BUFFERS cleared (see tick)
  bool ktls_allowed_ = false;    // SSL_OP_ENABLE_KTLS
  bool ktls_attempted_ = false;
  bool ktls_tx_ = false;
  bool ktls_rx_ = false;
  bool tx_blocked_ = false;      // kTLS send: the kernel took less than offered
  int8_t end_ = 1;               // an end met after data: 0 (EOF) or kFailed; 1: none
};

}  // namespace chatws::net
