#include "protocol/request_view.h"

namespace chatws::protocol {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(piece) for each piece of `s` between separators `sep`.
template <class F>
void split(std::string_view s, char sep, F f) {
  while (true) {
    size_t at = s.find(sep);
    f(s.substr(0, at));
    if (at == std::string_view::npos) return;
    s.remove_prefix(at + 1);
  }
}

}  // namespace

int percent_escape(std::string_view in, size_t i) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (i + 2 >= in.size()) return -1;
  const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool percent_decode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      const int v = percent_escape(in, i);
      if (v < 0) return false;
      c = char(v);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return false;
    out->push_back(c);
  }
  return true;
}

std::string_view query_of(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  // A fragment never reaches a server, but a malformed client may send one.
  return rest.substr(0, rest.find('#'));
}

bool parse_query(std::string_view query, NameValues* out) {
  out->clear();
  bool ok = true;
  split(query, '&', [&](std::string_view piece) {
    if (!ok || piece.empty()) return;
    size_t eq = piece.find('=');
    std::string name, value;
    if (!percent_decode(piece.substr(0, eq), true, &name)) ok = false;
    if (eq != std::string_view::npos && !percent_decode(piece.substr(eq + 1), true, &value))
      ok = false;
    if (ok) out->emplace_back(std::move(name), std::move(value));
  });
  return ok;
}

void parse_cookies(const HttpRequest& req, NameValues* out) {
  out->clear();
  for (const auto& [name, value] : req.headers) {
    if (!ascii_iequals(name, "cookie")) continue;
    split(value, ';', [&](std::string_view piece) {
      piece = trim(piece);
      size_t eq = piece.find('=');
      if (eq == std::string_view::npos) return;
      std::string_view n = trim(piece.substr(0, eq)), v = trim(piece.substr(eq + 1));
      if (n.empty()) return;
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      out->emplace_back(std::string(n), std::string(v));
    });
  }
}

std::vector<std::string> offered_subprotocols(const HttpRequest& req) {
  std::vector<std::string> out;
  for (const auto& [name, value] : req.headers) {
    if (!ascii_iequals(name, "sec-websocket-protocol")) continue;
    split(value, ',', [&](std::string_view piece) {
      piece = trim(piece);
      if (!piece.empty()) out.emplace_back(piece);
    });
  }
  return out;
}

}  // namespace chatws::protocol
