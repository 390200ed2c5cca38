// One client connection: its socket, its protocol state (HTTP head parsing,
// then WebSocket framing) and its pending output. Owned by Server::Impl.
#pragma once

#include <cstdint>
#include <memory>

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

struct Connection {
  ConnId id = 0;
  int fd = -1;
  ConnState state = ConnState::Http;

  bool writable = true;        // edge-triggered: false after EAGAIN until EPOLLOUT
  bool dirty = false;          // in the flush list
  bool opened = false;         // on_open ran, so on_close must run
  bool close_reported = false; // on_close ran
  bool close_sent = false;
  bool close_received = false;
  bool shut_done = false;      // FIN sent (shutdown SHUT_WR)
  bool over_soft = false;      // crossed the soft output limit: on_drain when empty
  bool ping_outstanding = false;
  bool read_pending = false;   // stopped reading with data left (fairness budget)
  bool counted_ip = false;

  uint16_t close_code = 0;     // code reported to on_close
  std::string close_reason;

  int64_t deadline_ms = 0;     // handshake / close / linger deadline (0: none)
  int64_t last_rx_ms = 0;      // idle timeout bookkeeping
  size_t open_index = SIZE_MAX; // position in Impl::open (SIZE_MAX: not in it)
  uint64_t dropped = 0;        // messages dropped under the drop policy

  std::unique_ptr<protocol::HttpRequestParser> http;  // only while in Http
  std::unique_ptr<protocol::FrameParser> ws;          // only once upgraded
  OutputQueue out;
  ConnInfo info;
};

}  // namespace chatws
