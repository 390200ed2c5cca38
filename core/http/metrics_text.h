// The Prometheus text exposition format, version 0.0.4: metric families
// with their # HELP and # TYPE lines, samples with optional labels, and
// histograms (cumulative _bucket{le}, _sum, _count). Knows nothing of what
// is measured (server/stats_text.cpp says that). Label values are escaped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chatws::http {

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsText {
 public:
  // Starts a family: `type` is "counter", "gauge" or "histogram". Counter
  // names end in _total (the caller's part of the convention).
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample; `labels` is "" or `key="value",...` already escaped (see label()).
  void sample(std::string_view name, std::string_view labels, double value);
  void sample(std::string_view name, std::string_view labels, uint64_t value);
  // A whole histogram family: `bounds` in base units (seconds), buckets not
  // cumulative with one more (+Inf) than bounds.
  void histogram(std::string_view name, std::string_view help, const double* bounds,
                 const uint64_t* buckets, int n_bounds, double sum, uint64_t count);

  // key="value" with the value escaped (backslash, quote, newline).
  static std::string label(std::string_view key, std::string_view value);

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  static void append_escaped_help(std::string* out, std::string_view help);
  void append_number(double v);
  std::string out_;
};

}  // namespace chatws::http
