// A real redis-server for one test: on a free loopback port, in a fresh
// temporary directory, started and stopped by the test (kill, restart on
// the same port). Readiness is a successful PING, polled in a bounded loop.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "chat/temp_dir.h"

namespace chatws::test {

class RedisProcess {
 public:
  explicit RedisProcess(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    port_ = free_port();
  }
  ~RedisProcess() { stop(); }  // then dir_ goes, with redis's files
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  // Starts it (again, on the same port) and waits until it answers PING.
  bool start() {
    if (pid_ > 0 || !dir_.ok() || port_ == 0) return false;
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_),
                                     "--bind", "127.0.0.1", "--dir", dir_.path(), "--save", "",
                                     "--appendonly", "no", "--daemonize", "no",
                                     "--logfile", dir_.file("redis.log")};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    if (pid_ < 0) return false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      if (answers_ping()) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited (e.g. not installed)
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // readiness poll, bounded
    }
    return false;
  }
  // SIGKILL and reap: gone at once, like a crash.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  static int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    ::close(fd);
    return port;
  }
  bool answers_ping() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port_));
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::write(fd, "PING\r\n", 6) == 6) {
      char buf[64];
      ssize_t n = ::read(fd, buf, sizeof buf);
      // +PONG, or -NOAUTH when a password is required: up either way.
      ok = n > 0 && (buf[0] == '+' || buf[0] == '-');
    }
    ::close(fd);
    return ok;
  }

  std::vector<std::string> extra_;
  TempDir dir_;  // redis-server's --dir
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace chatws::test
