#include "report.h"

#include <string>

namespace chatws::bench {
namespace {

constexpr double kBottleneckPct = 90.0;

// JSON string escaping for the few free-text fields (label, error).
std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') { o += '\\'; o += char(ch); }
    else if (ch < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", ch); o += b; }
    else o += char(ch);
  }
  return o + "\"";
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

}  // namespace

void print_report(FILE* out, const Options& o, const Result& r) {
  const double secs = r.measured_s > 0 ? r.measured_s : 1;
  const double msgs_s = double(r.msgs) / secs;
  const double deliv_s = double(r.deliveries) / secs;
  const double p50 = double(r.latency.percentile(50)) / 1e3;
  const double p99 = double(r.latency.percentile(99)) / 1e3;
  const double pmax = double(r.latency.max()) / 1e3;
  const double lg_pct = 100.0 * r.loadgen_cpu_s / secs;
  const bool cpu_ok = r.have_server && r.server_cpu_s > 0;
  const double msgs_cpu = cpu_ok ? double(r.msgs) / r.server_cpu_s : 0;
  const double deliv_cpu = cpu_ok ? double(r.deliveries) / r.server_cpu_s : 0;
  const long rss_delta = r.server_rss_kb - r.server_rss_before_kb;
  const double rss_per_conn =
      (o.mode == Mode::Idle && r.have_server && r.opened > 0) ? double(rss_delta) * 1024.0 / r.opened
                                                              : 0;
  std::string warning;
  if (lg_pct > kBottleneckPct * o.threads && o.mode != Mode::Idle)
    warning = "loadgen used " + num(lg_pct) + (o.threads > 1 ? "% of its cores" : "% of its core") + ": it may be the bottleneck";
  if (r.errors || r.unexpected_closes) {
    if (!warning.empty()) warning += "; ";
    warning += "errors=" + std::to_string(r.errors) +
               " unexpected_closes=" + std::to_string(r.unexpected_closes) + " (" + r.first_error + ")";
  }

  if (o.mode == Mode::Idle) {
    std::fprintf(out,
                 "%s%sidle: %d/%d connections opened in %.3fs (%.0f/s, server cpu %.2fs), held %.1fs; "
                 "server RSS %ld -> %ld kB (%.0f bytes/connection)%s%s\n",
                 o.label.c_str(), o.label.empty() ? "" : ": ", r.opened, o.connections, r.open_s,
                 r.open_s > 0 ? r.opened / r.open_s : 0.0, r.open_server_cpu_s, secs,
                 r.server_rss_before_kb, r.server_rss_kb, rss_per_conn,
                 warning.empty() ? "" : "  WARNING: ", warning.c_str());
  } else {
    std::fprintf(out,
                 "%s%s%s: %d conns, %zu B, window %d%s: %.0f msgs/s, %.0f deliveries/s, "
                 "p50 %.0f us, p99 %.0f us, server cpu %.2fs (%.0f msgs/cpu-s, %.0f deliveries/cpu-s), "
                 "rss %ld kB, loadgen cpu %.0f%%%s%s\n",
                 o.label.c_str(), o.label.empty() ? "" : ": ",
                 o.chat ? "chat broadcast" : mode_name(o.mode), o.connections,
                 o.size, o.window,
                 o.mode == Mode::Broadcast ? (", " + std::to_string(o.publishers) + " publisher(s)").c_str() : "",
                 msgs_s, deliv_s, p50, p99, r.server_cpu_s, msgs_cpu, deliv_cpu, r.server_rss_kb,
                 lg_pct, warning.empty() ? "" : "  WARNING: ", warning.c_str());
  }
  if (!o.json) return;
  std::string j = "{";
  auto field = [&](const char* k, const std::string& v) {
    if (j.size() > 1) j += ",";
    j += "\"";
    j += k;
    j += "\":";
    j += v;
  };
  field("label", json_string(o.label));
  field("mode", json_string(mode_name(o.mode)));
  field("chat", o.chat ? "true" : "false");
  field("connections", std::to_string(o.connections));
  field("opened", std::to_string(r.opened));
  field("open_s", num(r.open_s));
  field("opened_per_s", num(r.open_s > 0 ? r.opened / r.open_s : 0.0));
  field("open_server_cpu_s", r.open_server_cpu_s >= 0 ? num(r.open_server_cpu_s) : "null");
  field("size", std::to_string(o.size));
  field("window", std::to_string(o.window));
  field("publishers", std::to_string(o.mode == Mode::Broadcast ? o.publishers : 0));
  field("duration_s", num(secs));
  field("msgs", std::to_string(r.msgs));
  field("deliveries", std::to_string(r.deliveries));
  field("msgs_per_s", num(msgs_s));
  field("deliveries_per_s", num(deliv_s));
  field("p50_us", num(p50));
  field("p99_us", num(p99));
  field("max_us", num(pmax));
  field("server_cpu_s", r.have_server ? num(r.server_cpu_s) : "null");
  // Below ~90% in echo/broadcast the server was not the bottleneck: it waited
  // for the load generator or for a CPU shared with other work.
  field("server_cpu_pct", r.have_server ? num(100.0 * r.server_cpu_s / secs) : "null");
  field("msgs_per_server_cpu_s", cpu_ok ? num(msgs_cpu) : "null");
  field("deliveries_per_server_cpu_s", cpu_ok ? num(deliv_cpu) : "null");
  field("server_rss_kb", r.have_server ? std::to_string(r.server_rss_kb) : "null");
  if (o.mode == Mode::Idle) {
    field("server_rss_before_kb", r.have_server ? std::to_string(r.server_rss_before_kb) : "null");
    field("rss_bytes_per_conn", r.have_server ? num(rss_per_conn) : "null");
  }
  field("loadgen_cpu_pct", num(lg_pct));
  field("errors", std::to_string(r.errors));
  field("unexpected_closes", std::to_string(r.unexpected_closes));
  field("warning", warning.empty() ? "null" : json_string(warning));
  j += "}";
  std::fprintf(out, "%s\n", j.c_str());
}

}  // namespace chatws::bench
