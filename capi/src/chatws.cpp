// The C ABI over the C++ core. Every entry point catches all exceptions:
// none may cross into C. Options are read only up to the caller's
// struct_size, so binaries built against an older header keep working.
#include "chatws.h"

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_router.h"
#include "chat/chat_service.h"
#include "protocol/frame.h"
#include "server/server.h"
#include "upgrade_bridge.h"

using chatws::ConnId;
using chatws::protocol::Opcode;

namespace {

thread_local std::string g_last_error;

int set_error(int code, std::string msg) {
  g_last_error = std::move(msg);
  return code;
}

}  // namespace

int chatws::capi::set_error(int code, std::string msg) { return ::set_error(code, std::move(msg)); }

namespace {

// Runs f, turning any escaping exception into an error code.
template <class F>
int guarded(F&& f) noexcept {
  try {
    g_last_error.clear();
    return f();
  } catch (const std::bad_alloc&) {
    return set_error(CHATWS_ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return set_error(CHATWS_EINTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(CHATWS_EINTERNAL, "internal error");
  }
}

std::vector<std::string> split_list(const char* s) {
  std::vector<std::string> out;
  if (!s) return out;
  std::string_view v(s);
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

Opcode to_opcode(int opcode) {
  return opcode == CHATWS_BINARY ? Opcode::Binary
         : opcode == CHATWS_TEXT ? Opcode::Text
                                 : Opcode::Continuation;  // rejected as invalid
}

const char* describe(int rc) { return chatws_strerror(rc); }

constexpr const char* kLoopTaken =
    "the loop is taken: by a callback of this thread (run/poll may not be re-entered), by "
    "another thread in run/poll, or by the owner thread's call between its polls";
constexpr const char* kNotLoop =
    "loop-thread function: call it from a callback, or between polls from the thread that "
    "polled last";

// The result of a send or broadcast, with a specific message for each error.
int message_result(int rc, Opcode op) {
  if (rc >= 0) return rc;
  if (rc == CHATWS_EINVAL && op == Opcode::Continuation)
    return set_error(rc, "opcode must be CHATWS_TEXT or CHATWS_BINARY");
  if (rc == CHATWS_EINVAL) return set_error(rc, "text message is not valid UTF-8");
  return set_error(rc, describe(rc));
}

}  // namespace

// The handle: the engine, the optional chat, and the host's callbacks. The
// server's handler is the ChatRouter; this object is its host side, so the C
// callbacks see what chat::ChatRouter gives the host: on_open, on_close and
// on_drain of every connection, on_message of non-chat connections only.
struct chatws_server final : chatws::ServerHandler {
  chatws_options opts{};
  // Declared before chat and server: destroyed after them, since the
  // server's destructor still reports closes through the router.
  chatws::chat::ChatRouter router{this};
  // The cluster's Redis connections leave the loop before the server goes
  // (a handle freed on a failed create, too).
  ~chatws_server() override {
    if (chat) chat->stop_cluster();
  }
  std::unique_ptr<chatws::chat::ChatService> chat;
  std::unique_ptr<chatws::Server> server;
  std::vector<std::string> strings;  // keeps option strings alive
  chatws::capi::RawFlood flood;      // raw connections' message rate (issue 12)

  void on_open(ConnId id) override {
    if (opts.on_open) opts.on_open(this, id, opts.user);
  }
  void on_message(ConnId id, Opcode op, const char* data, size_t len) override {
    if (flood.limit.enabled() && !flood.admit(id)) {
      if (!flood.drop) server->close(id, CHATWS_CLOSE_POLICY, "rate limited");
      return;
    }
    if (opts.on_message) opts.on_message(this, id, data, len, op == Opcode::Binary, opts.user);
  }
  void on_close(ConnId id, uint16_t code, std::string_view reason) override {
    if (flood.limit.enabled()) flood.forget(id);
    if (opts.on_close) {
      std::string r(reason);
      opts.on_close(this, id, code, r.c_str(), opts.user);
    }
  }
  void on_drain(ConnId id) override {
    if (opts.on_drain) opts.on_drain(this, id, opts.user);
  }
  bool wants_upgrade_requests() const override { return opts.on_upgrade != nullptr; }
  void on_upgrade_request(const chatws::UpgradeRequest& r, chatws::UpgradeVerdict* v) override {
    chatws::capi::call_upgrade_hook(this, opts.on_upgrade, opts.user, r, v);
  }
  void on_log(chatws::LogLevel level, std::string_view message) override {
    if (opts.on_log) {
      std::string m(message);
      opts.on_log(this, int(level), m.c_str(), opts.user);
    }
  }

  bool moderate(chatws::chat::ChatDraft& d, std::string* reason) {
    std::string room(d.room);
    chatws_chat_message m{room.c_str(), d.user.data(), d.user.size(), d.text.data(),
                          d.text.size(), d.time_ms};
    int verdict = opts.on_chat(this, d.sender, &m, opts.user);
    if (verdict != CHATWS_CHAT_ACCEPT) {
      *reason = "message rejected by the server";
      return false;
    }
    // The host may have pointed user/text at its own buffers: copy them now.
    if (m.user != d.user.data() || m.user_len != d.user.size())
      d.user.assign(m.user ? m.user : "", m.user ? m.user_len : 0);
    if (m.text != d.text.data() || m.text_len != d.text.size())
      d.text.assign(m.text ? m.text : "", m.text ? m.text_len : 0);
    return true;
  }
};

chatws::Server* chatws::capi::engine(chatws_server* s) { return s->server.get(); }

extern "C" {

const char* chatws_version(void) { return CHATWS_VERSION_STRING; }
int chatws_version_number(void) { return CHATWS_VERSION_NUMBER; }

const char* chatws_strerror(int code) {
  switch (code) {
    case CHATWS_OK: return "success";
    case CHATWS_EINVAL: return "invalid argument";
    case CHATWS_ENOMEM: return "out of memory";
    case CHATWS_ENOCONN: return "no such connection";
    case CHATWS_ETHREAD: return "called from a thread that is not the loop thread";
    case CHATWS_ESTATE: return "operation not allowed in the current state";
    case CHATWS_ESYSTEM: return "system call failed";
    case CHATWS_ETOOBIG: return "message too big";
    case CHATWS_EFULL: return "output queue full: message dropped";
    case CHATWS_ESTOPPED: return "server stopped";
    case CHATWS_ESTORAGE: return "history storage failed";
    case CHATWS_EINTERNAL: return "internal error";
    default: return "unknown error";
  }
}

const char* chatws_last_error(void) { return g_last_error.c_str(); }

void chatws_options_init(chatws_options* opts) {
  if (!opts) return;
  std::memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
}

int chatws_server_create(const chatws_options* user_opts, chatws_server** out) {
  if (out) *out = nullptr;
  return guarded([&]() -> int {
    if (!user_opts || !out) return set_error(CHATWS_EINVAL, "options and out must not be NULL");
    if (user_opts->struct_size < offsetof(chatws_options, on_open) ||
        user_opts->struct_size > (size_t{1} << 16))
      return set_error(CHATWS_EINVAL,
                       "options.struct_size is invalid: initialise with chatws_options_init()");
    auto s = std::make_unique<chatws_server>();
    std::memcpy(&s->opts, user_opts, std::min(user_opts->struct_size, sizeof(chatws_options)));
    s->opts.struct_size = sizeof(chatws_options);
    const chatws_options& o = s->opts;

    if (o.cluster_url && *o.cluster_url && !o.chat)
      return set_error(CHATWS_EINVAL, "cluster_url needs chat (the cluster shares chat rooms)");
    chatws::ServerConfig cfg;
    cfg.host = o.host ? o.host : "127.0.0.1";
    cfg.port = o.port;
    cfg.static_dir = o.static_dir ? o.static_dir : "";
    cfg.subprotocols = split_list(o.subprotocols);
    cfg.allowed_origins = split_list(o.allowed_origins);
    cfg.websocket_path_prefix = o.websocket_path_prefix ? o.websocket_path_prefix : "";
    if (o.max_request_size) cfg.max_request_size = o.max_request_size;
    if (o.max_message_size) cfg.max_message_size = o.max_message_size;
    if (o.max_fragments) cfg.max_fragments = o.max_fragments;
    if (o.max_output_buffer) cfg.max_output_buffer = o.max_output_buffer;
    cfg.max_buffered_input = o.max_buffered_input;  // 0: the engine's default
    if (o.max_connections) cfg.max_connections = o.max_connections;
    cfg.max_connections_per_ip = o.max_connections_per_ip;
    if (o.ipv6_prefix_length > 128)
      return set_error(CHATWS_EINVAL, "ipv6_prefix_length must be between 1 and 128 (0: 64)");
    if (o.ipv6_prefix_length) cfg.ipv6_prefix_length = o.ipv6_prefix_length;
    if (o.socket_send_buffer < -1)
      return set_error(CHATWS_EINVAL,
                       "socket_send_buffer must be >= 0 (0: the default), or -1 (the kernel's autotuning)");
    if (o.socket_send_buffer) cfg.socket_send_buffer = o.socket_send_buffer;  // -1: autotuning
    if (o.slow_consumer_policy != CHATWS_SLOW_CLOSE && o.slow_consumer_policy != CHATWS_SLOW_DROP)
      return set_error(CHATWS_EINVAL, "slow_consumer_policy must be CHATWS_SLOW_CLOSE or CHATWS_SLOW_DROP");
    cfg.slow_policy = o.slow_consumer_policy == CHATWS_SLOW_DROP
                          ? chatws::SlowConsumerPolicy::Drop
                          : chatws::SlowConsumerPolicy::Close;
    auto timeout = [](int v, int def) { return v == 0 ? def : (v < 0 ? -1 : v); };
    cfg.handshake_timeout_ms = timeout(o.handshake_timeout_ms, cfg.handshake_timeout_ms);
    cfg.idle_timeout_ms = timeout(o.idle_timeout_ms, cfg.idle_timeout_ms);
    cfg.close_timeout_ms = timeout(o.close_timeout_ms, cfg.close_timeout_ms);
    cfg.drain_timeout_ms = timeout(o.drain_timeout_ms, cfg.drain_timeout_ms);
    if (o.chat && cfg.subprotocols.empty()) cfg.subprotocols = {"chatws.v1", "json"};
    if (o.tls_cert_file || o.tls_key_file) {
      if (!o.tls_cert_file || !o.tls_key_file)
        return set_error(CHATWS_EINVAL, "TLS needs both tls_cert_file and tls_key_file");
      cfg.tls.cert_file = o.tls_cert_file;
      cfg.tls.key_file = o.tls_key_file;
      cfg.tls.key_passphrase = o.tls_key_passphrase ? o.tls_key_passphrase : "";
      if (o.tls_min_version != 0 && o.tls_min_version != CHATWS_TLS_1_2 &&
          o.tls_min_version != CHATWS_TLS_1_3)
        return set_error(CHATWS_EINVAL, "tls_min_version must be CHATWS_TLS_1_2 or CHATWS_TLS_1_3");
      cfg.tls.min_version = o.tls_min_version ? o.tls_min_version : CHATWS_TLS_1_2;
      cfg.tls.ciphers = o.tls_ciphers ? o.tls_ciphers : "";
      cfg.tls.ciphersuites = o.tls_ciphersuites ? o.tls_ciphersuites : "";
      if (o.tls_session_tickets != 0 && o.tls_session_tickets != -1)
        return set_error(CHATWS_EINVAL, "tls_session_tickets must be 0 (on) or -1 (off)");
      cfg.tls.session_tickets = o.tls_session_tickets == 0;
    }

    cfg.version = CHATWS_VERSION_STRING;
    if (o.metrics_host || o.metrics_port) {
      if (o.metrics_port < 0 || o.metrics_port > 65535)
        return set_error(CHATWS_EINVAL, "metrics_port must be between 0 and 65535");
      cfg.metrics_host = o.metrics_host ? o.metrics_host : "127.0.0.1";
      cfg.metrics_port = o.metrics_port;
    }
    if (o.max_messages_per_second < -1 || o.message_burst < 0)
      return set_error(CHATWS_EINVAL, "max_messages_per_second must be >= -1 and message_burst >= 0");
    if (o.rate_limit_policy != CHATWS_RATE_CLOSE && o.rate_limit_policy != CHATWS_RATE_DROP)
      return set_error(CHATWS_EINVAL, "rate_limit_policy must be CHATWS_RATE_CLOSE or CHATWS_RATE_DROP");
    if (o.max_messages_per_second > 0) {
      s->flood.limit = {uint32_t(o.max_messages_per_second),
                        uint32_t(o.message_burst ? o.message_burst : o.max_messages_per_second)};
    }
    s->flood.drop = o.rate_limit_policy == CHATWS_RATE_DROP;
    s->flood.locked = o.threads != 0 && o.threads != 1;
    cfg.max_handshakes_per_second_per_ip = o.max_handshakes_per_second_per_ip;
    switch (o.compression) {
      case CHATWS_COMPRESSION_SHARED: cfg.compression.mode = chatws::CompressionMode::Shared; break;
      case CHATWS_COMPRESSION_DEDICATED: cfg.compression.mode = chatws::CompressionMode::Dedicated; break;
      case CHATWS_COMPRESSION_OFF: cfg.compression.mode = chatws::CompressionMode::Off; break;
      default:
        return set_error(CHATWS_EINVAL, "compression must be CHATWS_COMPRESSION_SHARED, _DEDICATED or _OFF");
    }
    if (o.compression_threshold) cfg.compression.threshold = o.compression_threshold;
    if (o.compression_window_bits != 0 && (o.compression_window_bits < 9 || o.compression_window_bits > 15))
      return set_error(CHATWS_EINVAL, "compression_window_bits must be between 9 and 15 (0: 15)");
    if (o.compression_window_bits) cfg.compression.window_bits = uint8_t(o.compression_window_bits);
    if (o.compression_mem_level < 0 || o.compression_mem_level > 9)
      return set_error(CHATWS_EINVAL, "compression_mem_level must be between 1 and 9 (0: 8)");
    if (o.compression_mem_level) cfg.compression.mem_level = uint8_t(o.compression_mem_level);
    if (o.compression_always != 0 && o.compression_always != 1)
      return set_error(CHATWS_EINVAL, "compression_always must be 0 or 1");
    cfg.compression.always = o.compression_always == 1;
    if (o.threads < -1 || o.threads > 256)
      return set_error(CHATWS_EINVAL, "threads must be between 1 and 256, 0 (the default: 1) or -1 (one per core)");
    cfg.threads = o.threads == 0 ? 1 : o.threads == -1 ? 0 : unsigned(o.threads);
    if (o.accept_mode != CHATWS_ACCEPT_REUSEPORT && o.accept_mode != CHATWS_ACCEPT_HANDOFF)
      return set_error(CHATWS_EINVAL, "accept_mode must be CHATWS_ACCEPT_REUSEPORT or CHATWS_ACCEPT_HANDOFF");
    cfg.accept_mode = o.accept_mode == CHATWS_ACCEPT_HANDOFF ? chatws::ServerConfig::AcceptMode::Handoff
                                                            : chatws::ServerConfig::AcceptMode::ReusePort;

    std::string err;
    int code = CHATWS_EINTERNAL;
    s->server = chatws::Server::create(cfg, &s->router, &err, &code);
    if (!s->server) return set_error(code, err);

    if (o.chat) {
      chatws::chat::ChatConfig cc;
      cc.history_path = o.history_path ? o.history_path : "";
      if (o.history_size) cc.history_size = o.history_size;
      if (o.max_user_length) cc.max_user_length = o.max_user_length;
      if (o.max_text_length) cc.max_text_length = o.max_text_length;
      if (o.max_rooms) cc.max_rooms = o.max_rooms;
      if (o.max_idle_room_bytes) cc.max_idle_room_bytes = o.max_idle_room_bytes;
      if (o.max_messages_per_second == -1) {
        cc.rate.per_second = chatws::chat::ChatConfig::kRateOff;
      } else {
        cc.rate = {uint32_t(o.max_messages_per_second), uint32_t(o.message_burst)};  // 0: defaults
      }
      if (o.cluster_url) cc.cluster_url = o.cluster_url;
      if (o.node_name) cc.node_name = o.node_name;
      cc.cluster_retention = o.cluster_retention;
      // The chat's lines go to the host's on_log like the engine's (s outlives the chat).
      cc.log = [h = s.get()](chatws::LogLevel level, std::string_view line) { h->on_log(level, line); };
      s->chat = chatws::chat::ChatService::create(*s->server, cc, &err, &code);
      if (!s->chat) return set_error(code, err);
      s->router.attach(s->server.get(), s->chat.get());
      if (o.on_chat) {
        chatws_server* raw = s.get();
        s->chat->set_moderator([raw](chatws::chat::ChatDraft& d, std::string* reason) {
          return raw->moderate(d, reason);
        });
      }
    }
    // Strings in the options are not kept past this call: clear the copies.
    s->opts.host = s->opts.static_dir = s->opts.subprotocols = nullptr;
    s->opts.allowed_origins = s->opts.websocket_path_prefix = s->opts.history_path = nullptr;
    s->opts.tls_cert_file = s->opts.tls_key_file = s->opts.tls_key_passphrase = nullptr;
    s->opts.tls_ciphers = s->opts.tls_ciphersuites = s->opts.metrics_host = nullptr;
    s->opts.cluster_url = s->opts.node_name = nullptr;
    *out = s.release();
    return CHATWS_OK;
  });
}

void chatws_server_destroy(chatws_server* s) {
  if (!s) return;
  try {
    // The connections are closed and reported while the handle is whole:
    // the host's on_close (and whatever it calls, chatws_conn_user_data to
    // free its state first of all) finds the server and its connections.
    if (int rc = s->server->shutdown(); rc != CHATWS_OK) {
      // From a callback, or while another thread runs the loop: freeing it
      // now would pull the loop out from under that thread. Nothing done.
      set_error(rc, "chatws_server_destroy: called from a callback or while a thread runs the "
                    "loop; the server was not destroyed");
      return;
    }
    // The teardown ended with on_iteration_end (the chat's last commit),
    // unless a completed stop had made it already.
    // The cluster's Redis connections leave the loop while it exists.
    if (s->chat) s->chat->stop_cluster();
    s->server.reset();
    s->router.detach();
    s->chat.reset();
  } catch (...) {
  }
  delete s;
}

int chatws_server_port(const chatws_server* s) { return s ? int(s->server->port()) : int(CHATWS_EINVAL); }
constexpr const char* kSeveralLoops =
    "not available with threads > 1: each loop runs on its own thread and there is no single "
    "descriptor or iteration to drive; use chatws_server_run()";

int chatws_server_fd(const chatws_server* s) {
  if (!s) return CHATWS_EINVAL;
  if (s->server->loop_count() > 1) return set_error(CHATWS_ESTATE, std::string("chatws_server_fd: ") + kSeveralLoops);
  return s->server->fd();
}
int chatws_server_stopped(const chatws_server* s) { return s ? s->server->stopped() : 1; }

int chatws_server_run(chatws_server* s) {
  return guarded([&]() -> int {
    if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
    int rc = s->server->run();
    if (rc == CHATWS_ESTATE) return set_error(rc, kLoopTaken);
    if (rc < 0) return set_error(rc, std::string("loop failed: ") + describe(rc));
    return rc;
  });
}

int chatws_server_poll(chatws_server* s, int timeout_ms) {
  return guarded([&]() -> int {
    if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
    if (s->server->loop_count() > 1)
      return set_error(CHATWS_ESTATE, std::string("chatws_server_poll: ") + kSeveralLoops);
    int rc = s->server->poll(timeout_ms);
    if (rc == CHATWS_ESTATE) return set_error(rc, kLoopTaken);
    if (rc < 0 && rc != CHATWS_ESTOPPED) return set_error(rc, std::string("poll failed: ") + describe(rc));
    return rc;
  });
}

int chatws_server_stop(chatws_server* s) {
  if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
  s->server->stop();
  return CHATWS_OK;
}

int chatws_server_reload_tls(chatws_server* s, const char* cert_file, const char* key_file,
                             const char* key_passphrase) {
  return guarded([&]() -> int {
    if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
    std::string err;
    int rc = s->server->reload_tls(cert_file ? cert_file : "", key_file ? key_file : "",
                                   key_passphrase ? key_passphrase : "", &err);
    return rc == CHATWS_OK ? rc : set_error(rc, err);
  });
}

int chatws_send(chatws_server* s, chatws_conn_id conn, const void* data, size_t len, int opcode) {
  return guarded([&]() -> int {
    if (!s || (!data && len)) return set_error(CHATWS_EINVAL, "server or data is NULL");
    Opcode op = to_opcode(opcode);
    return message_result(
        s->server->send(conn, op, std::string_view(static_cast<const char*>(data), len)), op);
  });
}

int chatws_broadcast(chatws_server* s, const void* data, size_t len, int opcode,
                     chatws_conn_id exclude) {
  return guarded([&]() -> int {
    if (!s || (!data && len)) return set_error(CHATWS_EINVAL, "server or data is NULL");
    Opcode op = to_opcode(opcode);
    return message_result(
        s->server->broadcast(op, std::string_view(static_cast<const char*>(data), len), exclude), op);
  });
}

int chatws_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason) {
  return guarded([&]() -> int {
    if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
    if (code < 1000 || code > 4999)
      return set_error(CHATWS_EINVAL, "close code must be between 1000 and 4999");
    int rc = s->server->close(conn, uint16_t(code), reason ? reason : "");
    if (rc == CHATWS_EINVAL)
      return set_error(rc, "close code not allowed by RFC 6455 7.4, or reason not UTF-8 / over 123 bytes");
    if (rc < 0) return set_error(rc, describe(rc));
    return rc;
  });
}

int chatws_conn_set_user_data(chatws_server* s, chatws_conn_id conn, void* data) {
  if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
  chatws::Server::LoopAccess loop(*s->server, conn);
  if (!loop) return set_error(CHATWS_ETHREAD, kNotLoop);
  chatws::ConnInfo* info = s->server->mutable_info(conn);
  if (!info) return set_error(CHATWS_ENOCONN, "no such connection");
  info->user_data = data;
  return CHATWS_OK;
}

void* chatws_conn_user_data(chatws_server* s, chatws_conn_id conn) {
  if (!s) return nullptr;
  chatws::Server::LoopAccess loop(*s->server, conn);
  if (!loop) return nullptr;
  const chatws::ConnInfo* info = s->server->info(conn);
  return info ? info->user_data : nullptr;
}

int chatws_conn_get_info(chatws_server* s, chatws_conn_id conn, chatws_conn_info* out) {
  if (!s || !out) return set_error(CHATWS_EINVAL, "server or info is NULL");
  if (out->struct_size < offsetof(chatws_conn_info, queued_bytes))
    return set_error(CHATWS_EINVAL, "info.struct_size must be sizeof(chatws_conn_info)");
  chatws::Server::LoopAccess loop(*s->server, conn);
  if (!loop) return set_error(CHATWS_ETHREAD, kNotLoop);
  const chatws::ConnInfo* info = s->server->info(conn);
  if (!info) return set_error(CHATWS_ENOCONN, "no such connection");
  out->remote_address = info->remote_address.c_str();
  out->remote_port = info->remote_port;
  out->path = info->path.c_str();
  out->subprotocol = info->subprotocol.c_str();
  if (out->struct_size >= offsetof(chatws_conn_info, queued_bytes) + sizeof(size_t))
    out->queued_bytes = info->queued_bytes;
  if (out->struct_size >= offsetof(chatws_conn_info, dropped_messages) + sizeof(uint64_t))
    out->dropped_messages = info->dropped;
  if (out->struct_size >= offsetof(chatws_conn_info, query) + sizeof(const char*)) {
    out->identity = info->has_identity ? info->identity.c_str() : nullptr;
    out->query = info->query.c_str();
  }
  return CHATWS_OK;
}

size_t chatws_connection_count(const chatws_server* s) {
  return s ? s->server->connection_count() : 0;
}

int chatws_connections(chatws_server* s, chatws_conn_id* ids, size_t cap) {
  return guarded([&]() -> int {
    if (!s || (!ids && cap)) return set_error(CHATWS_EINVAL, "server or ids is NULL");
    chatws::Server::LoopAccess loop(*s->server);
    if (!loop) return set_error(CHATWS_ETHREAD, kNotLoop);
    std::vector<ConnId> all;
    s->server->connection_ids(&all);
    for (size_t i = 0; i < all.size() && i < cap; ++i) ids[i] = all[i];
    return int(all.size());
  });
}

int chatws_chat_post(chatws_server* s, const char* room, const char* user, const char* text) {
  return guarded([&]() -> int {
    if (!s || !user || !text) return set_error(CHATWS_EINVAL, "server, user and text are required");
    if (!s->chat) return set_error(CHATWS_EINVAL, "chat mode is not enabled (options.chat)");
    chatws::Server::LoopAccess loop(*s->server);
    if (!loop) return set_error(CHATWS_ETHREAD, kNotLoop);
    if (s->server->stopped())
      return set_error(CHATWS_ESTOPPED, "the server has stopped (or is being destroyed)");
    int rc = s->chat->post(room ? room : "", user, text);
    if (rc == CHATWS_EINVAL) return set_error(rc, "invalid room name, user or text");
    if (rc == CHATWS_EFULL) return set_error(rc, "too many rooms (max_rooms): the room was not created");
    if (rc < 0) return set_error(rc, describe(rc));
    return rc;
  });
}

}  // extern "C"

// For capi/src/stats.cpp (which does not see the handle's definition).
chatws::Server* chatws_internal_server(const chatws_server* s) { return s->server.get(); }
