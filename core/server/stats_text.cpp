#include "server/stats_text.h"

#include <cstdio>

#include "http/metrics_text.h"

namespace chatws {

namespace {

void counter(http::MetricsText& m, const char* name, const char* help, uint64_t v) {
  m.family(name, "counter", help);
  m.sample(name, "", v);
}

void gauge(http::MetricsText& m, const char* name, const char* help, double v) {
  m.family(name, "gauge", help);
  m.sample(name, "", v);
}

void histogram(http::MetricsText& m, const char* name, const char* help, const Histogram& h) {
  double bounds[Histogram::kBounds];
  for (int i = 0; i < Histogram::kBounds; ++i) bounds[i] = double(Histogram::kBoundNs[i]) / 1e9;
  m.histogram(name, help, bounds, h.buckets, Histogram::kBounds, double(h.sum_ns) / 1e9, h.count);
}

}  // namespace

std::string render_prometheus(const StatsSnapshot& s, std::string_view version) {
  http::MetricsText m;
  const LoopCounters& c = s.c;
  m.family("chatws_build_info", "gauge", "Always 1; the version label names the library build.");
  m.sample("chatws_build_info", http::MetricsText::label("version", version), uint64_t{1});
  gauge(m, "chatws_start_time_seconds", "When the server was created, in seconds since the Unix epoch.",
        double(s.start_time_ms) / 1e3);
  gauge(m, "chatws_up", "1 while the server runs, 0 once it is stopping.", s.running ? 1.0 : 0.0);

  m.family("chatws_connections", "gauge", "Open connections by kind: websocket (open WebSockets), "
           "http (reading or answering HTTP), closing (closing or lingering).");
  m.sample("chatws_connections", "kind=\"websocket\"", s.websocket_connections);
  m.sample("chatws_connections", "kind=\"http\"", s.http_connections);
  m.sample("chatws_connections", "kind=\"closing\"", s.closing_connections);
  counter(m, "chatws_connections_accepted_total", "TCP connections accepted.", c.connections_accepted);
  counter(m, "chatws_http_requests_total", "HTTP request heads parsed, upgrades included.", c.http_requests);
  counter(m, "chatws_handshakes_accepted_total", "WebSocket handshakes accepted (101 sent).",
          c.handshakes_accepted);
  m.family("chatws_handshakes_rejected_total", "counter",
           "Requests answered with an HTTP error instead of an upgrade, by reason.");
  for (size_t i = 0; i < size_t(RejectReason::kCount); ++i)
    m.sample("chatws_handshakes_rejected_total",
             http::MetricsText::label("reason", kRejectReasonNames[i]), c.handshakes_rejected[i]);
  m.family("chatws_closes_total", "counter",
           "WebSocket connections closed, by close code (\"other\": any code not listed).");
  for (int i = 0; i < kCloseSlots; ++i) {
    char code[16];
    if (i < kCloseSlots - 1) std::snprintf(code, sizeof code, "%u", unsigned(kCountedCloseCodes[i]));
    else std::snprintf(code, sizeof code, "other");
    m.sample("chatws_closes_total", http::MetricsText::label("code", code), c.closes[i]);
  }
  counter(m, "chatws_messages_received_total", "WebSocket messages received (text and binary).",
          c.messages_in);
  counter(m, "chatws_messages_sent_total", "WebSocket data frames queued to connections.", c.messages_out);
  counter(m, "chatws_received_bytes_total", "Bytes read from client sockets (after TLS).", c.bytes_in);
  counter(m, "chatws_sent_bytes_total", "Bytes written to client sockets (before TLS).", c.bytes_out);
  counter(m, "chatws_broadcasts_total", "Broadcasts (one frame shared by all receivers).", c.broadcasts);
  counter(m, "chatws_broadcast_deliveries_total", "Receivers the broadcasts were queued to.",
          c.broadcast_deliveries);
  counter(m, "chatws_deflate_calls_total",
          "Messages deflated (permessage-deflate; shared mode: once per frame, not per receiver).",
          c.deflate_calls);
  counter(m, "chatws_deflate_in_bytes_total", "Payload bytes given to deflate.", c.deflate_bytes_in);
  counter(m, "chatws_deflate_out_bytes_total", "Compressed bytes deflate produced.", c.deflate_bytes_out);
  counter(m, "chatws_compressed_messages_sent_total", "Data frames queued compressed.",
          c.compressed_frames_out);
  counter(m, "chatws_inflate_in_bytes_total", "Compressed payload bytes received.", c.inflate_bytes_in);
  counter(m, "chatws_inflate_out_bytes_total", "Bytes the received compressed messages inflated to.",
          c.inflate_bytes_out);
  counter(m, "chatws_slow_consumer_closes_total",
          "Connections closed with 1008 because their output queue was full.", c.slow_consumer_closes);
  counter(m, "chatws_slow_consumer_drops_total",
          "Messages dropped for a full output queue (slow_consumer_policy drop).", c.slow_consumer_drops);
  gauge(m, "chatws_queued_output_bytes", "Output queued for all connections, as of the last timer tick.",
        double(s.queued_output_bytes));
  counter(m, "chatws_tls_handshakes_total", "TLS handshakes completed.", c.tls_handshakes);
  counter(m, "chatws_tls_handshake_failures_total",
          "TLS handshakes that failed or timed out, plain HTTP on the TLS port included.", c.tls_failures);
  counter(m, "chatws_log_lines_suppressed_total", "Log lines held back by the log rate limit.",
          c.log_lines_suppressed);
  counter(m, "chatws_loop_iterations_total", "Event loop iterations.", c.iterations);
  histogram(m, "chatws_loop_iteration_duration_seconds",
            "Time the loop spent on one iteration's work (the lag a client can feel).",
            c.iteration_duration);
  if (s.app.present) {
    gauge(m, "chatws_chat_rooms", "Chat rooms in memory.", double(s.app.rooms));
    gauge(m, "chatws_chat_members", "Chat connections in a room.", double(s.app.members));
    counter(m, "chatws_history_commits_total", "Batches of chat messages committed to history.",
            s.app.commits);
    counter(m, "chatws_history_commit_failures_total", "Batches the history store refused.",
            s.app.commit_failures);
    counter(m, "chatws_history_messages_total", "Chat messages committed to history.",
            s.app.committed_messages);
    counter(m, "chatws_chat_deliveries_total",
            "Chat messages delivered to room members (one message to a room of M counts M).",
            s.app.deliveries);
    histogram(m, "chatws_history_commit_duration_seconds", "Time one history commit took.",
              s.app.commit_duration);
    if (s.app.cluster) {
      gauge(m, "chatws_cluster_up", "1 while both Redis connections of the cluster are up.",
            s.app.cluster_up ? 1.0 : 0.0);
      counter(m, "chatws_cluster_round_trips_total", "Writes of queued Redis commands (one per loop "
              "iteration at most for the appends).", s.app.cluster_round_trips);
      counter(m, "chatws_cluster_failures_total", "Lost Redis connections and failed Redis commands.",
              s.app.cluster_failures);
      counter(m, "chatws_cluster_missed_total", "Room entries trimmed from Redis before this node read "
              "them (its members were told).", s.app.cluster_missed);
    }
  }
  return m.take();
}

}  // namespace chatws
