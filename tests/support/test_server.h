// Runs a chatws::Server on a background thread for end-to-end tests, with
// a recording handler whose events tests can wait for (condition variable,
// bounded waits; no sleeps).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/server.h"

namespace chatws::test {

struct Event {
  enum Kind { Open, Message, Close, Drain } kind;
  ConnId id = 0;
  protocol::Opcode op = protocol::Opcode::Text;
  std::string data;  // message payload or close reason
  uint16_t code = 0;
};

class RecordingHandler : public ServerHandler {
 public:
  Server* server = nullptr;
  // Optional hooks run on the loop thread before the event is recorded.
  std::function<void(ConnId, protocol::Opcode, const char*, size_t)> on_msg;
  std::function<void(ConnId)> on_open_hook;

  void on_open(ConnId id) override {
    if (on_open_hook) on_open_hook(id);
    push({Event::Open, id});
  }
  void on_message(ConnId id, protocol::Opcode op, const char* d, size_t n) override {
    if (on_msg) on_msg(id, op, d, n);
    push({Event::Message, id, op, std::string(d, n)});
  }
  void on_close(ConnId id, uint16_t code, std::string_view reason) override {
    push({Event::Close, id, protocol::Opcode::Close, std::string(reason), code});
  }
  void on_drain(ConnId id) override { push({Event::Drain, id}); }

  // Waits until pred(events) holds or the timeout passes.
  template <class Pred>
  bool wait(Pred pred, int timeout_ms = 5000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return pred(events_); });
  }
  size_t count(Event::Kind k) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& e : events_) n += e.kind == k;
    return n;
  }
  bool wait_count(Event::Kind k, size_t n, int timeout_ms = 5000) {
    return wait([&](const std::vector<Event>& ev) {
      size_t c = 0;
      for (auto& e : ev) c += e.kind == k;
      return c >= n;
    }, timeout_ms);
  }
  std::vector<Event> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  void push(Event e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

// A server plus the thread running its loop; stops and joins on destruction.
class ServerThread {
 public:
  ServerThread(ServerConfig cfg, ServerHandler* handler) {
    std::string err;
    int code = 0;
    server = Server::create(cfg, handler, &err, &code);
    error = err;
    if (server) thread = std::thread([this] { run_rc = server->run(); });
  }
  ~ServerThread() { stop(); }
  void stop() {
    if (server && thread.joinable()) {
      server->stop();
      thread.join();
    }
  }
  uint16_t port() const { return server->port(); }

  std::unique_ptr<Server> server;
  std::thread thread;
  std::string error;
  int run_rc = 0;
};

// Drives a server's loop on the calling thread (Server::poll, at most 20 ms
// each) until pred() holds, at most `iterations` times; pred is checked
// before each poll and once after the last. It runs once per check and
// never again once it held: some predicates act (publish, send), and a
// second act after success is traffic the test did not expect.
template <class Pred>
bool poll_until(Server& s, Pred pred, int iterations = 500) {
  for (int i = 0;; ++i) {
    if (pred()) return true;
    if (i == iterations) return false;
    s.poll(20);
  }
}

}  // namespace chatws::test
