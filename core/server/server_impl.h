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
#include "protocol/deflate_codec.h"
#include "protocol/handshake.h"
#include "server/connection.h"
#include "server/conn_table.h"
#include "server/connection_pool.h"
#include "server/connection_counts.h"
#include "server/log_limiter.h"
#include "server/path_table.h"
#include "server/rate_limit.h"
#include "server/server.h"

namespace chatws {

enum class LoopState : uint8_t { Running, Stopping, Stopped };

struct Command {
  // SendFrame, BroadcastFrame: an encoded frame another loop of the group
  // hands over by reference (see loop_group.h). Adopt: a socket loop 0
  // accepted for this loop (AcceptMode::Handoff): fd in `id`, the peer's
  // port in `code`, its address in `data`; whoever drops the command
  // unrun closes the fd (close_adoptions).
  enum Kind : uint8_t { Send, Broadcast, Close, Resolve, SendFrame, BroadcastFrame, Adopt } kind;
  protocol::Opcode op = protocol::Opcode::Text;
  uint16_t code = 0;
  ConnId id = 0;  // target (Send, Close) or excluded (Broadcast)
  std::string data;
  FrameRef frame;
};

class LoopGroup;

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

// A descriptor the handler watches (Server::watch_fd, fd_watch.cpp).
struct FdWatch {
  uint64_t id = 0;
  int fd = -1;
  bool want_read = false, want_write = false;
  bool in_set = false;  // in the epoll set (some interest)
  Server::FdCallback cb;
};

struct Server::Impl {
  static constexpr uint64_t kListenToken = ~uint64_t{0} - 2;
  static constexpr uint64_t kMetricsToken = ~uint64_t{0} - 3;
  // Watched descriptors: token kWatchTokenTop - id, ids from 1 up (far
  // above any Connection pointer, which is the token of a connection).
  static constexpr uint64_t kWatchTokenTop = ~uint64_t{0} - 16;
  static constexpr uint64_t kMaxWatchId = uint64_t{1} << 40;
  static bool is_watch_token(uint64_t t) {
    return t <= kWatchTokenTop && t > kWatchTokenTop - kMaxWatchId;
  }
  static constexpr size_t kReadBufferSize = 64 * 1024;
  // One connection's turn in an iteration: one read (or what an earlier
  // turn left), and at most this many messages and control frames handled,
  // so that every ready connection is served in every iteration however
  // fast one of them sends.
  static constexpr int kMessagesPerTurn = 64;
  // A bulk sender (its last turn spent the whole budget, and it has had a
  // turn due ever since) gets only this many in an iteration where other
  // connections had a turn before it: they wait for its turn before their
  // output is flushed. Alone, or next to other bulk senders only, it keeps
  // kMessagesPerTurn, so that throughput (fewer, fuller iterations) is not
  // given up when nobody is waiting.
  static constexpr int kBulkTurn = 8;
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
  // max_buffered_input, the server's: a group's loops share loop 0's.
  // Before pool: every parser gives its share back.
  std::shared_ptr<protocol::InputBudget> input_budget;
  protocol::ParserLimits limits;
  int tick_ms = 250;
  // Set: every connection is TLS. One context for every loop of a group:
  // one certificate (reloaded once for all) and one set of ticket keys, so
  // a session resumes on whichever loop the client lands.
  std::shared_ptr<net::TlsContext> tls;
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
  std::vector<Connection*> turns;                   // ... those of this iteration (see serve_turns)
  // Connections whose input pause_input paused, with the time reading resumes.
  std::vector<std::pair<Connection*, int64_t>> paused;
  uint32_t light_turns = 0;  // turns of connections that are not bulk senders, this iteration
  int turn_budget = kMessagesPerTurn;  // messages the current turn may still handle (FrameEvents)
  // The events of the last wait, handled from ev_next on: an iteration cut
  // short by an exception leaves the rest for the next one (edge-triggered:
  // they would not be reported again).
  static constexpr int kMaxEvents = 256;
  net::PollEvent events[kMaxEvents];
  int ev_count = 0;
  int ev_next = 0;
  std::vector<ConnId> close_reports;                // on_close due (deferred out of I/O paths)
  // max_connections / max_connections_per_ip: the server's counts (a
  // group's loops share loop 0's; see connection_counts.h).
  std::shared_ptr<ConnectionCounts> counts;
  ConnId next_id = 1;
  bool had_connections = false;  // since the last trim (see destroy_dead)
  size_t lingering = 0;  // connections done but for their FIN/EOF; not counted against limits
  std::atomic<size_t> ws_count{0};
  // AcceptMode::Handoff: this loop's connections (by_id.size(), written by
  // the loop), the Adopt commands it has run, and (loop 0) how many it has
  // handed to each loop: load = open + handed - adopted, in flight included.
  // `handed` is empty except on loop 0 of a Handoff group.
  bool listens = true;
  bool hands_off() const { return !handed.empty(); }
  std::atomic<uint32_t> open_gauge{0};
  std::atomic<uint64_t> adopted{0};
  std::vector<uint64_t> handed;

  // Stats (server/stats.h): plain fields of the loop, published into
  // stats_cell at the end of each iteration.
  LoopCounters ctr;
  StatsCell stats_cell;
  StatsSnapshot publishing;          // the loop's copy being filled (no allocation)
  uint32_t state_count[5] = {};      // connections by ConnState
  uint64_t queued_gauge = 0;         // output queued, summed at the last tick
  int64_t start_wall_ms = 0;
  LogLimiter reject_log, slow_log;   // lines a client can cause at will
  // The metrics listener: a Server of its own whose epoll fd is polled by
  // this loop (kMetricsToken), so it answers on the loop thread.
  std::unique_ptr<ServerHandler> metrics_handler;
  std::unique_ptr<Server> metrics;
  std::atomic<int> metrics_port{-1};  // read by any thread

  std::unique_ptr<uint8_t[]> rbuf{new uint8_t[kReadBufferSize]};
  std::unique_ptr<uint8_t[]> wbuf{new uint8_t[kCoalesceMax]};
  int64_t now_ms = 0;
  std::string_view delivering;  // text message being passed to on_message (validated)
  bool nudged = false;  // acts_directly() woke fd() since the last poll

  // Threads. loop_thread is the one lock on the loop's state: every
  // access to it (an iteration, a callback's calls, a call between polls,
  // the teardown) happens on the thread that holds this slot, taken with
  // acquire and given back with release, so that successive holders see
  // each other's writes. owner_thread is the thread that last entered
  // run()/poll() (at first, the creating one): between polls only it may
  // take the slot for a call (Server::LoopAccess). It is written only by
  // the slot's holder; others read it merely to decide whether to try.
  std::atomic<std::thread::id> loop_thread{};
  std::atomic<std::thread::id> owner_thread{std::this_thread::get_id()};
  std::mutex cmd_mu;
  std::vector<Command> cmds;
  // Set by post() when it queues into an empty batch: lets the loop skip the
  // lock (and posters skip the eventfd write) when nothing is pending, which
  // is every iteration of a server driven only by its own sockets.
  std::atomic<bool> cmds_posted{false};
  std::vector<Command> cmds_work;  // the batch being run, from cmds_next on (see run_commands)
  size_t cmds_next = 0;

  // Upgrades awaiting the hook's decision, by connection id: resolve calls
  // come from any thread, hence the lock (taken per pending handshake only).
  // max_handshakes_per_second_per_ip, in the server's buckets (counts).
  bool handshake_allowed(Connection* c);
  std::mutex pending_mu;
  std::unordered_map<ConnId, PendingUpgrade> pending;

  // Watched descriptors (few: a linear search), and the callbacks of those
  // unwatched this iteration (one may be running): freed at its end.
  std::vector<std::unique_ptr<FdWatch>> watches;
  std::vector<std::unique_ptr<FdWatch>> retired_watches;
  uint64_t next_watch_id = 1;
  FdWatch* find_watch(uint64_t id) const;
  void on_watch_event(const net::PollEvent& ev);

  // Several loops (loop_group.h): this one's place in the group (nullptr:
  // the only loop). Connection ids are next_id * loop_count + loop_index.
  LoopGroup* group = nullptr;
  std::unique_ptr<LoopGroup> owned_group;  // loop 0's: the group and its other loops
  uint32_t loop_index = 0;
  uint32_t loop_count = 1;
  // Commands this loop's thread addressed to the other loops during the
  // iteration, by loop index: handed over in one batch (one lock, at most
  // one wake-up per loop) at the iteration's end (flush_outbox).
  std::vector<std::vector<Command>> outbox;
  bool outbox_pending = false;
  void flush_outbox();
  // To loop `to`: queued in the outbox when this thread runs another loop
  // of the group, else posted to it at once.
  static void post_to(Impl* to, Command&& c);
  // Take in a batch of commands (another loop's outbox).
  void post_batch(std::vector<Command>& batch);

  std::atomic<bool> stop_requested{false};
  std::atomic<LoopState> state{LoopState::Running};
  int64_t stop_deadline = 0;

  Impl() = default;
  ~Impl();
  // One loop: validated, bound and listening (as `role` says). nullptr
  // with *error and *code on failure.
  // How a loop is made; the defaults make a server's only loop.
  struct Role {
    bool reuse_port = false;  // SO_REUSEPORT on its listener (a group's loops share the port)
    bool listen = true;       // false: no listener (fed by loop 0, AcceptMode::Handoff); cfg.port is the group's
    std::shared_ptr<net::TlsContext> tls;  // the group's (loop 0's), else made from cfg.tls
    std::shared_ptr<ConnectionCounts> counts;  // the group's (loop 0's), else new
    std::shared_ptr<protocol::InputBudget> input_budget;  // the group's (loop 0's), else new
  };
  static std::unique_ptr<Impl> make(const ServerConfig& cfg, ServerHandler* handler, const Role& role,
                                    std::string* error, int* code);

  // The close timeout as the options define it (chatws.h), decided once at
  // create: the wait for the peer's close reply (0: none, it is disabled)
  // and the wait for the peer's FIN once our side is done (always bounded).
  int close_wait_ms = 5000;
  int linger_ms = 5000;
  int64_t close_deadline() const { return close_wait_ms > 0 ? now_ms + close_wait_ms : 0; }
  int64_t linger_deadline() const { return now_ms + linger_ms; }

  // The connection whose on_close is running: its info and user data stay
  // readable until the callback returns (see visible()).
  Connection* reporting = nullptr;
  bool torn_down = false;  // teardown() ran: nothing is left to close

  // server.cpp
  // The host may still see c's info and user data: from on_open until its
  // on_close returns, on every close path.
  bool visible(const Connection* c) const {
    return c && c->opened && (!c->close_reported || c == reporting);
  }
  // The calling thread holds the loop slot (inside run()/poll(), a callback,
  // a LoopAccess, or the teardown).
  bool holds_loop() const {
    return loop_thread.load(std::memory_order_acquire) == std::this_thread::get_id();
  }
  // A LoopAccess taken between polls is given back: output it queued (or a
  // connection it failed) would wait for the next event or tick, so make
  // fd() readable and the host polls again.
  void between_polls_done();
  // Closes every connection (1001, best effort), reports each on_close and
  // leaves nothing for the destructor. The server counts as stopped from
  // its start, so calls from those callbacks answer kEStopped. Idempotent.
  void teardown() noexcept;
  // `on_loop`: the caller is on the loop thread (it asks once per call).
  int check_message(protocol::Opcode op, std::string_view payload, bool on_loop) const;
  int poll_once(int timeout_ms);
  // The next iteration has work even if no event comes.
  bool work_left() const {
    return !dirty.empty() || !dirty_first.empty() || !read_pending.empty() || !dead.empty() ||
           !turns.empty() || ev_next < ev_count || cmds_next < cmds_work.size();
  }
  void serve_turns();
  int run_loop();  // run()'s body: poll_once until stopped
  void run_commands();
  void post(Command&& c);
  void on_tick();
  void begin_stop();
  void finish_stop();
  void update_tick();
  Connection* find_open(ConnId id) const;
  // Connection `id` if the host may see it (visible()), and *owner its loop;
  // with several loops only on that loop's thread (nullptr elsewhere).
  Connection* seen(ConnId id, Impl** owner) const;
  ConnInfo* conn_info(Connection* c);  // builds it on first use

  void set_state(Connection* c, ConnState s) {
    const int into_lingering = (s == ConnState::Lingering) - (c->state == ConnState::Lingering);
    lingering += into_lingering;
    if (into_lingering > 0) counts->remove_live();  // a lingering socket counts against no limit
    if (into_lingering < 0) counts->add_live();     // (out of it only to Dead: release() takes it off)
    --state_count[size_t(c->state)];
    ++state_count[size_t(s)];
    c->state = s;
  }
  // An HTTP error instead of an upgrade: counted by reason, and a line in
  // the host's log (rate limited).
  void count_reject(Connection* c, RejectReason why, int status, std::string_view message);
  void publish_stats(uint64_t iteration_ns);
  void read_stats(StatsSnapshot* out) const;  // the server's: every loop's, summed
  void log_slow_close(Connection* c);
  // The handler's own answer to a GET/HEAD (on_http_request), queued; false
  // if it has none.
  bool answer_http(Connection* c, const protocol::HttpRequest& req);
  // server_stats.cpp / metrics_listener.cpp
  bool start_metrics(std::string* error);
  void stop_metrics();
  void poll_metrics();

  void log(LogLevel level, std::string_view message) { handler->on_log(level, message); }
  // For paths that must not throw (teardown): a log line is not worth it.
  void log_noexcept(LogLevel level, const std::string& message) noexcept {
    try {
      handler->on_log(level, message);
    } catch (...) {
    }
  }
  // A line through `limit`: dropped (counted) past its rate, and the next
  // line let through says how many were.
  void log_limited(LogLimiter& limit, LogLevel level, std::string message);

  // server_io.cpp
  void accept_all();
  // AcceptMode::Handoff on loop 0: to the loop with the fewest connections
  // (admitted here if that is this one). False as admit().
  bool place(net::Accepted& a);
  Impl* least_loaded();
  void close_adoptions() noexcept;  // the fds of Adopt commands never run
  bool admit(const net::Accepted& a);
  // `live`: the server's live connections, this one included.
  void accept_setup(Connection* c, const net::Accepted& a, uint64_t live);
  void pause_accepting();
  void resume_accepting();
  void peer_ended(Connection* c);  // the peer closed its side
  // n > 0 bytes of c's were read into rbuf (plain, or plaintext of TLS
  // records): handled up to the turn's budget, the rest kept for a later
  // turn, which also comes when `more` says the socket (or OpenSSL) may
  // hold more (edge-triggered: no new event would come for it).
  void took_input(Connection* c, size_t n, bool more);
  void on_event(const net::PollEvent& ev);
  void read_ready(Connection* c);  // one turn; a failure in it fails the connection only
  void read_turn(Connection* c);
  void fail_turn(Connection* c, const char* what);
  // Keeps `dead` able to take every live connection, so that abort() never
  // allocates (it runs while unwinding).
  void reserve_dead() {
    if (dead.capacity() < by_id.size() + 1) dead.reserve(2 * (by_id.size() + 1));
  }
  size_t on_bytes(Connection* c, uint8_t* data, size_t n);  // bytes handled this turn
  void on_http_bytes(Connection* c, const uint8_t* data, size_t n);
  size_t feed_frames(Connection* c, uint8_t* data, size_t n);  // until the turn's budget
  void on_ws_bytes(Connection* c, uint8_t* data, size_t n);    // feed_frames, keeping the rest
  void take_turn_later(Connection* c);
  void trim_allocator();  // the C allocator's free memory back to the OS (after the last client)
  void resume_paused();  // those whose time has come get a turn
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
  void finish_half_closed(Connection* c);
  void destroy(Connection* c);
  void release(Connection* c) noexcept;  // destroy()'s part after on_close
  void destroy_dead();
  // server_tls.cpp: the TLS transport's side of reading, writing and closing.
  bool start_tls(Connection* c);
  void tls_read_ready(Connection* c);
  bool tls_write_out(Connection* c);
  // True once the output, ciphertext included, is all with the kernel;
  // false while the handshake is not done.
  bool tls_drained(Connection* c) const;
  void tls_tick(Connection* c);  // on_tick: OpenSSL's record buffers kept or released (c->busy)
  bool tls_handshaking(const Connection* c) const;
  // close_notify, then FIN (when the ciphertext is out); false if it failed.
  bool tls_shutdown(Connection* c);
  void tls_refuse_plain_http(Connection* c);
  void discard_input(Connection* c);
  // compression.cpp: permessage-deflate.
  std::unique_ptr<protocol::Deflater> shared_deflaters[7];  // by window bits - 9, made on use
  protocol::Inflater shared_inflater{15, false};  // every client without a context of its own
  std::string zbuf;      // deflate output
  std::string inflated;  // inflate output (the message handed to on_message)
  void configure_compression();  // the handshake's policy from cfg.compression
  void start_deflate(Connection* c, const protocol::DeflateParams& p);
  protocol::Deflater& shared_deflater(uint8_t window_bits);
  // The frame c gets for f: f, its cached compressed variant, or (dedicated
  // mode) one compressed for c alone, then held by *hold.
  SharedFrame* compressed_for(Connection* c, SharedFrame* f, FrameRef* hold);
  protocol::Inflater& inflater_of(Connection* c);
  void deflate_idle(Connection* c);  // releases c's zlib streams (a quiet tick)
  void trim_deflate_buffer();
  void trim_inflate_buffer();  // not while on_message may read `inflated`
  int direct_send(ConnId id, protocol::Opcode op, std::string_view payload);
  bool enqueue_plain(Connection* c, SharedFrame* f);  // enqueue's fast path (server_io.cpp)
  int direct_broadcast(SharedFrame* f, ConnId exclude);
  int direct_close(ConnId id, uint16_t code, std::string_view reason);
};

// The loop the calling thread is running (inside run()/poll()/shutdown()),
// or nullptr: lets a call made from a callback find its own loop among a
// group's.
extern thread_local Server::Impl* t_running_loop;

// Takes the loop for the calling thread for the scope of run(), poll() or
// shutdown(), and makes it the owner. Refused if any thread has it: another
// one (in run()/poll(), or in a call between its polls), or this one: a
// callback that polls again would run an iteration inside the one that is
// delivering to it (the read buffer under its message reused, the
// connection it serves destroyed).
struct LoopScope {
  Server::Impl& s;
  Server::Impl* outer;
  bool ok;
  explicit LoopScope(Server::Impl& impl) : s(impl), outer(t_running_loop) {
    std::thread::id none{};
    const auto me = std::this_thread::get_id();
    ok = s.loop_thread.compare_exchange_strong(none, me, std::memory_order_acq_rel,
                                               std::memory_order_relaxed);
    if (ok) {
      s.owner_thread.store(me, std::memory_order_relaxed);
      t_running_loop = &s;
    }
  }
  ~LoopScope() {
    if (!ok) return;
    t_running_loop = outer;
    s.loop_thread.store(std::thread::id(), std::memory_order_release);
  }
  LoopScope(const LoopScope&) = delete;
  LoopScope& operator=(const LoopScope&) = delete;
};

}  // namespace chatws
