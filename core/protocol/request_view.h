// The parts of an upgrade request that the host's upgrade hook sees beyond
// the raw head: the percent-decoded path, the query parameters, the cookies
// and the offered subprotocols. Pure, no I/O; fuzzed (fuzz_request_view).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/http_request.h"

namespace chatws::protocol {

using NameValues = std::vector<std::pair<std::string, std::string>>;

// The byte that the escape "%XY" at in[i] stands for (in[i] is the '%'),
// or -1 if two hex digits do not follow.
int percent_escape(std::string_view in, size_t i);

// Percent-decodes `in` (and '+' as a space when plus_is_space, the form
// encoding of query strings). False, *out unspecified, on a '%' not followed
// by two hex digits or on a decoded NUL (which no C string could carry).
bool percent_decode(std::string_view in, bool plus_is_space, std::string* out);

// The query string of a request-target ("" if it has none), without the '?'.
std::string_view query_of(std::string_view target);

// Splits "a=1&b=&c&a=2" into (a,1) (b,"") (c,"") (a,2), decoded, in order,
// duplicates kept; empty pieces ("&&") are skipped. False on a malformed
// escape or a decoded NUL.
bool parse_query(std::string_view query, NameValues* out);

// The cookies of every Cookie header (RFC 6265 5.4: "a=1; b=2"), in order,
// duplicates kept; a value in double quotes loses them. Pieces without '='
// or with an empty name are skipped (browsers do the same).
void parse_cookies(const HttpRequest& req, NameValues* out);

// The subprotocols the client offered (every Sec-WebSocket-Protocol header,
// comma-separated), in order.
std::vector<std::string> offered_subprotocols(const HttpRequest& req);

}  // namespace chatws::protocol
