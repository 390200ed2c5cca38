// A connection's own permessage-deflate state (ConnCold::deflate): only in
// the dedicated mode. The zlib streams inside are made on first use and
// released when the connection idles (see Server::Impl::deflate_idle).
#pragma once

#include "protocol/deflate_codec.h"
#include "protocol/permessage_deflate.h"

namespace chatws {

struct ConnDeflate {
  ConnDeflate(const protocol::DeflateParams& p, int mem_level)
      : deflater(p.server_max_window_bits, mem_level, !p.server_no_context_takeover),
        inflater(p.client_max_window_bits, !p.client_no_context_takeover) {}
  protocol::Deflater deflater;  // this connection's sends
  protocol::Inflater inflater;  // its client's messages
};

}  // namespace chatws
