// The load generator: one thread, one epoll instance, N WebSocket client
// connections driven through the echo, broadcast or idle workload. With
// --threads T, T of them run side by side (main.cpp), each a shard holding
// every T-th connection, and their results are merged.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

struct ssl_ctx_st;

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frame_reader.h"
#include "latency_histogram.h"
#include "options.h"
#include "phase_sync.h"

namespace chatws::bench {

struct Result {
  uint64_t msgs = 0;         // echo: echoes received; broadcast: own messages acknowledged
  uint64_t deliveries = 0;   // data messages received on all connections
  double measured_s = 0;     // wall time of the measured interval
  LatencyHistogram latency;  // send -> receive, measured interval only
  bool have_server = false;
  double server_cpu_s = 0;   // server CPU during the measured interval
  long server_rss_kb = 0;    // server VmRSS at the end of the interval
  long server_rss_before_kb = 0;  // idle: before any connection was opened
  double loadgen_cpu_s = 0;  // our own CPU during the measured interval
  int opened = 0;            // connections whose handshake succeeded
  double open_s = 0;         // wall time from the first connect to the last upgrade (every shard's)
  double open_server_cpu_s = -1;  // server CPU over that time (-1: not sampled)
  uint64_t errors = 0;       // protocol errors, wrong payloads, failed handshakes
  uint64_t unexpected_closes = 0;
  std::string first_error;

  // Adds a shard's counts (the server and CPU figures are shard 0's).
  void merge(const Result& other);
};

class LoadGenerator {
 public:
  // shard: which of opts.threads shards this is (connections i with
  // i % threads == shard); sync: shared by all shards (null with one).
  explicit LoadGenerator(const Options& opts, int shard = 0, PhaseSync* sync = nullptr);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Runs the whole workload (connect, warm up, measure, close) and returns
  // the figures. Returns with errors set instead of throwing on a failure.
  Result run();

 private:
  struct Conn;
  enum class Phase { Connecting, Warmup, Measuring, Draining, Closing };

  bool resolve();
  // The connection's byte stream, plain or TLS: > 0 bytes, 0 EOF, -1 try
  // again (EAGAIN), -2 failed (*why says how).
  ssize_t conn_read(Conn& c, void* buf, size_t n, std::string* why);
  ssize_t conn_write(Conn& c, const void* buf, size_t n, std::string* why);
  void tls_step(Conn& c);  // drive the TLS handshake, then send the upgrade
  bool start_connect(Conn& c);
  bool open_all();
  void drive_until(uint64_t deadline_ns);
  void poll_once(int timeout_ms);
  void on_event(Conn& c, uint32_t events);
  void on_connected(Conn& c);
  void on_readable(Conn& c);
  void on_handshake_bytes(Conn& c, const uint8_t* data, size_t len);
  void on_frames(Conn& c, const uint8_t* data, size_t len);
  void on_message(Conn& c, std::string_view payload);
  void send_data(Conn& c);
  void send_control(Conn& c, uint8_t opcode, std::string_view payload);
  void mark_dirty(Conn& c);
  void flush(Conn& c);
  void flush_dirty();
  void fail(Conn& c, const std::string& why, bool is_error);
  void close_all();
  bool counting() const { return phase_ == Phase::Measuring; }
  bool boundary(bool ok) { return sync_ ? sync_->arrive(ok) : ok; }
  bool samples_server() const { return opts_.server_pid && shard_ == 0; }

  Options opts_;
  int shard_ = 0;
  PhaseSync* sync_ = nullptr;
  ::ssl_ctx_st* tls_ctx_ = nullptr;  // --tls
  sockaddr_in server_addr_{};
  int epfd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> dirty_;
  std::vector<Conn*> read_pending_;
  std::vector<uint8_t> read_buf_;
  std::string payload_template_;
  Phase phase_ = Phase::Connecting;
  uint64_t clock_ns_ = 0;  // time of the latest read(): see on_readable
  bool sending_ = false;
  int connecting_ = 0;        // connect or handshake in progress
  int open_ = 0;              // handshake done, not closed
  uint64_t mask_state_;       // xorshift state for frame masks
  Result result_;
  std::string inflated_;  // --deflate: the message just inflated
};

}  // namespace chatws::bench
