// One client connection: its socket, its protocol state (HTTP head parsing,
// then WebSocket framing) and its pending output. Owned by Server::Impl.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http/file_body.h"
#include "net/tls_transport.h"
#include "protocol/frame_parser.h"
#include "protocol/http_request.h"
#include "server/output_queue.h"
#include "server/path_table.h"
#include "server/conn_deflate.h"
#include "server/server.h"

namespace chatws {

enum class ConnState : uint8_t {
  Http,       // reading request heads (static files, or the upgrade)
  Open,       // WebSocket open
  Closing,    // close frame sent, waiting for the reply (or the timeout)
  Lingering,  // our side is done: flush output, send FIN, discard input until EOF/timeout
  Dead,       // to be destroyed at the end of the iteration
};

// A loop instant (net::monotonic_ms) kept in 32 bits. Differences are taken
// modulo 2^32, so they stay exact across the wraparound (every ~49 days) as
// long as the two instants are less than ~24 days apart: the timeouts they
// serve are ints of milliseconds, and the timer acts on them within a tick.
// Assigned from the loop's 64-bit clock like the int64_t it replaces.
class LoopMs32 {
 public:
  LoopMs32& operator=(int64_t ms) {
    v_ = uint32_t(ms);
    return *this;
  }
  // Milliseconds from this instant to `now` (this instant is in the past).
  uint32_t elapsed(int64_t now) const { return uint32_t(now) - v_; }

 private:
  uint32_t v_ = 0;
};

// An optional deadline on the same 32-bit clock. Assigning 0 clears it (as
// with the int64_t it replaces: a real deadline is never 0 on the 64-bit
// clock); a deadline that truncates to 0 is moved 1 ms later instead.
class Deadline32 {
 public:
  Deadline32& operator=(int64_t ms) {
    v_ = ms == 0 ? 0 : (uint32_t(ms) ? uint32_t(ms) : 1u);
    return *this;
  }
  explicit operator bool() const { return v_ != 0; }
  // Set and not in the future.
  bool reached(int64_t now) const { return v_ && int32_t(uint32_t(now) - v_) >= 0; }

 private:
  uint32_t v_ = 0;
};

// What only some connections need, or need only for a while: the HTTP parser
// of the handshake, a static file being sent, the greeting's size, the
// ConnInfo once the host asked for it, a close reason, the count of dropped
// messages, a path the PathTable had no room for, an IPv6 peer address, the
// TLS session. Allocated on first use; an open plain WebSocket usually has none.
struct ConnCold {
  std::unique_ptr<protocol::HttpRequestParser> http;  // only while in Http
  std::unique_ptr<http::FileBody> file;  // the rest of a static file response
  std::unique_ptr<net::TlsTransport> tls;  // a connection to the TLS port
  // permessage-deflate state of its own (dedicated mode, or a client that
  // keeps its context): zlib streams made lazily, freed when idle.
  std::unique_ptr<ConnDeflate> deflate;
  // Once built it stays for the connection's life: the host keeps pointers.
  std::unique_ptr<ConnInfo> info;
  std::string close_reason;
  std::string path;  // when it is not in the PathTable
  uint64_t dropped = 0;  // messages dropped under the drop policy
  size_t greeting = 0;   // unwritten bytes of the greeting, at the head of the queue
  uint8_t addr6[16] = {};
  // Input read but not handled yet: the rest of a read whose turn ended at
  // its message budget (at most one read's worth), handled from input_pos
  // on in the next turns. Its capacity is kept while the client keeps
  // sending (no allocation per turn) and released by the timer once empty.
  std::string input;
  size_t input_pos = 0;

  // Nothing in it that the connection still needs.
  bool disposable(bool holds_addr6) const {
    return !http && !file && !tls && !deflate && !info && close_reason.empty() && path.empty() &&
           dropped == 0 && greeting == 0 && !holds_addr6 && input.empty();
  }
};

// One exists per connection, idle ones included, so every byte counts (see
// the static_assert below): fields are ordered for packing, timestamps are
// 32-bit, the request path is a reference into the server's PathTable, an
// IPv4 peer address is kept in binary, and everything else lives in the
// lazily allocated ConnCold. The per-message fields (id, ws, out, fd, state,
// flags) are all here: no extra indirection on the hot path.
struct Connection {
  static constexpr uint32_t kNotOpen = UINT32_MAX;
  static constexpr uint8_t kNoSubprotocol = UINT8_MAX;

  explicit Connection(const protocol::ParserLimits& limits) : ws(limits) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ConnId id = 0;
  protocol::FrameParser ws;    // used once upgraded
  OutputQueue out;

 private:
  std::unique_ptr<ConnCold> cold_;

 public:
  int fd = -1;
  uint32_t open_index = kNotOpen;  // position in Impl::open
  LoopMs32 last_rx_ms;             // idle timeout bookkeeping
  Deadline32 deadline_ms;          // handshake / close / linger deadline
 private:
  uint8_t addr4_[4] = {};          // an IPv4 (or IPv4-mapped IPv6) peer address
 public:
  uint16_t remote_port = 0;
  uint16_t close_code = 0;         // code reported to on_close
  uint16_t path_ref = PathTable::kNone;  // request path, in Impl::paths (kNone: in cold)
  ConnState state = ConnState::Http;
  uint8_t subprotocol = kNoSubprotocol;  // index into ServerConfig::subprotocols

  bool writable : 1 = true;        // edge-triggered: false after EAGAIN until EPOLLOUT
  bool dirty : 1 = false;          // in the flush list
  bool opened : 1 = false;         // on_open ran, so on_close must run
  bool close_reported : 1 = false; // on_close ran
  bool close_sent : 1 = false;
  bool close_received : 1 = false;
  bool shut_done : 1 = false;      // FIN sent (shutdown SHUT_WR)
  bool over_soft : 1 = false;      // crossed the soft output limit: on_drain when empty
  bool ping_outstanding : 1 = false;
  bool read_pending : 1 = false;   // in Impl::read_pending: its next turn is due (fairness)
  bool paused : 1 = false;         // in Impl::paused: not read until its time (pause_input)
  bool bulk : 1 = false;           // a turn spent its whole budget, and a turn has been due since
  bool counted_ip : 1 = false;
  bool greeting : 1 = false;       // the queue starts with greeting bytes (see greeting_bytes)
  bool http_hold : 1 = false;      // HTTP output in progress: the next request waits (not read)
  bool is_tls : 1 = false;         // the byte stream is cold()->tls, not the bare socket
  bool busy : 1 = false;           // read or queued output since the last tick (see on_tick)
  bool peer_eof : 1 = false;       // HTTP: the client half-closed; answer what it sent, then close
  bool upgrade_pending : 1 = false; // Http: the upgrade hook's decision awaited (Impl::pending)
  bool peer_closed : 1 = false;    // the poller saw its FIN or reset: read to the end (PollEvent)
  // permessage-deflate is on when ws.deflate(); the server's window for it
  // (server_max_window_bits - 9), which picks a shared frame's variant.
  uint8_t deflate_window : 3 = 0;

 private:
  enum AddrKind : uint8_t { kV4, kV4Mapped, kV6 };  // kV6: in cold_->addr6
  uint8_t addr_kind_ : 2 = kV4;

 public:
  // The cold part, created on first use.
  ConnCold& cold() {
    if (!cold_) cold_ = std::make_unique<ConnCold>();
    return *cold_;
  }

  bool has_cold() const { return cold_ != nullptr; }  // for tests

  protocol::HttpRequestParser* http() const { return cold_ ? cold_->http.get() : nullptr; }
  void start_http(size_t max_request_size) {
    cold().http = std::make_unique<protocol::HttpRequestParser>(max_request_size);
  }
  // The handshake is over: the parser goes, and the cold part with it if
  // nothing else is in it (the usual case after an upgrade).
  void end_http() {
    if (!cold_) return;
    cold_->http.reset();
    drop_cold_if_unused();
  }
  void drop_cold_if_unused() {
    if (cold_ && cold_->disposable(addr_kind_ == kV6)) cold_.reset();
  }

  // The greeting (the 101 and what on_open queued, see Impl::handle_upgrade)
  // is exempt from the output cap once, by its own size: the first
  // greeting_bytes() bytes of the queue, until they are written.
  size_t greeting_bytes() const { return greeting ? cold_->greeting : 0; }
  void set_greeting(size_t n) {
    if (n == 0) return;
    cold().greeting = n;
    greeting = true;
  }
  void greeting_written(size_t n) {  // n bytes of the queue were written
    if (n < cold_->greeting) {
      cold_->greeting -= n;
      return;
    }
    cold_->greeting = 0;
    greeting = false;
    drop_cold_if_unused();
  }

  // A static file response being streamed (nullptr if none).
  http::FileBody* file() const { return cold_ ? cold_->file.get() : nullptr; }
  void set_file(std::unique_ptr<http::FileBody> f) { cold().file = std::move(f); }
  void end_file() {
    if (!cold_ || !cold_->file) return;
    cold_->file.reset();
    drop_cold_if_unused();
  }

  // Input kept from a turn that ended at its budget (see ConnCold::input).
  bool has_input() const { return cold_ && cold_->input_pos < cold_->input.size(); }
  void keep_input(const uint8_t* data, size_t n) {
    ConnCold& k = cold();
    k.input.assign(reinterpret_cast<const char*>(data), n);  // reuses the capacity
    k.input_pos = 0;
  }
  // The kept input's memory, once it has all been handled (timer, not per turn).
  void trim_input() {
    if (cold_ && !has_input() && cold_->input.capacity() > std::string().capacity()) {
      std::string().swap(cold_->input);
      cold_->input_pos = 0;
    }
  }

  // The TLS session of an is_tls connection (it keeps the cold part).
  net::TlsTransport* tls() const { return cold_ ? cold_->tls.get() : nullptr; }
  void set_tls(net::TlsTransport* t) {
    cold().tls.reset(t);
    is_tls = t != nullptr;
  }

  // The ConnInfo if it was built (see Server::Impl::conn_info).
  ConnInfo* built_info() const { return cold_ ? cold_->info.get() : nullptr; }

  uint64_t dropped() const { return cold_ ? cold_->dropped : 0; }
  void count_dropped() { ++cold().dropped; }  // allocates only on a connection's first drop

  // Keeps `text` (as formatted by net::Acceptor) in binary form; false if it
  // is not an address, in which case the caller keeps the text in the info.
  bool set_address(const std::string& text) {
    if (inet_pton(AF_INET, text.c_str(), addr4_) == 1) {
      addr_kind_ = kV4;
      return true;
    }
    uint8_t a6[16];
    if (inet_pton(AF_INET6, text.c_str(), a6) != 1) return false;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(a6, kMapped, 12) == 0) {  // an IPv4 client of a dual-stack listener
      std::memcpy(addr4_, a6 + 12, 4);
      addr_kind_ = kV4Mapped;
    } else {
      std::memcpy(cold().addr6, a6, 16);
      addr_kind_ = kV6;
    }
    return true;
  }
  // The peer address as text: the same string net::Acceptor produced
  // (inet_ntop of inet_pton of an inet_ntop result is the identity).
  std::string address() const {
    if (ConnInfo* i = built_info()) return i->remote_address;
    char buf[INET6_ADDRSTRLEN] = "";
    if (addr_kind_ == kV4) {
      inet_ntop(AF_INET, addr4_, buf, sizeof buf);
    } else {
      uint8_t a6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
      if (addr_kind_ == kV6 && cold_) {
        std::memcpy(a6, cold_->addr6, 16);
      } else {
        std::memcpy(a6 + 12, addr4_, 4);
      }
      inet_ntop(AF_INET6, a6, buf, sizeof buf);
    }
    return buf;
  }

  // The reason reported to on_close; most connections never have one.
  std::string_view close_reason() const {
    return cold_ ? std::string_view(cold_->close_reason) : std::string_view();
  }
  void set_close_reason(std::string_view r) {
    if (!r.empty()) {
      cold().close_reason.assign(r);
    } else if (cold_) {
      cold_->close_reason.clear();
    }
  }
};

// The idle-memory target (issue 6: <= 200 bytes of server RSS per idle
// connection, measured by bench/run.py idle-10000) leaves about 128 bytes for
// the Connection itself after the id table, the open list and the fd table.
// A field added here must come out of somewhere else (e.g. ConnCold).
static_assert(sizeof(Connection) <= 128, "Connection grew: idle memory per connection");

}  // namespace chatws
