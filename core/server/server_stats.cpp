// The loop's stats: publishing the snapshot once per iteration, counting
// refused handshakes, and the rate-limited log lines a client can cause.
#include <string>

#include "server/loop_group.h"
#include "server/server_impl.h"

namespace chatws {

void Server::Impl::publish_stats(uint64_t iteration_ns) {
  if (iteration_ns) {
    ++ctr.iterations;
    ctr.iteration_duration.observe(iteration_ns);
  }
  ctr.log_lines_suppressed = reject_log.total_suppressed() + slow_log.total_suppressed();
  StatsSnapshot& s = publishing;  // a member: filled in place, nothing allocated
  s.c = ctr;
  s.websocket_connections = open.size();
  s.http_connections = state_count[size_t(ConnState::Http)];
  s.closing_connections =
      state_count[size_t(ConnState::Closing)] + state_count[size_t(ConnState::Lingering)];
  s.queued_output_bytes = by_id.empty() ? 0 : queued_gauge;
  s.start_time_ms = start_wall_ms;
  // A loop fed by loop 0 (AcceptMode::Handoff) takes connections while it runs.
  s.accepting = listens ? listen_fd >= 0 && !accept_paused : state.load() == LoopState::Running;
  s.running = state.load() == LoopState::Running;
  s.app = AppStats{};
  handler->collect_stats(&s.app);
  stats_cell.publish(s);
}

void Server::Impl::log_limited(LogLimiter& limit, LogLevel level, std::string message) {
  uint64_t held = 0;
  if (!limit.allow(now_ms, &held)) return;
  if (held) message += " (" + std::to_string(held) + " similar lines suppressed)";
  log(level, message);
}

void Server::Impl::count_reject(Connection* c, RejectReason why, int status,
                                std::string_view message) {
  ++ctr.handshakes_rejected[size_t(why)];
  uint64_t held = 0;
  // Checked before the line is built: a flood costs no string work.
  if (!reject_log.allow(now_ms, &held)) return;
  std::string line = "refused " + c->address() + ": ";
  if (status) line += std::to_string(status) + " ";
  line.append(message);
  line += " [" + std::string(kRejectReasonNames[size_t(why)]) + "]";
  if (held) line += " (" + std::to_string(held) + " similar lines suppressed)";
  log(LogLevel::Info, line);
}

void Server::Impl::log_slow_close(Connection* c) {
  uint64_t held = 0;
  if (!slow_log.allow(now_ms, &held)) return;
  std::string line = "closed connection " + std::to_string(c->id) + " from " + c->address() +
                     " with 1008: too slow, " + std::to_string(c->out.bytes()) +
                     " bytes of output queued";
  if (held) line += " (" + std::to_string(held) + " similar lines suppressed)";
  log(LogLevel::Warning, line);
}

bool Server::Impl::answer_http(Connection* c, const protocol::HttpRequest& req) {
  HttpReply reply;
  handler->on_http_request(req.path, &reply);
  if (reply.status == 0) return false;
  const bool keep = req.keep_alive() && state.load() == LoopState::Running;
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                     protocol::http_reason_phrase(reply.status) + "\r\nContent-Type: " +
                     reply.content_type + "\r\nContent-Length: " +
                     std::to_string(reply.body.size()) + "\r\nCache-Control: no-store\r\n" +
                     (keep ? "" : "Connection: close\r\n") + "\r\n";
  const bool head_only = req.method == "HEAD";
  FrameRef f(SharedFrame::raw(head, head_only ? std::string_view() : std::string_view(reply.body)));
  enqueue(c, f.get());
  if (!keep) {
    set_state(c, ConnState::Lingering);
    c->deadline_ms = linger_deadline();
    c->end_http();
  }
  return true;
}

void Server::Impl::read_stats(StatsSnapshot* out) const {
  if (group) return group->read_stats(out);  // summed over the loops
  stats_cell.read(out);
}

void Server::stats(StatsSnapshot* out) const { impl_->read_stats(out); }

int Server::metrics_port() const {
  return impl_->metrics_port.load();
}

}  // namespace chatws
