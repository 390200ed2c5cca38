// The OS-specific part of the loop, kept behind one small interface: an
// epoll set plus an eventfd (cross-thread wakeup) and a timerfd (timeouts).
// A port to kqueue or io_uring replaces this file pair only.
#pragma once

#include <cstdint>
#include <string>

namespace chatws::net {

struct PollEvent {
  uint64_t token;    // what was registered
  bool readable;
  bool writable;
  bool hangup;       // peer closed or error: read to find out which
  // The peer will send nothing more (EPOLLRDHUP, HUP or ERR): edge-triggered,
  // its FIN may have come with its last bytes, so a read that comes back
  // short is not the end of it: read on until EOF or the error.
  bool peer_closed;
};

class Poller {
 public:
  // Reserved tokens for the poller's own descriptors.
  static constexpr uint64_t kWakeToken = ~uint64_t{0};
  static constexpr uint64_t kTimerToken = ~uint64_t{0} - 1;

  Poller() = default;
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  bool init(std::string* error);
  int fd() const { return epfd_; }

  // Edge-triggered read+write interest (connections).
  bool add_edge(int fd, uint64_t token);
  // Level-triggered read interest (listener).
  bool add_level_read(int fd, uint64_t token);
  void remove(int fd);
  // Level-triggered interest in reading and/or writing (a descriptor the
  // handler watches, see Server::watch_fd): added, or changed if present.
  bool set_level(int fd, uint64_t token, bool read, bool write, bool present);

  // Wait up to timeout_ms (-1 forever) and return the number of events in out[].
  int wait(PollEvent* out, int max, int timeout_ms);

  // Any thread: make wait() return (coalesced).
  void wake();
  void drain_wake();
  // Fire a timer event every `period_ms` (0 disarms).
  void set_tick(int period_ms);
  void drain_timer();

 private:
  int epfd_ = -1;
  int wakefd_ = -1;
  int timerfd_ = -1;
  int tick_ms_ = 0;
};

// Milliseconds on the monotonic clock.
int64_t monotonic_ms();
// Milliseconds since the Unix epoch (wall clock).
int64_t wall_ms();

}  // namespace chatws::net
