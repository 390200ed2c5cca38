#include "native_server.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "native_callbacks.h"
#include "native_errors.h"
#include "native_upgrade.h"

namespace chatws_py {

// Keeps the chatws_server alive for the duration of one call from any
// thread: close() waits until no call is in flight before freeing it.
class UseGuard {
 public:
  explicit UseGuard(NativeServer& s) : s_(s) {
    s_.inflight_.fetch_add(1);
    if (s_.closing_.load() || s_.server_ == nullptr) {
      s_.inflight_.fetch_sub(1);
      raise_error(CHATWS_ESTOPPED, "the server is closed");
    }
  }
  ~UseGuard() { s_.inflight_.fetch_sub(1); }
  UseGuard(const UseGuard&) = delete;
  UseGuard& operator=(const UseGuard&) = delete;

 private:
  NativeServer& s_;
};

// Like UseGuard for queries that answer "closed" instead of raising.
class TryUse {
 public:
  explicit TryUse(NativeServer& s) : s_(s) {
    s_.inflight_.fetch_add(1);
    ok_ = !s_.closing_.load() && s_.server_ != nullptr;
  }
  ~TryUse() { s_.inflight_.fetch_sub(1); }
  TryUse(const TryUse&) = delete;
  TryUse& operator=(const TryUse&) = delete;
  explicit operator bool() const { return ok_; }

 private:
  NativeServer& s_;
  bool ok_ = false;
};

// Marks the calling thread as the one running the loop, so that calls made
// from inside callbacks skip the GIL release and close() knows to refuse.
class LoopGuard {
 public:
  explicit LoopGuard(NativeServer& s) : s_(s) {
    std::thread::id none;
    if (!s_.loop_thread_.compare_exchange_strong(none, std::this_thread::get_id())) {
      raise_error(CHATWS_ESTATE, none == std::this_thread::get_id()
                                     ? "the loop is already running on this thread (re-entrant call)"
                                     : "another thread is running this server's loop");
    }
  }
  ~LoopGuard() { s_.loop_thread_.store(std::thread::id{}); }
  LoopGuard(const LoopGuard&) = delete;
  LoopGuard& operator=(const LoopGuard&) = delete;

 private:
  NativeServer& s_;
};

namespace {

// The bytes of a message to send: UTF-8 of a str (text) or a contiguous
// buffer (binary). Holds the buffer export until destroyed (GIL held).
class Payload {
 public:
  explicit Payload(py::handle obj) {
    if (PyUnicode_Check(obj.ptr())) {
      Py_ssize_t n = 0;
      data_ = PyUnicode_AsUTF8AndSize(obj.ptr(), &n);  // cached in the str object
      if (!data_) throw py::error_already_set();       // e.g. lone surrogates
      len_ = static_cast<size_t>(n);
      opcode_ = CHATWS_TEXT;
      return;
    }
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      throw py::type_error("message must be str (text) or a bytes-like object (binary), not " +
                           std::string(Py_TYPE(obj.ptr())->tp_name));
    }
    has_view_ = true;
    data_ = static_cast<const char*>(view_.buf);
    len_ = static_cast<size_t>(view_.len);
    opcode_ = CHATWS_BINARY;
  }
  ~Payload() {
    if (has_view_) PyBuffer_Release(&view_);
  }
  Payload(const Payload&) = delete;
  Payload& operator=(const Payload&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return len_; }
  int opcode() const { return opcode_; }

 private:
  Py_buffer view_{};
  bool has_view_ = false;
  const char* data_ = nullptr;
  size_t len_ = 0;
  int opcode_ = CHATWS_TEXT;
};

// The result of a C call made without the GIL: the details of a failure are
// captured on the calling thread before anything else can overwrite them.
struct Result {
  int rc = 0;
  std::string error;
};

template <class F>
Result call_c(F&& f) {
  Result r;
  r.rc = f();
  if (r.rc < 0) r.error = failure_text(r.rc);
  return r;
}

// Runs f with the GIL released unless the caller is the loop thread (inside
// a callback: the call is short and queues nothing cross-thread). Releasing
// elsewhere also means the loop thread, which may need the GIL for a
// callback, is never waited on while we hold it.
template <class F>
Result call_maybe_released(bool on_loop, F&& f) {
  if (on_loop) return call_c(std::forward<F>(f));
  py::gil_scoped_release nogil;
  return call_c(std::forward<F>(f));
}

void check(const Result& r) {
  if (r.rc < 0) raise_error(r.rc, r.error);
}

// --- options ---------------------------------------------------------------

// The strings chatws_options points into, alive until create returns.
struct OptionStrings {
  std::list<std::string> kept;
};

template <class T>
T as_number(const py::handle& v, const char* key) {
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    throw py::value_error(std::string("option ") + key + " is out of range or not an integer");
  }
}

// One setter per field of chatws_options, chosen by the field's type.
using OptionSetter = void (*)(const py::handle&, const char*, chatws_options*, OptionStrings*);

template <auto Field>
void set_option(const py::handle& v, const char* key, chatws_options* o, OptionStrings* s) {
  using T = std::remove_reference_t<decltype(o->*Field)>;
  if constexpr (std::is_same_v<T, const char*>) {
    o->*Field = s->kept.emplace_back(v.cast<std::string>()).c_str();
  } else {
    o->*Field = as_number<T>(v, key);
  }
}

struct OptionEntry {
  const char* key;  // the field's name: _options.build_options uses the same keys
  OptionSetter set;
};

#define CHATWS_OPTION(field) OptionEntry{#field, &set_option<&chatws_options::field>}
constexpr OptionEntry kOptions[] = {
    CHATWS_OPTION(host),
    CHATWS_OPTION(port),
    CHATWS_OPTION(static_dir),
    CHATWS_OPTION(subprotocols),
    CHATWS_OPTION(allowed_origins),
    CHATWS_OPTION(websocket_path_prefix),
    CHATWS_OPTION(max_request_size),
    CHATWS_OPTION(max_message_size),
    CHATWS_OPTION(max_fragments),
    CHATWS_OPTION(max_output_buffer),
    CHATWS_OPTION(max_connections),
    CHATWS_OPTION(max_connections_per_ip),
    CHATWS_OPTION(ipv6_prefix_length),
    CHATWS_OPTION(max_buffered_input),
    CHATWS_OPTION(socket_send_buffer),
    CHATWS_OPTION(slow_consumer_policy),
    CHATWS_OPTION(handshake_timeout_ms),
    CHATWS_OPTION(idle_timeout_ms),
    CHATWS_OPTION(close_timeout_ms),
    CHATWS_OPTION(drain_timeout_ms),
    CHATWS_OPTION(chat),
    CHATWS_OPTION(history_path),
    CHATWS_OPTION(history_size),
    CHATWS_OPTION(max_user_length),
    CHATWS_OPTION(max_text_length),
    CHATWS_OPTION(max_rooms),
    CHATWS_OPTION(max_idle_room_bytes),
    CHATWS_OPTION(tls_cert_file),
    CHATWS_OPTION(tls_key_file),
    CHATWS_OPTION(tls_key_passphrase),
    CHATWS_OPTION(tls_min_version),
    CHATWS_OPTION(tls_ciphers),
    CHATWS_OPTION(tls_ciphersuites),
    CHATWS_OPTION(tls_session_tickets),
    CHATWS_OPTION(metrics_host),
    CHATWS_OPTION(metrics_port),
    CHATWS_OPTION(max_messages_per_second),
    CHATWS_OPTION(message_burst),
    CHATWS_OPTION(max_handshakes_per_second_per_ip),
    CHATWS_OPTION(cluster_url),
    CHATWS_OPTION(node_name),
    CHATWS_OPTION(cluster_retention),
    CHATWS_OPTION(rate_limit_policy),
    CHATWS_OPTION(compression),
    CHATWS_OPTION(compression_threshold),
    CHATWS_OPTION(compression_window_bits),
    CHATWS_OPTION(compression_mem_level),
    CHATWS_OPTION(threads),
    CHATWS_OPTION(accept_mode),
};
#undef CHATWS_OPTION

void fill_options(const py::dict& d, chatws_options* o, OptionStrings* s) {
  for (auto item : d) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    if (v.is_none()) continue;  // None: the library's default
    const auto* e = std::find_if(std::begin(kOptions), std::end(kOptions),
                                 [&](const OptionEntry& x) { return key == x.key; });
    if (e == std::end(kOptions)) throw py::key_error("unknown chatws option: " + key);
    e->set(v, e->key, o, s);
  }
}

}  // namespace

// --- lifetime --------------------------------------------------------------

NativeServer::NativeServer(const py::dict& options, py::object owner_ref, Dispatch dispatch)
    : owner_ref_(std::move(owner_ref)), dispatch_(std::move(dispatch)) {
  chatws_options o;
  chatws_options_init(&o);
  OptionStrings strings;
  fill_options(options, &o, &strings);
  install_callbacks(&o, this);
  several_loops_ = o.threads != 0 && o.threads != 1;
  chatws_server* created = nullptr;
  // Binding and opening the history store may touch the disk.
  Result r = call_maybe_released(false, [&] { return chatws_server_create(&o, &created); });
  check(r);
  server_ = created;
}

NativeServer::~NativeServer() {
  try {
    if (server_ && !running()) close();
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable("chatws._native.Server.__del__");
  }
}

void NativeServer::close() {
  if (!server_) return;
  if (on_loop_thread()) raise_error(CHATWS_ESTATE, "cannot close a server from its own loop thread");
  // One closer only: another thread may be inside destroy (GIL released).
  if (closing_.exchange(true)) return;
  if (running()) {
    closing_.store(false);
    raise_error(CHATWS_ESTATE, "cannot close a server while its loop is running; stop it first");
  }
  chatws_server* s = server_;
  {
    py::gil_scoped_release nogil;
    // Calls from other threads that passed their UseGuard finish first.
    while (inflight_.load() != 0) std::this_thread::yield();
    chatws_server_destroy(s);  // runs on_close for every open connection
  }
  server_ = nullptr;
  if (pending_) {
    pending_->discard_as_unraisable("chatws server close");
    pending_.reset();
  }
  dispatch_ = Dispatch{};
  owner_ref_ = py::none();
}

PyObject* NativeServer::owner() const {
  if (!owner_ref_ || owner_ref_.is_none()) return nullptr;
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* obj = nullptr;
  if (PyWeakref_GetRef(owner_ref_.ptr(), &obj) <= 0) {
    PyErr_Clear();
    return nullptr;
  }
  return obj;
#else
  PyObject* obj = PyWeakref_GetObject(owner_ref_.ptr());
  if (!obj || obj == Py_None) {
    PyErr_Clear();
    return nullptr;
  }
  Py_INCREF(obj);
  return obj;
#endif
}

void NativeServer::callback_failed() {
  py::error_already_set e;
  if (e.matches(PyExc_Exception) || pending_) {
    e.discard_as_unraisable("chatws callback");
    return;
  }
  pending_.emplace(std::move(e));
}

void NativeServer::refuse_if_closing() {
  // close() may have looked for a running loop just before this thread
  // claimed it; one of the two always sees the other.
  if (closing_.load()) raise_error(CHATWS_ESTOPPED, "the server is closing");
}

void NativeServer::rethrow_pending() {
  if (!pending_) return;
  py::error_already_set e = std::move(*pending_);
  pending_.reset();
  throw e;
}

// --- loop ------------------------------------------------------------------

int NativeServer::port() {
  TryUse use(*this);
  return use ? chatws_server_port(server_) : 0;
}

int NativeServer::fd() {
  TryUse use(*this);
  return use ? chatws_server_fd(server_) : -1;
}

void NativeServer::run(int slice_ms) {
  UseGuard use(*this);
  LoopGuard loop(*this);
  refuse_if_closing();
  if (several_loops_) return run_loops(slice_ms);
  for (;;) {
    Result r;
    {
      py::gil_scoped_release nogil;
      r = call_c([&] { return chatws_server_poll(server_, slice_ms); });
    }
    rethrow_pending();
    if (r.rc == CHATWS_ESTOPPED) return;
    check(r);
    // Lets Python's signal handlers run (main thread only; elsewhere a no-op).
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

// Several loops: chatws_server_run() on a thread of its own (it runs them
// all, their callbacks taking the GIL), while this thread waits without the
// GIL and wakes every slice for Python's signal handlers (Ctrl-C stops the
// server, then raises here once the loops have returned).
void NativeServer::run_loops(int slice_ms) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = CHATWS_OK;
  std::string error;
  std::thread runner([&] {
    const int r = chatws_server_run(server_);
    std::lock_guard<std::mutex> lock(mu);
    rc = r;
    if (r < 0) error = failure_text(r);
    done = true;
    cv.notify_all();
  });
  std::optional<py::error_already_set> interrupted;
  for (;;) {
    {
      py::gil_scoped_release nogil;
      std::unique_lock<std::mutex> lock(mu);
      if (cv.wait_for(lock, std::chrono::milliseconds(slice_ms), [&] { return done; })) break;
    }
    if (!interrupted && PyErr_CheckSignals() != 0) {
      interrupted.emplace();  // stop, and raise once the loops are joined
      chatws_server_stop(server_);
    }
  }
  {
    py::gil_scoped_release nogil;
    runner.join();
  }
  if (interrupted) throw std::move(*interrupted);
  rethrow_pending();
  if (rc < 0 && rc != CHATWS_ESTOPPED) raise_error(rc, error);
}

py::object NativeServer::poll(int timeout_ms) {
  UseGuard use(*this);
  if (several_loops_)
    raise_error(CHATWS_ESTATE, "poll() is not available with threads > 1: each loop runs on its "
                               "own thread (use serve_forever() or start())");
  LoopGuard loop(*this);
  refuse_if_closing();
  Result r;
  {
    py::gil_scoped_release nogil;
    r = call_c([&] { return chatws_server_poll(server_, timeout_ms); });
  }
  rethrow_pending();
  if (r.rc == CHATWS_ESTOPPED) return py::none();
  check(r);
  return py::int_(r.rc);
}

void NativeServer::stop() {
  UseGuard use(*this);
  check(call_maybe_released(on_loop_thread(), [&] { return chatws_server_stop(server_); }));
}

bool NativeServer::stopped() {
  TryUse use(*this);
  return !use || chatws_server_stopped(server_) != 0;
}

bool NativeServer::running() const { return loop_thread_.load() != std::thread::id{}; }

bool NativeServer::on_loop_thread() const {
  return loop_thread_.load() == std::this_thread::get_id() || InCallback::current() == this;
}

thread_local const NativeServer* NativeServer::InCallback::current_ = nullptr;

// --- connections -----------------------------------------------------------

int NativeServer::send(uint64_t id, py::handle data) {
  Payload p(data);
  UseGuard use(*this);
  Result r = call_maybe_released(on_loop_thread(), [&] {
    return chatws_send(server_, id, p.data(), p.size(), p.opcode());
  });
  check(r);
  return r.rc;
}

void NativeServer::broadcast(py::handle data, uint64_t exclude) {
  Payload p(data);
  UseGuard use(*this);
  check(call_maybe_released(on_loop_thread(), [&] {
    return chatws_broadcast(server_, p.data(), p.size(), p.opcode(), exclude);
  }));
}

void NativeServer::close_connection(uint64_t id, int code, const std::string& reason) {
  UseGuard use(*this);
  check(call_maybe_released(on_loop_thread(), [&] {
    return chatws_close(server_, id, code, reason.empty() ? nullptr : reason.c_str());
  }));
}

size_t NativeServer::connection_count() {
  TryUse use(*this);
  return use ? chatws_connection_count(server_) : 0;
}

void NativeServer::chat_post(const std::string& room, const std::string& user,
                             const std::string& text) {
  UseGuard use(*this);
  // A loop-thread function: the engine refuses it from other threads
  // (CHATWS_ETHREAD). The history store may write to disk.
  check(call_maybe_released(on_loop_thread(), [&] {
    return chatws_chat_post(server_, room.c_str(), user.c_str(), text.c_str());
  }));
}

bool NativeServer::resolve_upgrade(uint64_t id, py::handle answer) {
  UseGuard use(*this);
  AnswerStore store;
  std::string why;
  if (!read_answer(answer.ptr(), &store, &why)) raise_error(CHATWS_EINVAL, why);
  // Any thread: from another it is queued for the loop and the loop woken.
  Result r = call_maybe_released(on_loop_thread(), [&] {
    return chatws_upgrade_resolve(server_, id, &store.answer);
  });
  if (r.rc == CHATWS_ENOCONN) return false;  // the no-op: nobody waits for it any more
  check(r);
  return true;
}

void NativeServer::reload_tls(const std::optional<std::string>& cert,
                              const std::optional<std::string>& key,
                              const std::optional<std::string>& passphrase) {
  UseGuard use(*this);
  auto c_str = [](const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; };
  check(call_maybe_released(on_loop_thread(), [&] {
    return chatws_server_reload_tls(server_, c_str(cert), c_str(key), c_str(passphrase));
  }));
}

// --- stats -----------------------------------------------------------------

namespace {

py::dict histogram_dict(const chatws_histogram& h) {
  static const uint64_t bounds_ns[CHATWS_HISTOGRAM_BOUNDS] = CHATWS_HISTOGRAM_BOUNDS_NS;
  py::tuple bounds(CHATWS_HISTOGRAM_BOUNDS), buckets(CHATWS_HISTOGRAM_BOUNDS + 1);
  for (int i = 0; i < CHATWS_HISTOGRAM_BOUNDS; ++i) bounds[i] = double(bounds_ns[i]) / 1e9;
  for (int i = 0; i <= CHATWS_HISTOGRAM_BOUNDS; ++i) buckets[i] = h.buckets[i];
  py::dict d;
  d["bounds"] = bounds;
  d["buckets"] = buckets;
  d["count"] = h.count;
  d["sum"] = double(h.sum_ns) / 1e9;
  return d;
}

}  // namespace

py::dict NativeServer::stats() {
  UseGuard use(*this);
  chatws_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  check(call_c([&] { return chatws_server_get_stats(server_, &st); }));
  static const char* const reasons[] = {"limit",   "origin",  "path", "bad_request", "timeout",
                                        "shutdown", "handler", "hook", "rate"};
  static const int codes[] = CHATWS_STATS_CLOSE_CODES;
  py::dict rejected, closes;
  for (int i = 0; i < int(sizeof reasons / sizeof reasons[0]); ++i)
    rejected[reasons[i]] = st.handshakes_rejected[i];
  for (int i = 0; i < CHATWS_STATS_CLOSE_OTHER; ++i) closes[py::str(std::to_string(codes[i]))] = st.closes[i];
  closes["other"] = st.closes[CHATWS_STATS_CLOSE_OTHER];
  py::dict d;
  d["version"] = st.version;
  d["start_time"] = double(st.start_time_ms) / 1e3;
  d["running"] = bool(st.running);
  d["accepting"] = bool(st.accepting);
  d["websocket_connections"] = st.websocket_connections;
  d["http_connections"] = st.http_connections;
  d["closing_connections"] = st.closing_connections;
  d["queued_output_bytes"] = st.queued_output_bytes;
  d["connections_accepted"] = st.connections_accepted;
  d["http_requests"] = st.http_requests;
  d["handshakes_accepted"] = st.handshakes_accepted;
  d["handshakes_rejected"] = rejected;
  d["closes"] = closes;
  d["messages_received"] = st.messages_received;
  d["messages_sent"] = st.messages_sent;
  d["bytes_received"] = st.bytes_received;
  d["bytes_sent"] = st.bytes_sent;
  d["broadcasts"] = st.broadcasts;
  d["broadcast_deliveries"] = st.broadcast_deliveries;
  d["slow_consumer_closes"] = st.slow_consumer_closes;
  d["slow_consumer_drops"] = st.slow_consumer_drops;
  d["tls_handshakes"] = st.tls_handshakes;
  d["tls_failures"] = st.tls_failures;
  d["log_lines_suppressed"] = st.log_lines_suppressed;
  d["loop_iterations"] = st.loop_iterations;
  d["loop_iteration"] = histogram_dict(st.loop_iteration);
  d["chat_enabled"] = bool(st.chat_enabled);
  d["history_ok"] = bool(st.history_ok);
  d["chat_rooms"] = st.chat_rooms;
  d["chat_members"] = st.chat_members;
  d["history_commits"] = st.history_commits;
  d["history_commit_failures"] = st.history_commit_failures;
  d["history_messages"] = st.history_messages;
  d["chat_deliveries"] = st.chat_deliveries;
  d["history_commit"] = histogram_dict(st.history_commit);
  d["cluster_enabled"] = bool(st.cluster_enabled);
  d["cluster_up"] = bool(st.cluster_up);
  d["cluster_round_trips"] = st.cluster_round_trips;
  d["cluster_failures"] = st.cluster_failures;
  d["cluster_missed"] = st.cluster_missed;
  d["deflate_calls"] = st.deflate_calls;
  d["deflate_bytes_in"] = st.deflate_bytes_in;
  d["deflate_bytes_out"] = st.deflate_bytes_out;
  d["compressed_messages_sent"] = st.compressed_messages_sent;
  d["inflate_bytes_in"] = st.inflate_bytes_in;
  d["inflate_bytes_out"] = st.inflate_bytes_out;
  return d;
}

py::object NativeServer::metrics_port() {
  TryUse use(*this);
  if (!use) return py::none();
  const int port = chatws_server_metrics_port(server_);
  return port > 0 ? py::object(py::int_(port)) : py::none();
}

}  // namespace chatws_py
