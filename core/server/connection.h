// One client connection: its socket, its protocol state (HTTP head parsing,
// then WebSocket framing) and its pending output. Owned by Server::Impl.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/frame_parser.h"
#include "protocol/http_request.h"
#include "server/output_queue.h"
#include "server/server.h"

namespace chatws {

enum class ConnState : uint8_t {
  Http,       // reading request heads (static files, or the upgrade)
  Open,       // WebSocket open
  Closing,    // close frame sent, waiting for the reply (or the timeout)
  Lingering,  // our side is done: flush output, send FIN, discard input until EOF/timeout
  Dead,       // to be destroyed at the end of the iteration
};

// Field order and widths keep the object small: it exists once per idle
// connection. Anything only some connections need (the HTTP parser, a close
// reason, a message split across reads, a burst of output) is allocated
// only while it is needed.
struct Connection {
  static constexpr uint32_t kNotOpen = UINT32_MAX;
  static constexpr uint8_t kNoSubprotocol = UINT8_MAX;

  explicit Connection(const protocol::ParserLimits& limits) : ws(limits) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ConnId id = 0;
  int64_t deadline_ms = 0;     // handshake / close / linger deadline (0: none)
  int64_t last_rx_ms = 0;      // idle timeout bookkeeping
  uint64_t dropped = 0;        // messages dropped under the drop policy
  std::unique_ptr<protocol::HttpRequestParser> http;  // only while in Http

  int fd = -1;
  uint32_t open_index = kNotOpen;  // position in Impl::open
  ConnState state = ConnState::Http;
  uint16_t close_code = 0;     // code reported to on_close
  uint16_t remote_port = 0;    // until info is built
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
  bool read_pending : 1 = false;   // stopped reading with data left (fairness budget)
  bool counted_ip : 1 = false;
  bool greeting : 1 = false;       // 101 response not yet fully written: output not capped
  bool addr_v6 : 1 = false;        // `addr` holds an IPv6 (else IPv4) address

  protocol::FrameParser ws;    // used once upgraded
  OutputQueue out;

  // What ConnInfo reports is kept here in compact form until the host first
  // asks for it (many never do); then it moves into `info` for good, so the
  // pointers the host was given stay valid for the connection's life.
  uint8_t addr[16] = {};        // binary peer address until info is built
  std::string path;             // moved into info once built
  std::unique_ptr<ConnInfo> info;

  // Keeps `text` (as formatted by net::Acceptor) in binary form; false if it
  // is not an address, in which case the caller keeps the text in `info`.
  bool set_address(const std::string& text) {
    if (inet_pton(AF_INET, text.c_str(), addr) == 1) return true;
    addr_v6 = true;
    return inet_pton(AF_INET6, text.c_str(), addr) == 1;
  }
  // The peer address as text: the same string net::Acceptor produced
  // (inet_ntop of inet_pton of an inet_ntop result is the identity).
  std::string address() const {
    if (info) return info->remote_address;
    char buf[INET6_ADDRSTRLEN] = "";
    inet_ntop(addr_v6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
    return buf;
  }

  // The reason reported to on_close; most connections never have one.
  std::string_view close_reason() const {
    return close_reason_ ? std::string_view(*close_reason_) : std::string_view();
  }
  void set_close_reason(std::string_view r) {
    if (r.empty()) {
      close_reason_.reset();
    } else if (close_reason_) {
      close_reason_->assign(r);
    } else {
      close_reason_ = std::make_unique<std::string>(r);
    }
  }

 private:
  std::unique_ptr<std::string> close_reason_;
};

}  // namespace chatws
