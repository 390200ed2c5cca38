// TCP sockets: the listener, accept with descriptor-exhaustion recovery,
// peer addresses. Linux-specific, non-blocking throughout.
#pragma once

#include <cstdint>
#include <string>

namespace chatws::net {

// Bind and listen on host:port (IPv4 or IPv6 literal, or "localhost").
// Returns the fd or -1 with *error set.
// reuse_port: SO_REUSEPORT, so that several loops each listen on the same
// port and the kernel spreads new connections over them.
int listen_tcp(const std::string& host, uint16_t port, std::string* error, bool reuse_port = false);
uint16_t local_port(int fd);

// The group a peer address counts in for the per-address connection limit:
// an IPv4 address (also seen as ::ffff:a.b.c.d by a dual-stack listener) on
// its own, an IPv6 address by its first `ipv6_prefix` bits (1..128), since
// one host usually holds a whole /64 and could pick a new address for every
// connection. As text, e.g. "2001:db8:1:2::/64". Text that is not an
// address is returned as is.
std::string address_group(const std::string& address, unsigned ipv6_prefix);

struct Accepted {
  int fd = -1;
  std::string address;
  uint16_t port = 0;
};

// Accepts connections, shedding one when the process runs out of
// descriptors (EMFILE/ENFILE) so the listener does not spin: a spare
// descriptor is released, the pending connection accepted and closed, and
// the spare reopened. When even that is impossible (the spare could not be
// reopened: no descriptor at all) accept_one says so, and the caller stops
// watching the listener for a while; the spare is reopened by the next call
// that finds a descriptor free.
class Acceptor {
 public:
  enum class Result {
    Accepted,   // *out filled
    Empty,      // nothing pending
    Retry,      // a connection was shed, or a transient error: call again
    Exhausted,  // out of descriptors and nothing to shed: back off
  };

  Acceptor();
  ~Acceptor();
  Result accept_one(int listen_fd, Accepted* out);
  uint64_t shed_count() const { return shed_; }

 private:
  int spare_ = -1;
  uint64_t shed_ = 0;
};

}  // namespace chatws::net
