// permessage-deflate negotiation (RFC 7692 section 7), server side.
//
// Decisions:
// - Header syntax is RFC 6455 9.1 (extension tokens, `;` parameters with an
//   optional token or quoted-string value, OWS around separators, empty list
//   elements skipped as RFC 9110 5.6.1 allows). A value that does not parse
//   fails the handshake with 400: its offers cannot be told apart. With
//   compression off the header is not read at all (as before it existed).
// - Within a well-formed header, a permessage-deflate offer that breaks RFC
//   7692 (unknown or repeated parameter, a value where none is allowed, a
//   window size outside 8..15 or with a leading zero) is declined and the
//   next offer considered (RFC 7692 7.1: "MUST decline").
// - server_max_window_bits=8 is declined too: zlib cannot produce raw
//   deflate within a 256-byte window (it rounds up to 9).
// - The response repeats server_max_window_bits only when offered (7.1.2.1),
//   with the smaller of the offer and the policy; client_max_window_bits is
//   answered (with the policy's window, capped by the offer's value) only
//   when the offer has it (7.1.2.2).
#include "protocol/permessage_deflate.h"

#include <algorithm>

#include "protocol/http_request.h"

namespace chatws::protocol {

namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

struct Param {
  std::string name;
  bool has_value = false;
  std::string value;  // unescaped
};

struct Extension {
  std::string name;
  std::vector<Param> params;
};

// A cursor over one header value.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}
  void skip_ows() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  void take() { ++i_; }
  bool token(std::string* out) {
    size_t b = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    if (i_ == b) return false;
    out->assign(s_.substr(b, i_ - b));
    return true;
  }
  bool quoted(std::string* out) {
    if (peek() != '"') return false;
    ++i_;
    out->clear();
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        c = s_[i_++];
      }
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return false;
      out->push_back(c);
    }
    return false;  // unterminated
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// Parses one header value into `out` (appended); false on a syntax error.
bool parse_extensions(std::string_view value, std::vector<Extension>* out) {
  Lexer lx(value);
  for (;;) {
    lx.skip_ows();
    if (lx.done()) return true;
    if (lx.peek() == ',') {  // empty element
      lx.take();
      continue;
    }
    Extension e;
    if (!lx.token(&e.name)) return false;
    for (;;) {
      lx.skip_ows();
      if (lx.peek() != ';') break;
      lx.take();
      lx.skip_ows();
      Param p;
      if (!lx.token(&p.name)) return false;
      lx.skip_ows();
      if (lx.peek() == '=') {
        lx.take();
        lx.skip_ows();
        p.has_value = true;
        if (!(lx.peek() == '"' ? lx.quoted(&p.value) : lx.token(&p.value))) return false;
      }
      e.params.push_back(std::move(p));
    }
    out->push_back(std::move(e));
    lx.skip_ows();
    if (lx.done()) return true;
    if (lx.peek() != ',') return false;
    lx.take();
  }
}

// 8..15 in plain decimal (1*DIGIT without a leading zero, RFC 7692 7.1.2).
bool window_bits(const std::string& v, uint8_t* out) {
  if (v.empty() || v.size() > 2 || v[0] == '0') return false;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (n < 8 || n > 15) return false;
  *out = uint8_t(n);
  return true;
}

// The offer's parameters, or false to decline it.
struct Offer {
  bool server_nct = false, client_nct = false;
  bool has_smwb = false, has_cmwb = false;
  uint8_t smwb = 15;
  uint8_t cmwb = 15;  // 15 when given without a value
};

bool read_offer(const Extension& e, Offer* o) {
  bool seen[4] = {};
  for (const Param& p : e.params) {
    int k;
    if (ascii_iequals(p.name, "server_no_context_takeover")) {
      k = 0;
      if (p.has_value) return false;
      o->server_nct = true;
    } else if (ascii_iequals(p.name, "client_no_context_takeover")) {
      k = 1;
      if (p.has_value) return false;
      o->client_nct = true;
    } else if (ascii_iequals(p.name, "server_max_window_bits")) {
      k = 2;
      if (!p.has_value || !window_bits(p.value, &o->smwb)) return false;
      o->has_smwb = true;
    } else if (ascii_iequals(p.name, "client_max_window_bits")) {
      k = 3;
      if (p.has_value && !window_bits(p.value, &o->cmwb)) return false;
      o->has_cmwb = true;
    } else {
      return false;  // not defined for an offer
    }
    if (seen[k]) return false;
    seen[k] = true;
  }
  return true;
}

uint8_t clamp_bits(uint8_t b, uint8_t lo) { return std::clamp<uint8_t>(b, lo, 15); }

}  // namespace

DeflateNegotiation negotiate_deflate(const std::vector<std::string_view>& header_values,
                                     const DeflatePolicy& policy) {
  DeflateNegotiation r;
  if (header_values.empty() || !policy.enabled) return r;
  std::vector<Extension> exts;
  for (std::string_view v : header_values) {
    if (!parse_extensions(v, &exts)) {
      r.outcome = DeflateNegotiation::Outcome::Fail;
      r.error = "malformed Sec-WebSocket-Extensions header";
      return r;
    }
  }
  const uint8_t ours_s = clamp_bits(policy.server_window_bits, 9);
  const uint8_t ours_c = clamp_bits(policy.client_window_bits, 8);
  for (const Extension& e : exts) {
    if (!ascii_iequals(e.name, "permessage-deflate")) continue;
    Offer o;
    if (!read_offer(e, &o)) continue;
    if (o.has_smwb && o.smwb < 9) continue;  // see the header: zlib cannot
    DeflateParams& p = r.params;
    p.server_no_context_takeover = o.server_nct || policy.server_no_context_takeover;
    p.client_no_context_takeover = o.client_nct || policy.client_no_context_takeover;
    p.server_max_window_bits = o.has_smwb ? std::min(o.smwb, ours_s) : ours_s;
    // Without the parameter the client may use any window up to 15.
    p.client_max_window_bits = o.has_cmwb ? std::min(o.cmwb, ours_c) : 15;
    r.response = "permessage-deflate";
    if (p.server_no_context_takeover) r.response += "; server_no_context_takeover";
    if (p.client_no_context_takeover) r.response += "; client_no_context_takeover";
    if (o.has_smwb) r.response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    if (o.has_cmwb) r.response += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
    r.outcome = DeflateNegotiation::Outcome::Accepted;
    return r;
  }
  r.params = DeflateParams{};
  return r;
}

}  // namespace chatws::protocol
