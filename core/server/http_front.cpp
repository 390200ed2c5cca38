// The HTTP front of a connection: its requests parsed (pipelined keep-alive
// in order), answered (static files, errors with a status that says why),
// and the WebSocket upgrade decided. What goes out is http_output.cpp's.
#include "server/server_impl.h"

namespace chatws {

void Server::Impl::on_http_bytes(Connection* c, const uint8_t* data, size_t n) {
  auto r = c->http()->feed(reinterpret_cast<const char*>(data), n);
  // Loop for pipelined keep-alive requests.
  while (true) {
    if (r == protocol::HttpRequestParser::Result::Incomplete) return;
    // Responses are answered in order and never dropped: while one is
    // still going out (a file) or the queue is past the window, the next
    // request (even a malformed one) waits, and so does reading.
    if (http_busy(c)) {
      c->http_hold = true;
      return;
    }
    if (r == protocol::HttpRequestParser::Result::Error) {
      count_reject(c, RejectReason::BadRequest, c->http()->error_status(), c->http()->error_reason());
      respond_and_close(c, c->http()->error_status(), c->http()->error_reason());
      return;
    }
    if (!handle_request(c)) return;  // upgraded or closing
    c->http()->reset_keep_leftover();
    if (cfg.handshake_timeout_ms > 0) c->deadline_ms = now_ms + cfg.handshake_timeout_ms;
    r = c->http()->feed(nullptr, 0);
  }
}

// Returns true if the connection stays in HTTP keep-alive for another request.
bool Server::Impl::handle_request(Connection* c) {
  const protocol::HttpRequest& req = c->http()->request();
  ++ctr.http_requests;
  if (protocol::wants_websocket(req)) return handle_upgrade(c, req);
  if (req.method != "GET" && req.method != "HEAD") {
    count_reject(c, RejectReason::BadRequest, 405, "only GET and HEAD are supported");
    respond_and_close(c, 405, "only GET and HEAD are supported", "Allow: GET, HEAD\r\n");
    return false;
  }
  if (answer_http(c, req)) return c->state == ConnState::Http;
  if (cfg.static_dir.empty()) {
    count_reject(c, RejectReason::BadRequest, 426, "this endpoint only speaks WebSocket");
    respond_and_close(c, 426, "this endpoint only speaks WebSocket",
                      "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    return false;
  }
  bool keep = req.keep_alive() && state.load() == LoopState::Running;
  http::StaticResponse resp = static_files.serve(req, keep);
  FrameRef f(SharedFrame::raw(resp.head, resp.body));
  enqueue(c, f.get());
  if (!keep) {
    set_state(c, ConnState::Lingering);
    c->deadline_ms = linger_deadline();
    c->end_http();
  }
  if (resp.file.valid()) send_file(c, std::move(resp.file));
  return keep;
}

bool Server::Impl::handle_upgrade(Connection* c, const protocol::HttpRequest& req) {
  if (state.load() != LoopState::Running) {
    count_reject(c, RejectReason::Shutdown, 503, "server is shutting down");
    respond_and_close(c, 503, "server is shutting down");
    return false;
  }
  if (!cfg.websocket_path_prefix.empty() && !req.path.starts_with(cfg.websocket_path_prefix)) {
    count_reject(c, RejectReason::Path, 404, "no WebSocket endpoint at this path");
    respond_and_close(c, 404, "no WebSocket endpoint at this path");
    return false;
  }
  if (!handshake_allowed(c)) return false;
  protocol::UpgradeResult u = protocol::evaluate_upgrade(req, upgrade_cfg);
  if (u.status != 101) {
    count_reject(c, u.status == 403 ? RejectReason::Origin : RejectReason::BadRequest, u.status,
                 u.status == 403 ? "origin not allowed" : "not a valid WebSocket upgrade");
    FrameRef f(SharedFrame::raw(u.response));
    enqueue(c, f.get());
    set_state(c, ConnState::Lingering);
    c->deadline_ms = linger_deadline();
    c->end_http();
    return false;
  }
  std::string reason;
  if (int st = handler->on_upgrade(req.path, u.subprotocol, &reason); st != 0) {
    count_reject(c, RejectReason::Handler, st, reason.empty() ? "upgrade refused" : reason);
    respond_and_close(c, st, reason.empty() ? "upgrade refused" : reason);
    return false;
  }
  UpgradeVerdict verdict;
  if (handler->wants_upgrade_requests() && !run_upgrade_hook(c, req, u, &verdict)) return false;
  return complete_upgrade(c, req, u, &verdict, {});
}

void Server::Impl::respond_and_close(Connection* c, int status, std::string_view message,
                                     std::string_view extra_headers) {
  if (c->file()) {
    // Mid-response (a file stalled, e.g. the timeout): nothing can follow it.
    abort(c, 1006);
    return;
  }
  std::string resp = protocol::http_error_response(status, message, extra_headers);
  FrameRef f(SharedFrame::raw(resp));
  enqueue(c, f.get());
  set_state(c, ConnState::Lingering);
  c->deadline_ms = linger_deadline();
  c->end_http();
}

}  // namespace chatws
