// The byte stream under a connection, in one small interface shared by the
// plain and the TLS transport (tls_transport.h):
//   read(buf, n)              > 0 bytes, 0 end of stream, kAgain, kFailed
//   write_gathered(iov, n)    bytes taken (>= 0), or kFailed
//   shutdown()                end our direction (FIN; TLS: close_notify first)
//   wants_write()             output accepted but not yet taken by the kernel
// The plain transport is stateless and inline: it is the loop's hot path
// (one read()/send() per call, exactly as before the interface existed).
// Every write uses MSG_NOSIGNAL: a peer that reset yields EPIPE, never a
// SIGPIPE in the host.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace chatws::net {

inline constexpr ssize_t kAgain = -1;   // nothing now: wait for the next edge
inline constexpr ssize_t kFailed = -2;  // the stream is broken (reset, protocol error)

namespace plain {

inline ssize_t read(int fd, void* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd, buf, n);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kAgain : kFailed;
  }
}

// One contiguous buffer: send(); several: sendmsg() (not writev: it would
// raise SIGPIPE). Returns the bytes the kernel took, kAgain or kFailed.
inline ssize_t write_gathered(int fd, const iovec* iov, int n) {
  for (;;) {
    ssize_t w;
    if (n == 1) {
      w = ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(iov);
      msg.msg_iovlen = size_t(n);
      w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    }
    if (w >= 0) return w;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kAgain : kFailed;
  }
}

inline void shutdown(int fd) { ::shutdown(fd, SHUT_WR); }

}  // namespace plain
}  // namespace chatws::net
