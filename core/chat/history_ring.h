// A room's in-memory history: the last `capacity` messages, oldest to
// newest, in a fixed ring (no allocation after the first lap except the
// messages' own strings).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "chat/message.h"

namespace chatws::chat {

class HistoryRing {
 public:
  explicit HistoryRing(size_t capacity) : cap_(capacity ? capacity : 1) {}

  size_t capacity() const { return cap_; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

  // Makes the next push() allocate nothing (its message is moved in and
  // cannot be lost to a failed growth). May throw std::bad_alloc.
  void make_room() {
    if (items_.size() < cap_ && items_.size() == items_.capacity())
      items_.reserve(std::min(cap_, std::max<size_t>(8, 2 * items_.size())));
  }

  // Appends, evicting the oldest message when full.
  void push(ChatMessage m) {
    if (items_.size() < cap_) {
      items_.push_back(std::move(m));
      return;
    }
    items_[head_] = std::move(m);
    head_ = (head_ + 1) % cap_;
  }

  // Heap bytes held (the ring and the strings that do not fit inline), for
  // the chat's memory accounting.
  size_t heap_bytes() const {
    size_t n = items_.capacity() * sizeof(ChatMessage);
    for (const ChatMessage& m : items_) {
      for (const std::string* s : {&m.user, &m.text}) {
        if (s->capacity() > std::string().capacity()) n += s->capacity() + 1;
      }
    }
    return n;
  }

  // i = 0 is the oldest kept message, size() - 1 the newest.
  const ChatMessage& at(size_t i) const { return items_[(head_ + i) % items_.size()]; }
  const ChatMessage& newest() const { return at(size() - 1); }

 private:
  size_t cap_;
  size_t head_ = 0;  // index of the oldest once the ring is full
  std::vector<ChatMessage> items_;
};

}  // namespace chatws::chat
