// The metrics listener: a Server of its own (so it has the same limits,
// timeouts and HTTP parser as the main listener) on its own port, whose
// epoll fd sits in the main loop's poll set. Its requests are answered on
// the main loop's thread: /healthz answering at all means the loop runs.
//   GET /metrics  Prometheus text 0.0.4 of the main server's snapshot
//   GET /healthz  200 "ok"
//   GET /readyz   200 "ready", or 503 naming what is not (stopping, not
//                 accepting, history store failing)
//   anything else 404; upgrades 404 too (nothing speaks WebSocket here).
#include <cerrno>
#include <cstring>

#include "http/metrics_text.h"
#include "server/server_impl.h"
#include "server/stats_text.h"

namespace chatws {

namespace {

class MetricsHandler final : public ServerHandler {
 public:
  explicit MetricsHandler(Server::Impl* main) : main_(main) {}

  int on_upgrade(std::string_view, std::string_view, std::string* reason) override {
    *reason = "no WebSocket endpoint on the metrics port";
    return 404;
  }
  void on_message(ConnId, protocol::Opcode, const char*, size_t) override {}
  void on_log(LogLevel level, std::string_view message) override {
    main_->log(level, "metrics listener: " + std::string(message));
  }

  void on_http_request(std::string_view path, HttpReply* reply) override {
    reply->content_type = "text/plain; charset=utf-8";
    if (path == "/metrics") {
      StatsSnapshot s;
      main_->read_stats(&s);
      reply->status = 200;
      reply->content_type = http::kPrometheusContentType;
      reply->body = render_prometheus(s, main_->cfg.version);
    } else if (path == "/healthz") {
      reply->status = 200;
      reply->body = "ok\n";
    } else if (path == "/readyz") {
      StatsSnapshot s;
      main_->read_stats(&s);
      std::string why;
      if (!s.running) why += "stopping\n";
      else if (!s.accepting) why += "not accepting connections\n";
      if (s.app.present && s.app.cluster && !s.app.cluster_up) why += "cluster: Redis unavailable\n";
      else if (s.app.present && !s.app.store_ok) why += "history store not writable\n";
      reply->status = why.empty() ? 200 : 503;
      reply->body = why.empty() ? "ready\n" : why;
    } else {
      reply->status = 404;
      reply->body = "not found: try /metrics, /healthz or /readyz\n";
    }
  }

 private:
  Server::Impl* main_;
};

}  // namespace

bool Server::Impl::start_metrics(std::string* error) {
  ServerConfig mc;
  mc.host = cfg.metrics_host.empty() ? "127.0.0.1" : cfg.metrics_host;
  mc.port = uint16_t(cfg.metrics_port);
  // The main listener's limits: a scraper is a client like any other.
  mc.max_request_size = cfg.max_request_size;
  mc.max_output_buffer = cfg.max_output_buffer;
  mc.max_connections = cfg.max_connections;
  mc.max_connections_per_ip = cfg.max_connections_per_ip;
  mc.ipv6_prefix_length = cfg.ipv6_prefix_length;
  mc.socket_send_buffer = cfg.socket_send_buffer;
  mc.handshake_timeout_ms = cfg.handshake_timeout_ms;
  mc.idle_timeout_ms = cfg.idle_timeout_ms;
  mc.close_timeout_ms = cfg.close_timeout_ms;
  mc.drain_timeout_ms = 0;
  metrics_handler = std::make_unique<MetricsHandler>(this);
  std::string err;
  int code = 0;
  metrics = Server::create(mc, metrics_handler.get(), &err, &code);
  if (!metrics) {
    *error = "metrics listener: " + err;
    return false;
  }
  if (!poller.add_level_read(metrics->fd(), kMetricsToken)) {
    *error = std::string("metrics listener: epoll_ctl: ") + std::strerror(errno);
    metrics.reset();
    return false;
  }
  metrics_port.store(metrics->port());
  return true;
}

void Server::Impl::poll_metrics() {
  if (metrics) metrics->poll(0);
}

void Server::Impl::stop_metrics() {
  if (!metrics) return;
  metrics_port.store(-1);
  poller.remove(metrics->fd());
  metrics.reset();  // closes its connections (there is no one to tell)
  metrics_handler.reset();
}

}  // namespace chatws
