// An encoded, immutable WebSocket frame shared by every receiver of a
// broadcast: encoded once, referenced by each connection's output queue,
// freed when the last write completes. Intrusive refcount, header and
// payload contiguous in one block; small blocks are recycled through a
// per-thread free list so the steady state allocates nothing.
// A frame may cross to another loop of the server (a broadcast reaching
// every loop, a room's message): the count is atomic (an uncontended
// `lock add` while the frame stays on its loop) and so is the list of
// compressed variants, which the loops that share a frame may each extend.
// A block freed on another thread than the one that made it goes to that
// thread's free list.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/frame.h"

namespace chatws {

class SharedFrame {
 public:
  // Encode an unmasked server frame (FIN set) around `payload`.
  static SharedFrame* make(protocol::Opcode op, std::string_view payload);
  // Same, with the payload gathered from two pieces (avoids a copy for
  // snapshots built in parts).
  static SharedFrame* make2(protocol::Opcode op, std::string_view a, std::string_view b);

  // Raw bytes with no WebSocket header (HTTP responses share the output path).
  static SharedFrame* raw(std::string_view a, std::string_view b = {});
  // `n` raw bytes for the caller to fill (mutable_data()) before queueing,
  // e.g. a chunk of a file read straight into it.
  static SharedFrame* buffer(size_t n);

  // A compressed data frame (RSV1 set, RFC 7692) around an already
  // deflated payload, for receivers whose window is `window_bits`.
  static SharedFrame* make_compressed(protocol::Opcode op, std::string_view deflated,
                                      uint8_t window_bits);

  // Free the calling thread's pooled blocks (e.g. when the server goes idle).
  static void trim_pool();

  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  size_t size() const { return size_; }
  char* mutable_data() { return reinterpret_cast<char*>(this + 1); }

  // A WebSocket data frame (text or binary) made here, uncompressed: what
  // permessage-deflate may replace by a compressed variant.
  bool compressible() const { return (kind_ == 0x1 || kind_ == 0x2) && !rsv1_; }
  protocol::Opcode opcode() const { return protocol::Opcode(kind_); }
  std::string_view payload() const { return {data() + hdr_len_, size_ - hdr_len_}; }
  // The compressed variant made for receivers with this window (shared
  // mode: one deflate per frame and window, never per receiver), if any.
  SharedFrame* variant(uint8_t window_bits) const {
    for (SharedFrame* v = variant_.load(std::memory_order_acquire); v;
         v = v->variant_.load(std::memory_order_acquire))
      if (v->window_bits_ == window_bits) return v;
    return nullptr;
  }
  // Adopts `v` (one reference) as the variant for v's window. Two loops
  // that deflate the same frame at once both add theirs (the first found
  // serves; both are freed with the frame).
  void add_variant(SharedFrame* v) {
    SharedFrame* head = variant_.load(std::memory_order_relaxed);
    do {
      v->variant_.store(head, std::memory_order_relaxed);
    } while (!variant_.compare_exchange_weak(head, v, std::memory_order_release,
                                             std::memory_order_relaxed));
  }
  // Deflating it did not make it smaller: every receiver gets it as it is.
  bool incompressible() const { return incompressible_.load(std::memory_order_relaxed); }
  void set_incompressible() { incompressible_.store(true, std::memory_order_relaxed); }

  uint32_t use_count() const { return refs_.load(std::memory_order_relaxed); }
  void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

 private:
  SharedFrame(size_t n, uint8_t cls) : size_(n), class_(cls) {}
  static SharedFrame* allocate(size_t total);
  void destroy();
  std::atomic<SharedFrame*> variant_{nullptr};  // compressed variants (owned), a list through variant_
  std::atomic<uint32_t> refs_{1};
  uint32_t size_;
  uint8_t class_;  // size class for the free list, or kUnpooled
  uint8_t kind_ = 0xFF;  // the opcode of a WebSocket frame made here; 0xFF: raw bytes
  uint8_t hdr_len_ = 0;  // WebSocket header bytes before the payload
  uint8_t window_bits_ = 0;  // of a compressed variant
  bool rsv1_ = false;        // compressed
  std::atomic<bool> incompressible_{false};
};

// Owning handle (move-only, or copy with ref()).
class FrameRef {
 public:
  FrameRef() = default;
  explicit FrameRef(SharedFrame* f) : f_(f) {}  // adopts one reference
  FrameRef(const FrameRef& o) : f_(o.f_) { if (f_) f_->ref(); }
  FrameRef(FrameRef&& o) noexcept : f_(o.f_) { o.f_ = nullptr; }
  FrameRef& operator=(FrameRef o) noexcept { std::swap(f_, o.f_); return *this; }
  ~FrameRef() { if (f_) f_->unref(); }
  SharedFrame* get() const { return f_; }
  SharedFrame* operator->() const { return f_; }
  explicit operator bool() const { return f_ != nullptr; }
  SharedFrame* release() { auto* f = f_; f_ = nullptr; return f; }

 private:
  SharedFrame* f_ = nullptr;
};

}  // namespace chatws
