// Counters and gauges of one loop. The loop increments plain fields (no
// atomics, no locks on the per-message path) and copies them into a
// StatsCell once per iteration, under a mutex taken only for that copy; any
// thread reads a consistent snapshot from the cell. Rendered for Prometheus
// by server/stats_text.cpp and copied into chatws_stats by the C ABI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <ctime>

namespace chatws {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

inline int64_t wall_clock_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// A latency histogram with fixed bounds (seconds in the exposition), kept
// in nanoseconds. observe() is a short scan of a constant table: no
// allocation, no lock.
struct Histogram {
  static constexpr int kBounds = 14;
  // 50 us .. 5 s: a loop iteration or a commit a client would notice.
  static constexpr uint64_t kBoundNs[kBounds] = {
      50'000,      100'000,     250'000,     500'000,       1'000'000,
      2'500'000,   5'000'000,   10'000'000,  25'000'000,    50'000'000,
      100'000'000, 250'000'000, 1'000'000'000, 5'000'000'000};
  uint64_t buckets[kBounds + 1] = {};  // not cumulative; the last is +Inf
  uint64_t count = 0;
  uint64_t sum_ns = 0;

  void observe(uint64_t ns) {
    int i = 0;
    while (i < kBounds && ns > kBoundNs[i]) ++i;
    ++buckets[i];
    ++count;
    sum_ns += ns;
  }
};

// Why a request that could have become a WebSocket was answered with an
// HTTP error instead (the label values of chatws_handshakes_rejected_total).
enum class RejectReason : uint8_t {
  Limit,       // max_connections / max_connections_per_ip (503)
  Origin,      // Origin not in allowed_origins (403)
  Path,        // outside websocket_path_prefix (404)
  BadRequest,  // malformed head, not an upgrade we speak (400, 405, 426, 431)
  Timeout,     // request head not received within handshake_timeout_ms (408)
  Shutdown,    // the server is stopping (503)
  Handler,     // refused by the engine's handler (the chat: bad room, too many rooms)
  Hook,        // refused by the host's upgrade/access hook
  Rate,        // refused by a handshake rate limit
  kCount
};
inline constexpr const char* kRejectReasonNames[] = {
    "limit", "origin", "path", "bad_request", "timeout", "shutdown", "handler", "hook", "rate"};

// Close codes counted one by one; every other code (3000-4999, 1010 ...)
// under "other", so the label set stays small.
inline constexpr uint16_t kCountedCloseCodes[] = {1000, 1001, 1002, 1003, 1005, 1006,
                                                  1007, 1008, 1009, 1011, 1013};
inline constexpr int kCloseSlots = int(sizeof kCountedCloseCodes / sizeof kCountedCloseCodes[0]) + 1;
inline int close_slot(uint16_t code) {
  for (int i = 0; i < kCloseSlots - 1; ++i)
    if (kCountedCloseCodes[i] == code) return i;
  return kCloseSlots - 1;
}

// What the handler (the chat) adds, filled on the loop thread at publish.
struct AppStats {
  bool present = false;         // a chat is attached
  uint64_t rooms = 0;           // rooms in memory
  uint64_t members = 0;         // chat connections in a room
  uint64_t commits = 0;         // history batches committed
  uint64_t commit_failures = 0; // batches the store refused
  uint64_t committed_messages = 0;
  uint64_t deliveries = 0;      // chat messages x the room members they went to
  bool store_ok = true;         // the last commit (if any) succeeded
  Histogram commit_duration;
  // Cluster mode (issue 16).
  bool cluster = false;             // the chat's history is a Redis cluster log
  bool cluster_up = false;          // both Redis connections are up
  uint64_t cluster_round_trips = 0; // writes of queued Redis commands
  uint64_t cluster_failures = 0;    // lost connections, failed commands
  uint64_t cluster_missed = 0;      // entries trimmed before this node read them
};

// Monotonic counters of the loop (only ever incremented, on the loop thread).
struct LoopCounters {
  uint64_t connections_accepted = 0;  // TCP connections accepted
  uint64_t http_requests = 0;         // request heads parsed (upgrades included)
  uint64_t handshakes_accepted = 0;   // 101 Switching Protocols sent
  uint64_t handshakes_rejected[size_t(RejectReason::kCount)] = {};
  uint64_t closes[kCloseSlots] = {};  // WebSocket closes reported, by code
  uint64_t messages_in = 0;           // WebSocket messages received (text + binary)
  uint64_t bytes_in = 0;              // bytes read from sockets (after TLS)
  uint64_t messages_out = 0;          // data frames queued to WebSocket connections
  uint64_t bytes_out = 0;             // bytes written to sockets (before TLS)
  uint64_t broadcasts = 0;            // broadcast calls
  uint64_t broadcast_deliveries = 0;  // receivers those broadcasts were queued to
  uint64_t slow_consumer_closes = 0;  // closed 1008 for a full output queue
  uint64_t slow_consumer_drops = 0;   // messages dropped under SlowConsumerPolicy::Drop
  uint64_t tls_handshakes = 0;        // TLS handshakes completed
  uint64_t tls_failures = 0;          // TLS handshakes failed (incl. plain HTTP on the TLS port)
  uint64_t log_lines_suppressed = 0;  // by the log rate limit
  // permessage-deflate: deflate runs (shared mode: one per frame and window,
  // however many receivers), the payload bytes they took and gave, frames
  // queued compressed, and the inflate side's bytes in (compressed) and out.
  uint64_t deflate_calls = 0;
  uint64_t deflate_bytes_in = 0;
  uint64_t deflate_bytes_out = 0;
  uint64_t compressed_frames_out = 0;
  uint64_t inflate_bytes_in = 0;
  uint64_t inflate_bytes_out = 0;
  uint64_t iterations = 0;
  Histogram iteration_duration;       // from the end of the wait to the end of the iteration
};

struct StatsSnapshot {
  LoopCounters c;
  // Gauges at the time of the snapshot.
  uint64_t websocket_connections = 0;  // open WebSockets
  uint64_t http_connections = 0;       // connections still reading/answering HTTP
  uint64_t closing_connections = 0;    // WebSockets closing or sockets lingering
  uint64_t queued_output_bytes = 0;    // as of the last timer tick (<= 250 ms old)
  int64_t start_time_ms = 0;           // wall clock, ms since the epoch
  bool accepting = true;               // the listener is in the poll set and open
  bool running = true;                 // not stopping or stopped
  AppStats app;
};

// The snapshot shared with readers. The loop takes the mutex once per
// iteration (publish); a reader holds it only for one copy.
class StatsCell {
 public:
  void publish(const StatsSnapshot& s) {
    std::lock_guard<std::mutex> lock(mu_);
    snap_ = s;
  }
  void read(StatsSnapshot* out) const {
    std::lock_guard<std::mutex> lock(mu_);
    *out = snap_;
  }

 private:
  mutable std::mutex mu_;
  StatsSnapshot snap_;
};

}  // namespace chatws
