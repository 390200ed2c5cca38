// The stats snapshot as Prometheus text (format 0.0.4): every metric under
// the chatws_ prefix, in base units, counters ending in _total, and no
// label with more values than a fixed list (never a connection id or a
// room name). The metric list is documented in README.md ("Metrics").
#pragma once

#include <string>
#include <string_view>

#include "server/stats.h"

namespace chatws {

std::string render_prometheus(const StatsSnapshot& s, std::string_view version);

}  // namespace chatws
