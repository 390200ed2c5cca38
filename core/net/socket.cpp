#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace chatws::net {

int listen_tcp(const std::string& host, uint16_t port, std::string* error, bool reuse_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    *error = "cannot resolve listen address '" + host + "': " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      last = std::string("SO_REUSEPORT: ") + std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    last = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) *error = "cannot listen on " + host + ":" + service + ": " + last;
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

std::string address_group(const std::string& address, unsigned ipv6_prefix) {
  uint8_t a6[16];
  if (inet_pton(AF_INET6, address.c_str(), a6) != 1) return address;  // IPv4 (or not an address)
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  char buf[INET6_ADDRSTRLEN] = "";
  if (std::memcmp(a6, kMapped, 12) == 0) {
    inet_ntop(AF_INET, a6 + 12, buf, sizeof buf);
    return buf;
  }
  const unsigned bits = ipv6_prefix == 0 || ipv6_prefix > 128 ? 128 : ipv6_prefix;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned keep = bits > 8 * i ? bits - 8 * i : 0;  // bits of byte i to keep
    if (keep < 8) a6[i] &= uint8_t(0xFF00u >> keep);
  }
  inet_ntop(AF_INET6, a6, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(bits);
}

namespace {
int open_spare() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

Acceptor::Acceptor() { spare_ = open_spare(); }
Acceptor::~Acceptor() {
  if (spare_ >= 0) ::close(spare_);
}

Acceptor::Result Acceptor::accept_one(int listen_fd, Accepted* out) {
  // Lost during an earlier exhaustion: take it back first, so the next one
  // can be shed too (one open() per accept, only while it is missing).
  if (spare_ < 0) spare_ = open_spare();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::Empty;
    if (errno != EMFILE && errno != ENFILE) return Result::Retry;  // ECONNABORTED, EINTR, ENOBUFS...
    if (spare_ < 0) return Result::Exhausted;
    ::close(spare_);
    int victim = ::accept(listen_fd, nullptr, nullptr);
    const bool no_slot = victim < 0 && (errno == EMFILE || errno == ENFILE);
    if (victim >= 0) {
      ::close(victim);
      ++shed_;
    }
    spare_ = open_spare();
    // Not even the spare's slot was usable (another thread took it, or the
    // limit is below it): nothing can be shed now.
    return no_slot || spare_ < 0 ? Result::Exhausted : Result::Retry;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    out->port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    out->port = ntohs(a->sin6_port);
  }
  out->fd = fd;
  out->address = buf;
  return Result::Accepted;
}

}  // namespace chatws::net
