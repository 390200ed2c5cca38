// NativeServer: one chatws_server owned by Python. Thin by design: it
// converts types, releases the GIL around the loop and around calls that may
// block, and forwards the C callbacks to Python dispatch functions. The
// public behaviour (handlers, Connection objects, errors) lives in Python.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include <chatws.h>
#include <pybind11/pybind11.h>

namespace chatws_py {

namespace py = pybind11;

// The Python side's entry points. Each is a plain function (not a bound
// method) called as fn(owner, ...), where owner is the Python Server found
// through a weak reference: the native object never keeps its owner alive,
// so a Server whose handlers refer back to it is still freed by the GC.
struct Dispatch {
  py::object open;     // (owner, id, remote_address, remote_port, path, subprotocol)
  py::object message;  // (owner, id, str | bytes)
  py::object close;    // (owner, id, code, reason)
  py::object drain;    // (owner, id)
  py::object chat;     // (owner, id, room, user, text, time_ms) -> None | False | (user, text)
  py::object log;      // (owner, level, message); None: no log lines
  // (owner, request dict) -> None (accept) or an answer tuple (see
  // native_upgrade.h); None: no upgrade hook at all.
  py::object upgrade;
};

class NativeServer {
 public:
  // Binds and listens (chatws_server_create) with the options in `options`
  // (keys named like the chatws_options fields). `owner_ref` is a weakref to
  // the Python Server.
  NativeServer(const py::dict& options, py::object owner_ref, Dispatch dispatch);
  ~NativeServer();

  NativeServer(const NativeServer&) = delete;
  NativeServer& operator=(const NativeServer&) = delete;

  // Queries answer as for a closed server once close() has begun.
  int port();
  int fd();

  // Run the loop on this thread in slices of slice_ms with the GIL released,
  // checking for Python signals between slices (Ctrl-C becomes
  // KeyboardInterrupt within one slice). Returns once the server stopped.
  void run(int slice_ms);
  // One loop iteration (GIL released). The number of events handled, or
  // None once the server has stopped.
  py::object poll(int timeout_ms);
  void stop();
  bool stopped();
  bool running() const;         // some thread is inside run()/poll()
  bool on_loop_thread() const;  // the calling thread is inside run()/poll()
  bool closed() const { return server_ == nullptr; }

  // str: text message, any bytes-like object: binary. Returns the
  // non-negative status of chatws_send() (1: above the soft limit).
  int send(uint64_t id, py::handle data);
  void broadcast(py::handle data, uint64_t exclude);
  void close_connection(uint64_t id, int code, const std::string& reason);
  size_t connection_count();
  // chatws_server_get_stats as a dict (no GIL release:
  // it copies a snapshot), and the metrics port (None: no listener).
  py::dict stats();
  py::object metrics_port();
  void chat_post(const std::string& room, const std::string& user, const std::string& text);
  // chatws_server_reload_tls (GIL released: it reads files). None: NULL.
  void reload_tls(const std::optional<std::string>& cert, const std::optional<std::string>& key,
                  const std::optional<std::string>& passphrase);

  // chatws_upgrade_resolve() with an answer tuple (native_upgrade.h), GIL
  // released. True if applied, False if no such request waits any more (its
  // client left, it timed out, it was resolved); raises InvalidArgument for
  // an answer chatws refuses (nothing sent, the request keeps waiting).
  bool resolve_upgrade(uint64_t id, py::handle answer);
  // Whether the upgrade callback calls Python (it is installed whenever an
  // upgrade dispatcher exists; off, it accepts without taking the GIL).
  void set_upgrade_enabled(bool on) { upgrade_enabled_.store(on); }
  bool upgrade_enabled() const { return upgrade_enabled_.load(std::memory_order_relaxed); }

  // chatws_server_destroy(): closes the remaining connections (their
  // on_close handlers run) and drops the Python references. Idempotent. Not
  // while a loop is running.
  void close();

  // --- used by the C callbacks (native_callbacks.cpp), GIL held ---
  // A new reference to the Python Server, or nullptr once it is gone.
  PyObject* owner() const;
  const Dispatch& dispatch() const { return dispatch_; }
  // A Python call made by a callback failed with the current exception.
  // Exceptions are handled by the Python dispatchers, so what arrives here
  // is KeyboardInterrupt/SystemExit (kept and re-raised when the loop
  // iteration returns) or an internal failure (reported as unraisable).
  void callback_failed();
  // Marks the calling thread as running one of this server's callbacks
  // (on_loop_thread() is then true: with several loops, callbacks come from
  // the library's loop threads, not from the thread in run()).
  class InCallback {
   public:
    explicit InCallback(const NativeServer* s) : outer_(current_) { current_ = s; }
    ~InCallback() { current_ = outer_; }
    InCallback(const InCallback&) = delete;
    InCallback& operator=(const InCallback&) = delete;
    static const NativeServer* current() { return current_; }

   private:
    const NativeServer* outer_;
    static thread_local const NativeServer* current_;
  };

 private:
  friend class UseGuard;
  friend class TryUse;
  friend class LoopGuard;

  void rethrow_pending();
  void refuse_if_closing();

  chatws_server* server_ = nullptr;
  py::object owner_ref_;
  Dispatch dispatch_;
  std::optional<py::error_already_set> pending_;
  // Calls in progress from any thread; close() waits for them to finish
  // before freeing the server.
  std::atomic<int> inflight_{0};
  std::atomic<bool> closing_{false};
  std::atomic<bool> upgrade_enabled_{false};
  std::atomic<std::thread::id> loop_thread_{};
  bool several_loops_ = false;  // options.threads != 1: run() drives chatws_server_run()
  void run_loops(int slice_ms);
};

}  // namespace chatws_py
