// A connection's pending output: references to encoded frames (shared with
// other receivers) and how much of the first one is already written.
// Gathered into one writev per flush.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <vector>

#include "server/shared_frame.h"

namespace chatws {

class OutputQueue {
 public:
  OutputQueue() = default;
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;
  ~OutputQueue() { clear(); }

  bool empty() const { return head_ == frames_.size(); }
  size_t bytes() const { return bytes_; }
  // True while the first frame is partly written (must be completed before
  // anything else, e.g. a close frame, can go out).
  bool mid_frame() const { return offset_ != 0; }

  void push(SharedFrame* f) {  // takes a new reference
    f->ref();
    frames_.push_back(f);
    bytes_ += f->size();
  }
  void push_adopt(SharedFrame* f) {  // adopts the caller's reference
    frames_.push_back(f);
    bytes_ += f->size();
  }

  // Fill up to max iovecs; returns the count.
  int gather(iovec* iov, int max) const {
    int n = 0;
    for (size_t i = head_; i < frames_.size() && n < max; ++i, ++n) {
      size_t off = i == head_ ? offset_ : 0;
      iov[n].iov_base = const_cast<char*>(frames_[i]->data() + off);
      iov[n].iov_len = frames_[i]->size() - off;
    }
    return n;
  }

  // Mark `n` bytes written.
  void consume(size_t n) {
    bytes_ -= n;
    while (n > 0) {
      SharedFrame* f = frames_[head_];
      size_t left = f->size() - offset_;
      if (n < left) {
        offset_ += n;
        return;
      }
      n -= left;
      offset_ = 0;
      f->unref();
      ++head_;
    }
    if (head_ == frames_.size()) compact();
  }

  // Drop every frame not yet started (slow-consumer close); keeps a partly
  // written first frame so the stream stays well-formed.
  void drop_unstarted() {
    size_t keep = head_ + (offset_ ? 1 : 0);
    for (size_t i = keep; i < frames_.size(); ++i) {
      bytes_ -= frames_[i]->size();
      frames_[i]->unref();
    }
    frames_.resize(keep);
    if (head_ == frames_.size()) compact();
  }

  void clear() {
    for (size_t i = head_; i < frames_.size(); ++i) frames_[i]->unref();
    frames_.clear();
    head_ = offset_ = bytes_ = 0;
    // A queue that grew large during a burst gives its memory back.
    if (frames_.capacity() > 64) std::vector<SharedFrame*>().swap(frames_);
  }

 private:
  void compact() { clear(); }

  std::vector<SharedFrame*> frames_;
  size_t head_ = 0;
  size_t offset_ = 0;
  size_t bytes_ = 0;
};

}  // namespace chatws
