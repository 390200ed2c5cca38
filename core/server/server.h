// The engine: one epoll loop that owns the listening socket, every
// connection (HTTP and WebSocket), their output queues and the cross-thread
// command queue; or several such loops on threads of their own
// (ServerConfig::threads, loop_group.h). Knows nothing of the chat or of
// the C ABI above it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/tls_context.h"
#include "protocol/frame.h"
#include "server/shared_frame.h"
#include "server/stats.h"
#include "server/upgrade_types.h"

namespace chatws {

using ConnId = uint64_t;

// Return codes shared with the C ABI (same values as CHATWS_* in chatws.h).
enum Status : int {
  kOk = 0,
  kQueuedOverLimit = 1,
  kEInval = -1,
  kENoMem = -2,
  kENoConn = -3,
  kEThread = -4,
  kEState = -5,
  kESystem = -6,
  kETooBig = -7,
  kEFull = -8,
  kEStopped = -9,
  kEStorage = -10,
  kEInternal = -11,
};

enum class SlowConsumerPolicy { Close, Drop };

// SO_SNDBUF given to accepted sockets unless the host says otherwise (see
// ServerConfig::socket_send_buffer and chatws_options.socket_send_buffer).
inline constexpr int kDefaultSocketSendBuffer = 96 * 1024;

// permessage-deflate (RFC 7692). Shared: no context takeover either way, so
// a frame is deflated once (per window size) for every receiver and the
// server keeps no per-connection zlib state. Dedicated: context takeover
// (better ratios on long-lived connections), a deflate stream per
// connection, made on its first compressed send and freed once it idles,
// and an inflate window per client that keeps its context, bounded by
// window_bits.
enum class CompressionMode : uint8_t { Off, Shared, Dedicated };

struct CompressionConfig {
  CompressionMode mode = CompressionMode::Off;
  size_t threshold = 128;      // payloads below this many bytes go out uncompressed
  uint8_t window_bits = 15;    // 9..15: the server's deflate window, and the one asked of clients
  uint8_t mem_level = 8;       // 1..9: zlib's memLevel of the server's deflate streams
  // Send the compressed form even when it is not smaller (for peers that
  // mishandle uncompressed messages on a deflate connection).
  bool always = false;
};

// Levels of ServerHandler::on_log (same values as CHATWS_LOG_* in chatws.h).
enum class LogLevel : int { Debug = 0, Info = 1, Warning = 2, Error = 3 };

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string static_dir;                   // empty: no static files
  std::vector<std::string> subprotocols;    // server preference order
  std::vector<std::string> allowed_origins; // empty: any
  std::string websocket_path_prefix;        // empty: any path may upgrade
  size_t max_request_size = 8192;
  size_t max_message_size = 16u << 20;
  size_t max_fragments = 65536;
  size_t max_output_buffer = 1u << 20;
  // Partial messages held at once by all connections, in bytes announced by
  // their frame headers; a frame that would go over closes its connection
  // with 1013. 0: four times max_message_size.
  size_t max_buffered_input = 0;
  uint32_t max_connections = 100000;
  uint32_t max_connections_per_ip = 0;
  // IPv6 peers count against max_connections_per_ip by this prefix (1..128).
  unsigned ipv6_prefix_length = 64;
  SlowConsumerPolicy slow_policy = SlowConsumerPolicy::Close;
  CompressionConfig compression;
  // WebSocket upgrades per second from one address (IPv6: by
  // ipv6_prefix_length), as a token bucket holding as many; beyond: 429
  // with Retry-After. 0: no limit.
  uint32_t max_handshakes_per_second_per_ip = 0;
  // SO_SNDBUF for accepted sockets (the kernel doubles it); <= 0: the
  // kernel's autotuning. The default bounds the kernel's send queue of a
  // client that never reads to about 200 KB (autotuned: up to tcp_wmem's
  // maximum, about 4 MB); bench/sendq.py measures it.
  int socket_send_buffer = kDefaultSocketSendBuffer;
  int handshake_timeout_ms = 10000;   // -1: disabled
  int idle_timeout_ms = 60000;
  int close_timeout_ms = 5000;
  int drain_timeout_ms = 5000;
  // TLS on the listening port (https:// and wss://) when a certificate and
  // key are set; the handshake is covered by handshake_timeout_ms.
  net::TlsConfig tls;
  // The metrics listener (GET /metrics, /healthz, /readyz; 404 otherwise):
  // a port of its own with the limits above, served by this loop. Off while
  // metrics_port < 0; 0 picks a free port (see Server::metrics_port()).
  std::string metrics_host = "127.0.0.1";
  int metrics_port = -1;
  std::string version;  // for chatws_build_info
  // Event loops, each on a thread of its own with its own epoll, listener
  // (SO_REUSEPORT on the same port), connections, timers and buffers (see
  // loop_group.h). 1: one loop, driven by run() or poll() as always. 0: one
  // per core available to the process.
  unsigned threads = 1;
  // threads > 1: how new connections reach the loops. ReusePort: every loop
  // listens on the port (SO_REUSEPORT) and the kernel picks one by a hash
  // of the 4-tuple, so the loops' counts drift apart as connections leave.
  // Handoff: loop 0 alone listens and hands each connection to the loop
  // with the fewest (one cross-thread command per accept).
  enum class AcceptMode : uint8_t { ReusePort, Handoff };
  AcceptMode accept_mode = AcceptMode::ReusePort;
};

// A plain HTTP answer the handler gives itself (the metrics listener).
struct HttpReply {
  int status = 0;  // 0: not handled here
  std::string content_type;
  std::string body;
};

// Host-facing events. Called on the loop thread. A handler may call any
// Server method, including close() of the connection being reported.
// With threads > 1 each connection's events come on its own loop's thread,
// so events of connections on different loops run at the same time (and
// on_iteration_end / collect_stats once per loop and iteration).
class ServerHandler {
 public:
  virtual ~ServerHandler() = default;
  // Before answering an upgrade: return 0 to accept, or an HTTP status
  // (4xx) to refuse it with *reason as the body (e.g. a bad room name).
  virtual int on_upgrade(std::string_view path, std::string_view subprotocol, std::string* reason) {
    (void)path; (void)subprotocol; (void)reason;
    return 0;
  }
  // When an upgrade is accepted (on_upgrade returned 0): the largest message
  // this connection may send, if the handler knows a bound below
  // max_message_size (0: none). Checked against each frame header and the
  // running total of the message's fragments; over it, close 1009 before
  // anything is buffered.
  // The host's upgrade hook (issue 12), after the protocol checks and
  // on_upgrade passed, before the 101: fill *verdict (it starts as Accept).
  // Called only when wants_upgrade_requests() is true (the request view is
  // not built otherwise). A Pending verdict holds the request until
  // Server::resolve_upgrade names it, or the handshake timeout answers 503.
  virtual bool wants_upgrade_requests() const { return false; }
  virtual void on_upgrade_request(const UpgradeRequest& request, UpgradeVerdict* verdict) {
    (void)request; (void)verdict;
  }
  virtual size_t message_limit(std::string_view path, std::string_view subprotocol) {
    (void)path; (void)subprotocol;
    return 0;
  }
  virtual void on_open(ConnId) {}
  virtual void on_message(ConnId, protocol::Opcode, const char* data, size_t len) = 0;
  virtual void on_close(ConnId, uint16_t code, std::string_view reason) { (void)code; (void)reason; }
  virtual void on_drain(ConnId) {}
  // Once per loop iteration, after all I/O of the iteration (e.g. to commit a
  // batch of history). Also called once during a graceful stop.
  virtual void on_iteration_end() {}
  // Something worth a line in the host's log that has no other outcome the
  // host sees (e.g. a client that spoke plain HTTP to the TLS port). Rare:
  // never per message.
  virtual void on_log(LogLevel level, std::string_view message) { (void)level; (void)message; }
  // A GET/HEAD request before the static files: set reply->status to
  // answer it here. Never called for upgrades.
  virtual void on_http_request(std::string_view path, HttpReply* reply) { (void)path; (void)reply; }
  // At the end of every iteration, for the stats snapshot: what the handler
  // counts (the chat's rooms, members, commits). Must not allocate.
  virtual void collect_stats(AppStats* out) { (void)out; }
};

struct ConnInfo {
  std::string remote_address;
  uint16_t remote_port = 0;
  std::string path;
  std::string subprotocol;
  size_t queued_bytes = 0;
  uint64_t dropped = 0;      // messages dropped under SlowConsumerPolicy::Drop
  void* user_data = nullptr;
  // Bound by the upgrade hook (has_identity), and the upgrade's query string.
  bool has_identity = false;
  std::string identity;
  std::string query;
};

class Server {
 public:
  struct Impl;

  // Binds and listens. On failure returns nullptr and sets *error (and *code).
  static std::unique_ptr<Server> create(const ServerConfig& cfg, ServerHandler* handler,
                                        std::string* error, int* code);
  ~Server();  // shutdown() if it has not run, then frees all

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  int fd() const;  // the epoll fd: readable when poll() has work (left)

  // run() until stop completes, poll() one iteration. Each takes the loop
  // for the calling thread and makes it the owner (see LoopAccess). kEState
  // if any thread has the loop already: another thread in run()/poll() or
  // in a call between its polls, or this very thread (from a callback: a
  // nested iteration would reuse the buffers the outer one is delivering).
  int run();
  int poll(int timeout_ms);
  void stop();               // any thread
  bool stopped() const;
  // Closes every connection (close 1001 where it is open, best effort) and
  // reports each on_close, with the Server still whole: the callbacks may
  // call any method (info() and user data of the connection being reported
  // answer; send/broadcast/close answer kEStopped, the server counting as
  // stopped from the start). Leaves nothing for the destructor. kEState
  // (nothing done) if any thread has the loop, this one included (a
  // callback). Idempotent.
  int shutdown();

  // The right to act on the loop's state, for the scope of one host call.
  // Held already inside run()/poll() (so in every callback) and during
  // shutdown(); taken for the call by the owner thread (the one that last
  // entered run()/poll(), at first the creating one) between its polls;
  // refused (false) to any other thread, and to the owner while another
  // thread has the loop. Taking it never blocks. Nests.
  class LoopAccess {
   public:
    explicit LoopAccess(const Server& s);
    // The loop that owns connection `id` (with one loop, the same as above).
    LoopAccess(const Server& s, ConnId id);
    explicit LoopAccess(Impl* impl);  // one loop of the server's
    ~LoopAccess();
    LoopAccess(const LoopAccess&) = delete;
    LoopAccess& operator=(const LoopAccess&) = delete;
    explicit operator bool() const { return ok_; }
    Impl* impl() const { return impl_; }  // the loop this scope is about

   private:
    void take();
    Impl* impl_;
    bool ok_ = false;
    bool claimed_ = false;  // taken by this scope (between polls): given back at its end
  };

  // Any thread (queued when not on the loop thread). See chatws.h for results.
  int send(ConnId id, protocol::Opcode op, std::string_view payload);
  int send_frame(ConnId id, const FrameRef& frame);  // loop thread only
  int broadcast(protocol::Opcode op, std::string_view payload, ConnId exclude);
  int broadcast_frame(const FrameRef& frame, ConnId exclude);  // loop thread only
  int close(ConnId id, uint16_t code, std::string_view reason);

  // Makes the loop's next wait return at once, so that on_iteration_end
  // comes soon: for a handler that left work for it from a callback that
  // runs after it (an on_close reported at the end of an iteration). Any
  // thread.
  void wake();
  // A descriptor of the handler's own (a Redis connection, a timerfd) that
  // this loop watches next to its connections, so that its I/O runs on the
  // loop thread without blocking it. Loop thread only (a callback, or a
  // LoopAccess between polls); kEThread otherwise.
  //
  // `cb(readable, writable)` runs on the loop thread, during an iteration,
  // whenever the descriptor is ready for an interest asked for (level-
  // triggered: again each iteration while it stays so; an error or hangup
  // counts as both, for the interests asked). It may be called once more
  // after the readiness went away (an event of the same wait): do
  // non-blocking I/O. It may call any Server method, these included (it
  // may unwatch its own descriptor). An exception out of it is caught and
  // logged (on_log, Error). With neither interest the descriptor is out of
  // the epoll set until one is asked for again.
  //
  // watch_fd returns a watch id (> 0, never reused) in *id and kOk, or
  // kEInval (fd < 0, no callback), kEThread, kEStopped, kESystem (epoll
  // refused it; *error says why). The descriptor stays the caller's: it
  // must stay open while watched and is never closed by the server. Every
  // watch ends with unwatch_fd or with the Server (no callback then).
  using FdCallback = std::function<void(bool readable, bool writable)>;
  int watch_fd(int fd, bool want_read, bool want_write, FdCallback cb, uint64_t* id,
               std::string* error);
  // kOk, kENoConn (no such watch), kEThread, kESystem.
  int set_fd_interest(uint64_t id, bool want_read, bool want_write);
  // Takes the descriptor out of the loop: no callback after it returns (the
  // callback object lives until the end of the iteration). kOk, kENoConn,
  // kEThread.
  int unwatch_fd(uint64_t id);

  // Any thread. New TLS connections use the certificate and key of these
  // files (empty: the current files, read again); existing connections keep
  // theirs. kEState if the server has no TLS, kEInval (and *error) if the
  // pair does not load, in which case the current one stays in use.
  int reload_tls(const std::string& cert_file, const std::string& key_file,
                 const std::string& key_passphrase, std::string* error);

  // Any thread. Answers the upgrade request `id` that the hook left
  // Pending: kOk (applied, or queued for the loop), kEInval (*error says why;
  // nothing sent, the request still waits), kENoConn (no such pending
  // request: its client left, it timed out or was already resolved; a no-op).
  int resolve_upgrade(ConnId id, UpgradeVerdict verdict, std::string* error);

  // The identity the upgrade hook bound (nullptr if none or stale). Cheap:
  // no ConnInfo is built for a connection without one.
  const std::string* identity(ConnId id) const;
  // Loop thread only: under a LoopAccess (or in a callback). A connection's
  // info is there from on_open until its on_close returns, on every close
  // path.
  const ConnInfo* info(ConnId id) const;      // nullptr when stale
  // The chosen subprotocol ("" if none or stale) without building the
  // connection's ConnInfo: cheap enough to call per message.
  std::string_view subprotocol(ConnId id) const;
  // The request path of the upgrade ("" if stale), likewise without building
  // the ConnInfo. The view lasts while the connection is open and until its
  // info() is first built (the path then moves into the ConnInfo): copy it
  // if it must survive a call that may build the info.
  std::string_view path(ConnId id) const;
  // The upgrade's query string ("" if none or stale), without building the
  // ConnInfo (a connection that has a query has it built at the upgrade).
  std::string_view query(ConnId id) const;
  // Messages dropped for the connection under SlowConsumerPolicy::Drop (0 if
  // stale), without building the ConnInfo.
  uint64_t dropped(ConnId id) const;
  // True while the connection's unsent output has gone above half of
  // max_output_buffer and not yet drained (false if stale): on_drain follows
  // once it has all been written. For senders that can skip a message a
  // backlogged reader would only get late (a snapshot superseded by the
  // next one) and catch it up at on_drain.
  bool backlogged(ConnId id) const;
  // Loop thread only (a callback, or a LoopAccess). Reads nothing more of
  // the open connection `id` for `ms` milliseconds: if its message is the
  // one being handled, its turn ends after it; what it sent beyond stays
  // unread (kept from the last read, or in the socket, where TCP's flow
  // control holds the client back) and is handled, in order, once the time
  // has passed. Its pings and its close wait too; a reset meanwhile closes
  // it at once (1006), its unread input dropped. In a host's own loop
  // (poll()), the time is kept only as well as the host polls: fd() is not
  // made readable for it before the next tick. For flood control: a
  // client held back costs the loop nothing, where reading and rejecting
  // each of its messages would cost as much as handling them. A second call
  // while paused moves the end to the later of the two. kOk, kEInval (ms < 1),
  // kENoConn (not open), kEThread.
  int pause_input(ConnId id, int ms);
  size_t max_output_buffer() const;  // the configured cap, in bytes
  ConnInfo* mutable_info(ConnId id);
  size_t connection_count() const;             // any thread
  // The counters and gauges as of the end of the last loop iteration (a
  // consistent snapshot). Any thread.
  void stats(StatsSnapshot* out) const;
  // The metrics listener's port, or -1 if there is none. Any thread.
  int metrics_port() const;
  // With threads > 1: the connections of the loops the calling thread has
  // (a callback: its own loop's).
  void connection_ids(std::vector<ConnId>* out) const;
  // The number of event loops (ServerConfig::threads, resolved). Any thread.
  unsigned loop_count() const;
  // The index of the loop the calling thread runs (in run(), or a callback),
  // or -1. Connection `id` is loop id % loop_count()'s. Any thread.
  int current_loop() const;
  // wake() for one loop (index < loop_count()). Any thread.
  void wake_loop(unsigned index);

 private:
  friend class LoopGroup;
  explicit Server(std::unique_ptr<Impl> impl);
  // The loop that owns connection `id`: its index is the id modulo the loop
  // count (see admit). With one loop, impl_.
  Impl* loop_of(ConnId id) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatws
