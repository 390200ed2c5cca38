#include "http/metrics_text.h"

#include <cmath>
#include <cstdio>

namespace chatws::http {

void MetricsText::append_escaped_help(std::string* out, std::string_view help) {
  for (char ch : help) {
    if (ch == '\\') out->append("\\\\");
    else if (ch == '\n') out->append("\\n");
    else out->push_back(ch);
  }
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).push_back(' ');
  append_escaped_help(&out_, help);
  out_.append("\n# TYPE ").append(name).push_back(' ');
  out_.append(type).push_back('\n');
}

void MetricsText::append_number(double v) {
  if (std::isnan(v)) {
    out_.append("NaN");
  } else if (std::isinf(v)) {
    out_.append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out_.append(buf);
  }
}

void MetricsText::sample(std::string_view name, std::string_view labels, double value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.push_back(' ');
  append_number(value);
  out_.push_back('\n');
}

void MetricsText::sample(std::string_view name, std::string_view labels, uint64_t value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.push_back(' ');
  out_.append(std::to_string(value));  // exact: no rounding of large counters
  out_.push_back('\n');
}

void MetricsText::histogram(std::string_view name, std::string_view help, const double* bounds,
                            const uint64_t* buckets, int n_bounds, double sum, uint64_t count) {
  family(name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  char le[64];
  for (int i = 0; i < n_bounds; ++i) {
    cumulative += buckets[i];
    std::snprintf(le, sizeof le, "le=\"%g\"", bounds[i]);
    sample(bucket, le, cumulative);
  }
  cumulative += buckets[n_bounds];
  sample(bucket, "le=\"+Inf\"", cumulative);
  sample(std::string(name) + "_sum", "", sum);
  sample(std::string(name) + "_count", "", count);
}

std::string MetricsText::label(std::string_view key, std::string_view value) {
  std::string out(key);
  out.append("=\"");
  for (char ch : value) {
    if (ch == '\\') out.append("\\\\");
    else if (ch == '"') out.append("\\\"");
    else if (ch == '\n') out.append("\\n");
    else out.push_back(ch);
  }
  out.push_back('"');
  return out;
}

}  // namespace chatws::http
