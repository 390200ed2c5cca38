#include "net/poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace chatws::net {

Poller::~Poller() {
  if (timerfd_ >= 0) ::close(timerfd_);
  if (wakefd_ >= 0) ::close(wakefd_);
  if (epfd_ >= 0) ::close(epfd_);
}

bool Poller::init(std::string* error) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0 || timerfd_ < 0 || !add_level_read(wakefd_, kWakeToken) ||
      !add_level_read(timerfd_, kTimerToken)) {
    *error = std::string("epoll/eventfd/timerfd setup failed: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool Poller::add_edge(int fd, uint64_t token) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = token;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Poller::add_level_read(int fd, uint64_t token) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = token;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Poller::set_level(int fd, uint64_t token, bool read, bool write, bool present) {
  epoll_event ev{};
  ev.events = (read ? EPOLLIN : 0u) | (write ? EPOLLOUT : 0u);
  ev.data.u64 = token;
  return epoll_ctl(epfd_, present ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Poller::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

int Poller::wait(PollEvent* out, int max, int timeout_ms) {
  epoll_event evs[256];
  if (max > 256) max = 256;
  int n = epoll_wait(epfd_, evs, max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  for (int i = 0; i < n; ++i) {
    out[i].token = evs[i].data.u64;
    out[i].readable = evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    out[i].writable = evs[i].events & (EPOLLOUT | EPOLLERR);
    out[i].hangup = evs[i].events & (EPOLLHUP | EPOLLERR);
    out[i].peer_closed = evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  }
  return n;
}

void Poller::wake() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
}

void Poller::drain_wake() {
  uint64_t v;
  [[maybe_unused]] auto r = ::read(wakefd_, &v, sizeof v);
}

void Poller::set_tick(int period_ms) {
  if (period_ms == tick_ms_) return;
  tick_ms_ = period_ms;
  itimerspec its{};
  if (period_ms > 0) {
    its.it_interval.tv_sec = period_ms / 1000;
    its.it_interval.tv_nsec = (period_ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
  }
  timerfd_settime(timerfd_, 0, &its, nullptr);
}

void Poller::drain_timer() {
  uint64_t v;
  [[maybe_unused]] auto r = ::read(timerfd_, &v, sizeof v);
}

int64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace chatws::net
