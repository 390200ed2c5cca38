// Every live connection by id: an open-addressing hash table of Connection
// pointers (the key is read from the connection itself). 8 bytes a slot at
// a load of at most 3/4, against ~40 for an unordered_map node and bucket;
// ids stay what they were (sequential, never reused). Linear probing with
// backward-shift deletion: no tombstones. Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "server/connection.h"

namespace chatws {

class ConnTable {
 public:
  ConnTable() = default;
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  Connection* find(ConnId id) const {
    if (size_ == 0) return nullptr;
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      Connection* c = slots_[i];
      if (!c) return nullptr;
      if (c->id == id) return c;
    }
  }

  void insert(Connection* c) {  // c->id must not be present
    if ((size_ + 1) * 4 > cap() * 3) rehash(cap() ? cap() * 2 : 64);
    place(c);
    ++size_;
  }

  void erase(ConnId id) {
    if (size_ == 0) return;
    size_t i = home(id);
    for (;; i = (i + 1) & mask_) {
      if (!slots_[i]) return;
      if (slots_[i]->id == id) break;
    }
    // Backward shift: pull later members of the probe run into the hole
    // when their home position allows it.
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      Connection* c = slots_[j];
      if (!c) break;
      size_t h = home(c->id);
      // c may move to i if i lies cyclically within [h, j).
      if (((j - h) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = c;
        i = j;
      }
    }
    slots_[i] = nullptr;
    --size_;
    // Give memory back after a mass disconnect (hysteresis: grow at 3/4).
    if (cap() > 1024 && size_ * 8 < cap()) {
      try {
        rehash(cap() / 2);
      } catch (const std::bad_alloc&) {
        // Shrinking is optional: keep the larger array.
      }
    }
  }

  // Iteration over live connections (no insert or erase meanwhile).
  class iterator {
   public:
    iterator(Connection* const* p, Connection* const* end) : p_(p), end_(end) { skip(); }
    Connection* operator*() const { return *p_; }
    iterator& operator++() {
      ++p_;
      skip();
      return *this;
    }
    bool operator!=(const iterator& o) const { return p_ != o.p_; }

   private:
    void skip() {
      while (p_ != end_ && !*p_) ++p_;
    }
    Connection* const* p_;
    Connection* const* end_;
  };
  iterator begin() const { return iterator(slots_.get(), slots_.get() + cap()); }
  iterator end() const { return iterator(slots_.get() + cap(), slots_.get() + cap()); }

 private:
  size_t cap() const { return slots_ ? mask_ + 1 : 0; }
  // Fibonacci hashing spreads sequential ids over the table.
  size_t home(ConnId id) const { return size_t((id * 0x9E3779B97F4A7C15ull) >> shift_); }

  void place(Connection* c) {
    size_t i = home(c->id);
    while (slots_[i]) i = (i + 1) & mask_;
    slots_[i] = c;
  }

  void rehash(size_t cap) {  // cap: a power of two >= 64
    // The new array first: if it cannot be had, the table is unchanged.
    std::unique_ptr<Connection*[]> grown(new Connection*[cap]());
    std::unique_ptr<Connection*[]> old = std::move(slots_);
    size_t old_cap = old ? mask_ + 1 : 0;
    slots_ = std::move(grown);
    mask_ = cap - 1;
    shift_ = 64 - unsigned(__builtin_ctzll(cap));
    for (size_t i = 0; i < old_cap; ++i)
      if (old[i]) place(old[i]);
  }

  std::unique_ptr<Connection*[]> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace chatws
