// chatws_server_get_stats / chatws_server_metrics_port: the engine's stats
// snapshot copied into the versioned C struct.
#include <cstring>

#include "chatws.h"
#include "server/server.h"

chatws::Server* chatws_internal_server(const chatws_server* s);

namespace {

void copy_histogram(const chatws::Histogram& h, chatws_histogram* out) {
  static_assert(chatws::Histogram::kBounds == CHATWS_HISTOGRAM_BOUNDS);
  out->count = h.count;
  out->sum_ns = h.sum_ns;
  for (int i = 0; i <= chatws::Histogram::kBounds; ++i) out->buckets[i] = h.buckets[i];
}

}  // namespace

extern "C" {

int chatws_server_get_stats(const chatws_server* server, chatws_stats* out) {
  if (!server || !out || out->struct_size < sizeof(size_t) || out->struct_size > (size_t{1} << 16))
    return CHATWS_EINVAL;
  try {
    chatws::StatsSnapshot s;
    chatws_internal_server(server)->stats(&s);
    static_assert(size_t(chatws::RejectReason::kCount) <= CHATWS_REJECT_SLOTS);
    static_assert(chatws::kCloseSlots - 1 == CHATWS_STATS_CLOSE_OTHER);
    static_assert(chatws::kCloseSlots <= CHATWS_STATS_CLOSE_SLOTS);
    chatws_stats full;
    std::memset(&full, 0, sizeof full);
    const chatws::LoopCounters& c = s.c;
    full.version = CHATWS_VERSION_STRING;
    full.start_time_ms = s.start_time_ms;
    full.running = s.running;
    full.accepting = s.accepting;
    full.websocket_connections = s.websocket_connections;
    full.http_connections = s.http_connections;
    full.closing_connections = s.closing_connections;
    full.queued_output_bytes = s.queued_output_bytes;
    full.connections_accepted = c.connections_accepted;
    full.http_requests = c.http_requests;
    full.handshakes_accepted = c.handshakes_accepted;
    for (size_t i = 0; i < size_t(chatws::RejectReason::kCount); ++i)
      full.handshakes_rejected[i] = c.handshakes_rejected[i];
    for (int i = 0; i < chatws::kCloseSlots; ++i) full.closes[i] = c.closes[i];
    full.messages_received = c.messages_in;
    full.messages_sent = c.messages_out;
    full.bytes_received = c.bytes_in;
    full.bytes_sent = c.bytes_out;
    full.broadcasts = c.broadcasts;
    full.broadcast_deliveries = c.broadcast_deliveries;
    full.slow_consumer_closes = c.slow_consumer_closes;
    full.slow_consumer_drops = c.slow_consumer_drops;
    full.tls_handshakes = c.tls_handshakes;
    full.tls_failures = c.tls_failures;
    full.log_lines_suppressed = c.log_lines_suppressed;
    full.loop_iterations = c.iterations;
    copy_histogram(c.iteration_duration, &full.loop_iteration);
    full.chat_enabled = s.app.present;
    full.history_ok = s.app.present ? s.app.store_ok : 0;
    full.chat_rooms = s.app.rooms;
    full.chat_members = s.app.members;
    full.history_commits = s.app.commits;
    full.history_commit_failures = s.app.commit_failures;
    full.history_messages = s.app.committed_messages;
    full.chat_deliveries = s.app.deliveries;
    copy_histogram(s.app.commit_duration, &full.history_commit);
    full.cluster_enabled = s.app.cluster;
    full.cluster_up = s.app.cluster_up;
    full.cluster_round_trips = s.app.cluster_round_trips;
    full.cluster_failures = s.app.cluster_failures;
    full.cluster_missed = s.app.cluster_missed;
    full.deflate_calls = c.deflate_calls;
    full.deflate_bytes_in = c.deflate_bytes_in;
    full.deflate_bytes_out = c.deflate_bytes_out;
    full.compressed_messages_sent = c.compressed_frames_out;
    full.inflate_bytes_in = c.inflate_bytes_in;
    full.inflate_bytes_out = c.inflate_bytes_out;
    const size_t n = out->struct_size < sizeof full ? out->struct_size : sizeof full;
    full.struct_size = out->struct_size;
    std::memcpy(out, &full, n);
    return CHATWS_OK;
  } catch (...) {
    return CHATWS_EINTERNAL;
  }
}

int chatws_server_metrics_port(const chatws_server* server) {
  if (!server) return CHATWS_EINVAL;
  const int port = chatws_internal_server(server)->metrics_port();
  return port < 0 ? CHATWS_ESTATE : port;
}

}  // extern "C"
