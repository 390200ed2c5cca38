// A real chatws::Server on 127.0.0.1 (port 0) with a ChatService wired the
// way the C ABI wires it (through chat::ChatRouter), its loop on a
// background thread. Tests reach the loop thread through on_loop() (posts,
// moderator, introspection).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_router.h"
#include "chat/chat_service.h"
#include "server/server.h"

namespace chatws::test {

// The harness's host side of chat::ChatRouter (the C ABI's callbacks stand
// here in libchatws): counts the messages of non-chat connections.
class CountingHost : public ServerHandler {
 public:
  std::atomic<int> non_chat_messages{0};
  std::atomic<long> iterations{0};
  // Runs (loop thread) on every upgrade the chat accepted, before on_open.
  std::function<void(std::string_view path)> upgrade_hook;
  void on_message(ConnId, protocol::Opcode, const char*, size_t) override { ++non_chat_messages; }
  void on_iteration_end() override { ++iterations; }
  int on_upgrade(std::string_view path, std::string_view, std::string*) override {
    if (upgrade_hook) upgrade_hook(path);
    return 0;
  }
};

class ChatHarness {
 public:
  ChatHarness() = default;
  ~ChatHarness() { stop(); }

  // Creates server + chat and starts the loop thread. On failure returns
  // false with error()/code().
  bool start(const chat::ChatConfig& cfg, ServerConfig sc = {}) {
    sc.host = "127.0.0.1";
    sc.port = 0;
    sc.subprotocols = {"chatws.v1", "json"};
    server_ = Server::create(sc, &router_, &error_, &code_);
    if (!server_) return false;
    // These tests flood on purpose (fairness, bounds, ordering): the chat's
    // default message rate limit would answer them "rate limited". Unless a
    // test sets its own, it is off here; test_c_flood.c tests the limit.
    chat::ChatConfig c = cfg;
    const chat::ChatConfig defaults;
    if (c.rate.per_second == defaults.rate.per_second && c.rate.burst == defaults.rate.burst)
      c.rate.per_second = chat::ChatConfig::kRateOff;
    chat_ = chat::ChatService::create(*server_, c, &error_, &code_);
    if (!chat_) {
      server_.reset();
      return false;
    }
    router_.attach(server_.get(), chat_.get());
    port_ = server_->port();
    quit_ = false;
    thread_ = std::thread([this] { loop(); });
    return true;
  }

  // Tears down on the loop thread the way chatws_server_destroy() does:
  // the server first (its on_close/on_iteration_end still reach the chat),
  // then the chat service.
  void stop() {
    if (!thread_.joinable()) return;
    quit_ = true;
    thread_.join();
  }

  uint16_t port() const { return port_; }
  const std::string& error() const { return error_; }
  int code() const { return code_; }
  int non_chat_messages() const { return host_.non_chat_messages; }
  // Set before start(); runs on the loop thread with the chat.
  void set_upgrade_hook(std::function<void(chat::ChatService&, std::string_view path)> fn) {
    host_.upgrade_hook = [this, fn](std::string_view path) { fn(*chat_, path); };
  }
  // Loop iterations completed so far (any thread).
  long iterations() const { return host_.iterations; }

  // Holds the loop thread (between two iterations) while `fn` runs on the
  // calling thread, e.g. so that many clients' requests reach the server
  // in one go; the loop then finds them all ready at once.
  template <class F>
  void while_loop_held(F fn) {
    // Shared: the loop thread may still be inside the task when we return.
    auto held = std::make_shared<std::promise<void>>();
    auto release = std::make_shared<std::promise<void>>();
    std::future<void> is_held = held->get_future();
    std::shared_future<void> released = release->get_future().share();
    {
      std::lock_guard<std::mutex> lk(mu_);
      tasks_.push_back([held, released] {
        held->set_value();
        released.wait_for(std::chrono::seconds(30));  // bounded even if the test dies
      });
    }
    if (is_held.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      throw std::runtime_error("loop thread did not stop for the hold");
    }
    try {
      fn();
    } catch (...) {
      release->set_value();
      throw;
    }
    release->set_value();
  }

  // Runs fn on the loop thread between two iterations and returns its result.
  template <class F>
  auto on_loop(F fn) -> decltype(fn(std::declval<chat::ChatService&>())) {
    using R = decltype(fn(std::declval<chat::ChatService&>()));
    auto task = std::make_shared<std::packaged_task<R()>>([this, fn] { return fn(*chat_); });
    auto fut = task->get_future();
    {
      std::lock_guard<std::mutex> lk(mu_);
      tasks_.push_back([task] { (*task)(); });
    }
    // Bounded: a loop that does not pick the task up within 10 s is a bug.
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      throw std::runtime_error("loop thread did not run the task");
    }
    return fut.get();
  }

  // Waits (bounded) until fn(chat) is true on the loop thread.
  bool wait_for(std::function<bool(chat::ChatService&)> fn, int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (on_loop(fn)) return true;
    }
    return false;
  }

 private:
  void loop() {
    while (!quit_) {
      server_->poll(5);
      std::vector<std::function<void()>> run;
      {
        std::lock_guard<std::mutex> lk(mu_);
        run.swap(tasks_);
      }
      for (auto& t : run) t();
    }
    server_.reset();
    router_.detach();
    chat_.reset();
  }

  CountingHost host_;
  chat::ChatRouter router_{&host_};
  std::unique_ptr<Server> server_;
  std::unique_ptr<chat::ChatService> chat_;
  std::thread thread_;
  std::atomic<bool> quit_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  uint16_t port_ = 0;
  std::string error_;
  int code_ = 0;
};

}  // namespace chatws::test
