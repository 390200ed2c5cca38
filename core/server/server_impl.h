// Server::Impl: the state behind chatws::Server, shared by server.cpp
// (lifecycle, loop, cross-thread commands, timers) and server_io.cpp
// (accept, HTTP, WebSocket frames, output).
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/static_files.h"
#include "net/poller.h"
#include "net/socket.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "protocol/handshake.h"
#include "server/connection.h"
#include "server/conn_table.h"
#include "server/connection_pool.h"
#include "server/path_table.h"
#include "server/rate_limit.h"
#include "server/server.h"

namespace chatws {

enum class LoopState : uint8_t { Running, Stopping, Stopped };

struct Command {
  enum Kind : uint8_t { Send, Broadcast, Close, Resolve } kind;
  protocol::Opcode op = protocol::Opcode::Text;
  uint16_t code = 0;
  ConnId id = 0;  // target (Send, Close) or excluded (Broadcast)
  std::string data;
};

// An upgrade the hook left Pending (upgrade_hook.cpp): the handshake's
// result to send once resolved, input that came meanwhile, and the answer
// once a resolve call gave it.
struct PendingUpgrade {
  protocol::UpgradeResult upgrade;
  std::string early;  // bytes after the head that arrived while waiting
  bool resolved = false;
  bool in_hook = false;  // the hook is still running (its verdict not known yet)
  UpgradeVerdict verdict;
};

struct Server::Impl {
  static constexpr uint64_t kListenToken = ~uint64_t{0} - 2;
  static constexpr size_t kReadBufferSize = 64 * 1024;
  // One connection's turn in an iteration: one read (or what an earlier
  // turn left), and at most this many messages and control frames handled,
  // so that every ready connection is served in every iteration however
  // fast one of them sends.
  static constexpr int kMessagesPerTurn = 64;
  // Output of at most this many bytes in several frames is copied into
  // wbuf and written with write() instead of a writev of one iovec each.
  static constexpr size_t kCoalesceMax = 16 * 1024;
  // The flush list is written in about kFlushSteps iterations (at least
  // kFlushMinStep connections each), new input being read in between.
  static constexpr size_t kFlushSteps = 4;
  static constexpr size_t kFlushMinStep = 16;
  // Out of descriptors: how long the listener is left alone before the
  // next try (unless a connection closes first).
  static constexpr int kAcceptBackoffMs = 100;
  // HTTP output per connection: no further request is parsed while more
  // than this (or the cap, if smaller) is queued, and a static file is read
  // in chunks of kFileChunk (a pooled frame size) into at most this much
  // queued output; kFileRounds refills per flush, then the others' turn.
  static constexpr size_t kHttpWindow = 64 * 1024;
  static constexpr size_t kFileChunk = 16 * 1024;
  static constexpr int kFileRounds = 8;

  ServerConfig cfg;
  ServerHandler* handler = nullptr;
  net::Poller poller;
  net::Acceptor acceptor;
  int listen_fd = -1;
  bool accept_paused = false;  // listener out of the poll set (see pause_accepting)
  int64_t accept_retry_ms = 0;
  uint16_t port = 0;
  http::StaticFiles static_files{""};
  protocol::UpgradeConfig upgrade_cfg;
  protocol::InputBudget input_budget;  // before pool: every parser gives its share back
  protocol::ParserLimits limits;
  int tick_ms = 250;
  std::unique_ptr<net::TlsContext> tls;          // set: every connection is TLS
  std::unique_ptr<net::TlsStaging> tls_staging;  // with tls: the loop's ciphertext buffer

  ConnectionPool pool;                              // storage of every Connection
  ConnTable by_id;                                  // every live connection
  std::vector<Connection*> open;                    // WebSocket Open, for broadcast
  PathTable paths;                                  // request paths of open connections
  std::vector<Connection*> dirty;                   // output to flush (FIFO, see flush_all)
  std::vector<Connection*> dirty_first;             // ... and before those (see mark_dirty)
  size_t round_left = 0;                            // of dirty, still in this flush round
  size_t round_step = 0;                            // written per iteration in this round
  Connection* serving = nullptr;                    // whose on_message is running
  Connection* opening = nullptr;                    // whose on_open is running (its greeting)
  std::vector<Connection*> dead;                    // destroy at iteration end
  std::vector<Connection*> read_pending;            // turn due next iteration (input may be left)
  std::vector<Connection*> turns;                   // ... those of this iteration (see poll_once)
  std::vector<ConnId> close_reports;                // on_close due (deferred out of I/O paths)
  std::unordered_map<std::string, uint32_t> per_ip;
  ConnId next_id = 1;
  bool had_connections = false;  // since the last trim (see destroy_dead)
  size_t lingering = 0;  // connections done but for their FIN/EOF; not counted against limits
  std::atomic<size_t> ws_count{0};

  std::unique_ptr<uint8_t[]> rbuf{new uint8_t[kReadBufferSize]};
  std::unique_ptr<uint8_t[]> wbuf{new uint8_t[kCoalesceMax]};
  int64_t now_ms = 0;
  std::string_view delivering;  // text message being passed to on_message (validated)
  bool nudged = false;  // acts_directly() woke fd() since the last poll

  // Threads.
  std::atomic<std::thread::id> loop_thread{};
  std::thread::id owner_thread = std::this_thread::get_id();
  std::mutex cmd_mu;
  std::vector<Command> cmds;
  // Set by post() when it queues into an empty batch: lets the loop skip the
  // lock (and posters skip the eventfd write) when nothing is pending, which
  // is every iteration of a server driven only by its own sockets.
  std::atomic<bool> cmds_posted{false};
  std::vector<Command> cmds_work;

  // Upgrades awaiting the hook's decision, by connection id: resolve calls
  // come from any thread, hence the lock (taken per pending handshake only).
  // Handshake buckets by address group (max_handshakes_per_second_per_ip);
  // cleared when it reaches kMaxHandshakeAddrs entries, so that a spray
  // of addresses costs bounded memory (their buckets start full again).
  static constexpr size_t kMaxHandshakeAddrs = 65536;
  std::unordered_map<std::string, TokenBucket> handshake_buckets;
  bool handshake_allowed(Connection* c);
  std::mutex pending_mu;
  std::unordered_map<ConnId, PendingUpgrade> pending;

  std::atomic<bool> stop_requested{false};
  std::atomic<LoopState> state{LoopState::Running};
  int64_t stop_deadline = 0;

  Impl() = default;
  ~Impl();

  // server.cpp
  // Who is calling: the thread inside run()/poll(), the owner thread
  // between its poll() calls (a host with its own event loop), or another.
  enum class Caller : uint8_t { InLoop, BetweenPolls, Other };
  Caller caller() const;
  bool on_loop_thread() const { return caller() != Caller::Other; }
  // True if `who` may act on the loop's state at once (else: post()).
  bool acts_directly(Caller who);
  // `on_loop`: the caller is on the loop thread (it asks once per call).
  int check_message(protocol::Opcode op, std::string_view payload, bool on_loop) const;
  int poll_once(int timeout_ms);
  // The next iteration has work even if no event comes.
  bool work_left() const {
    return !dirty.empty() || !dirty_first.empty() || !read_pending.empty() || !dead.empty();
  }
  void run_commands();
  void post(Command&& c);
  void on_tick();
  void begin_stop();
  void finish_stop();
  void update_tick();
  Connection* find_open(ConnId id) const;
  ConnInfo* conn_info(Connection* c);  // builds it on first use

  void set_state(Connection* c, ConnState s) {
    lingering += (s == ConnState::Lingering) - (c->state == ConnState::Lingering);
    c->state = s;
  }

  void log(LogLevel level, std::string_view message) { handler->on_log(level, message); }

  // server_io.cpp
  void accept_all();
  void pause_accepting();
  void resume_accepting();
  void peer_ended(Connection* c);  // the peer closed its side
  void on_event(const net::PollEvent& ev);
  void read_ready(Connection* c);
  size_t on_bytes(Connection* c, uint8_t* data, size_t n);  // bytes handled this turn
  void on_http_bytes(Connection* c, const uint8_t* data, size_t n);
  size_t feed_frames(Connection* c, uint8_t* data, size_t n);  // until the turn's budget
  void on_ws_bytes(Connection* c, uint8_t* data, size_t n);    // feed_frames, keeping the rest
  void take_turn_later(Connection* c);
  bool handle_request(Connection* c);
  bool handle_upgrade(Connection* c, const protocol::HttpRequest& req);
  // upgrade_hook.cpp: the host's hook, pending upgrades, completing one.
  bool run_upgrade_hook(Connection* c, const protocol::HttpRequest& req,
                        protocol::UpgradeResult& u, UpgradeVerdict* v);
  bool complete_upgrade(Connection* c, const protocol::HttpRequest& req,
                        protocol::UpgradeResult& u, UpgradeVerdict* v, std::string_view early);
  void send_reject(Connection* c, const UpgradeVerdict& v);
  void apply_resolution(ConnId id);
  void keep_early_input(Connection* c, const uint8_t* data, size_t n);
  void drop_pending(Connection* c);  // its entry, if pending
  void pending_timed_out(Connection* c);
  void respond_and_close(Connection* c, int status, std::string_view message,
                         std::string_view extra_headers = {});
  int enqueue(Connection* c, SharedFrame* f);
  // http_output.cpp: HTTP responses bounded per connection, files streamed.
  size_t http_window() const { return std::min(cfg.max_output_buffer, kHttpWindow); }
  bool http_busy(Connection* c) const { return c->file() || c->out.bytes() >= http_window(); }
  void send_file(Connection* c, http::FileBody&& body);
  void fill_file(Connection* c);
  bool continue_http(Connection* c);
  void send_close(Connection* c, uint16_t code, std::string_view reason);
  void mark_dirty(Connection* c);
  bool write_out(Connection* c);  // write what the kernel takes; false if it failed
  void flush(Connection* c);      // write_out, then on_drain / shutdown when emptied
  void flush_all();
  void leave_open(Connection* c);
  void linger(Connection* c);
  void report_close(Connection* c);
  void run_close_reports();
  void abort(Connection* c, uint16_t code);
  void destroy(Connection* c);
  void destroy_dead();
  // server_tls.cpp: the TLS transport's side of reading, writing and closing.
  bool start_tls(Connection* c);
  void tls_read_ready(Connection* c);
  bool tls_write_out(Connection* c);
  // True once the output, ciphertext included, is all with the kernel;
  // false while the handshake is not done.
  bool tls_drained(Connection* c) const;
  bool tls_handshaking(const Connection* c) const;
  // close_notify, then FIN (when the ciphertext is out); false if it failed.
  bool tls_shutdown(Connection* c);
  void tls_refuse_plain_http(Connection* c);
  void discard_input(Connection* c);
  int direct_send(ConnId id, protocol::Opcode op, std::string_view payload);
  int direct_broadcast(SharedFrame* f, ConnId exclude);
  int direct_close(ConnId id, uint16_t code, std::string_view reason);
};

}  // namespace chatws
