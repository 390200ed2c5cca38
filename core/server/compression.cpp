// permessage-deflate in the server: the mode's policy at the handshake, the
// frame each receiver gets (a shared frame's cached compressed variant, or
// one of its own in the dedicated mode), the inflate of a client's
// compressed message, and releasing idle zlib state.
//
// Decisions:
// - Shared mode answers server_no_context_takeover and
//   client_no_context_takeover: a frame deflated once serves every receiver
//   with the same window, and one inflate stream per loop, reset per
//   message, serves every client. An idle connection holds no zlib state.
// - A fragmented compressed message is inflated once it is complete (the
//   frame parser reassembles its compressed bytes, bounded by
//   max_message_size like any message), so no inflate stream is held
//   between a client's frames.
// - Dedicated mode: a client that keeps its context gets an inflate stream
//   of its own, bounded by the window asked of it (client_max_window_bits,
//   when its offer lets us ask); the connection's deflate stream is made on
//   its first compressed send. Both are released once the connection has
//   been quiet for a tick (the inflate window is kept as a copy of at most
//   2^window_bits bytes).
// - A payload that does not shrink goes out as it is: in the shared mode the
//   frame remembers it; in the dedicated mode the deflate stream is dropped
//   (the client never saw that output, so the stream's history no longer
//   matches the client's window).
#include <algorithm>

#include "server/server_impl.h"

namespace chatws {

void Server::Impl::configure_compression() {
  const CompressionConfig& z = cfg.compression;
  protocol::DeflatePolicy& p = upgrade_cfg.deflate;
  p.enabled = z.mode != CompressionMode::Off;
  p.server_no_context_takeover = z.mode == CompressionMode::Shared;
  p.client_no_context_takeover = z.mode == CompressionMode::Shared;
  p.server_window_bits = std::clamp<uint8_t>(z.window_bits, 9, 15);
  p.client_window_bits = std::clamp<uint8_t>(z.window_bits, 9, 15);
}

void Server::Impl::start_deflate(Connection* c, const protocol::DeflateParams& p) {
  c->ws.set_deflate(true);
  c->deflate_window = uint8_t(std::clamp<uint8_t>(p.server_max_window_bits, 9, 15) - 9);
  if (cfg.compression.mode == CompressionMode::Dedicated)
    c->cold().deflate = std::make_unique<ConnDeflate>(p, cfg.compression.mem_level);
}

protocol::Deflater& Server::Impl::shared_deflater(uint8_t window_bits) {
  auto& d = shared_deflaters[window_bits - 9];
  if (!d) d = std::make_unique<protocol::Deflater>(window_bits, cfg.compression.mem_level, false);
  return *d;
}

SharedFrame* Server::Impl::compressed_for(Connection* c, SharedFrame* f, FrameRef* hold) {
  const std::string_view payload = f->payload();
  if (payload.size() < cfg.compression.threshold || f->incompressible()) return f;
  ConnDeflate* own = c->has_cold() ? c->cold().deflate.get() : nullptr;
  const uint8_t bits = uint8_t(9 + c->deflate_window);
  if (!own) {
    if (SharedFrame* v = f->variant(bits)) return v;
  }
  protocol::Deflater& d = own ? own->deflater : shared_deflater(bits);
  ++ctr.deflate_calls;
  ctr.deflate_bytes_in += payload.size();
  if (!d.compress(payload.data(), payload.size(), &zbuf)) return f;  // no memory: as it is
  ctr.deflate_bytes_out += zbuf.size();
  if (zbuf.size() >= payload.size() && !cfg.compression.always) {
    if (own) {
      own->deflater.release();
    } else {
      f->set_incompressible();
    }
    trim_deflate_buffer();
    return f;
  }
  SharedFrame* v = SharedFrame::make_compressed(f->opcode(), zbuf, bits);
  trim_deflate_buffer();
  if (own) {
    *hold = FrameRef(v);  // this receiver's alone
  } else {
    f->add_variant(v);  // every receiver with this window
  }
  return v;
}

protocol::Inflater& Server::Impl::inflater_of(Connection* c) {
  if (c->has_cold() && c->cold().deflate) return c->cold().deflate->inflater;
  return shared_inflater;
}

void Server::Impl::deflate_idle(Connection* c) {
  if (!c->has_cold() || !c->cold().deflate) return;
  ConnDeflate& d = *c->cold().deflate;
  d.deflater.release();
  d.inflater.release();
}

// A big message's buffer is not kept for the small ones that follow.
constexpr size_t kKeepBuffer = 64 * 1024;

void Server::Impl::trim_deflate_buffer() {
  if (zbuf.capacity() > kKeepBuffer) std::string().swap(zbuf);
}

void Server::Impl::trim_inflate_buffer() {
  // Only once the message is handled: on_message reads it in place.
  if (inflated.capacity() > kKeepBuffer) std::string().swap(inflated);
}

}  // namespace chatws
