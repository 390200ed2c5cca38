// A connection's pending output: references to encoded frames (shared with
// other receivers) and how much of the first one is already written.
// Gathered into one writev per flush.
//
// Memory: the first frame lives inside the queue itself, so an idle
// connection (or one that only ever has one reply in flight) owns no heap. A burst spills into a heap array that is kept while the connection
// is busy (no allocation per message in steady state) and given back by
// trim() once the queue is empty again.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "server/shared_frame.h"

namespace chatws {

class OutputQueue {
 public:
  OutputQueue() = default;
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;
  ~OutputQueue() {
    clear();
    release();
  }

  bool empty() const { return head_ == tail_; }
  size_t bytes() const { return bytes_; }
  // True while the first frame is partly written (must be completed before
  // anything else, e.g. a close frame, can go out).
  bool mid_frame() const { return offset_ != 0; }

  void push(SharedFrame* f) {  // takes a new reference
    f->ref();
    push_adopt(f);
  }
  void push_adopt(SharedFrame* f) {  // adopts the caller's reference
    if (tail_ == cap_) make_room();
    slots()[tail_++] = f;
    bytes_ += f->size();
  }

  // Fill up to max iovecs; returns the count.
  int gather(iovec* iov, int max) const {
    SharedFrame* const* s = slots();
    int n = 0;
    for (uint32_t i = head_; i < tail_ && n < max; ++i, ++n) {
      size_t off = i == head_ ? offset_ : 0;
      iov[n].iov_base = const_cast<char*>(s[i]->data() + off);
      iov[n].iov_len = s[i]->size() - off;
    }
    return n;
  }

  // Mark `n` bytes written.
  void consume(size_t n) {
    bytes_ -= n;
    SharedFrame** s = slots();
    while (n > 0) {
      SharedFrame* f = s[head_];
      size_t left = f->size() - offset_;
      if (n < left) {
        offset_ += uint32_t(n);
        return;
      }
      n -= left;
      offset_ = 0;
      f->unref();
      ++head_;
    }
    if (head_ == tail_) head_ = tail_ = 0;
  }

  // Drop every frame not yet started (slow-consumer close); keeps a partly
  // written first frame so the stream stays well-formed, and the frames
  // that hold the first `keep_bytes` unwritten bytes (e.g. a handshake
  // response the close frame must follow).
  void drop_unstarted(size_t keep_bytes = 0) {
    SharedFrame** s = slots();
    uint32_t keep = head_;
    for (size_t kept = 0; keep < tail_ && (kept < keep_bytes || (keep == head_ && offset_)); ++keep)
      kept += s[keep]->size() - (keep == head_ ? offset_ : 0);
    for (uint32_t i = keep; i < tail_; ++i) {
      bytes_ -= s[i]->size();
      s[i]->unref();
    }
    tail_ = keep;
    if (head_ == tail_) head_ = tail_ = 0;
  }

  void clear() {
    SharedFrame** s = slots();
    for (uint32_t i = head_; i < tail_; ++i) s[i]->unref();
    head_ = tail_ = offset_ = 0;
    bytes_ = 0;
    // A queue that grew large during a burst gives its memory back.
    if (cap_ > 64) release();
  }

  // Give the spill array back if the queue is empty (called off the hot
  // path, e.g. from the periodic timer).
  void trim() {
    if (empty()) release();
  }

 private:
  static constexpr uint32_t kInline = 1;  // e.g. the handshake response

  SharedFrame** slots() { return cap_ > kInline ? heap_ : inline_; }
  SharedFrame* const* slots() const { return cap_ > kInline ? heap_ : inline_; }

  // Full at the tail: slide the live frames to the front, or grow.
  void make_room() {
    SharedFrame** s = slots();
    uint32_t live = tail_ - head_;
    if (head_ > 0 && live < cap_ / 2 + 1) {
      std::memmove(s, s + head_, live * sizeof(SharedFrame*));
    } else {
      uint32_t cap = cap_ < 8 ? 8 : cap_ * 2;
      auto* grown = static_cast<SharedFrame**>(std::malloc(cap * sizeof(SharedFrame*)));
      if (!grown) throw std::bad_alloc();
      std::memcpy(grown, s + head_, live * sizeof(SharedFrame*));
      if (cap_ > kInline) std::free(heap_);
      heap_ = grown;
      cap_ = cap;
    }
    head_ = 0;
    tail_ = live;
  }

  void release() {
    if (cap_ <= kInline) return;
    // Only called when empty: nothing to move back inline.
    std::free(heap_);
    cap_ = kInline;
  }

  union {
    SharedFrame* inline_[kInline] = {};
    SharedFrame** heap_;  // when cap_ > kInline
  };
  uint32_t head_ = 0;
  uint32_t tail_ = 0;
  uint32_t cap_ = kInline;
  uint32_t offset_ = 0;  // frames are < 4 GiB (SharedFrame::size_ is 32-bit)
  size_t bytes_ = 0;
};

}  // namespace chatws
