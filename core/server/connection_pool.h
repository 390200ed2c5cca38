// Storage for Connection objects: carved from blocks of kPerBlock and
// recycled through a free list. Saves malloc's per-object overhead and keeps
// long-lived connections out of the heap that transient handshake buffers
// churn through (fragmentation there was a large share of the idle cost).
// Blocks are kept until the pool is destroyed. Loop thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "server/connection.h"

#if defined(__SANITIZE_ADDRESS__)
#define CHATWS_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHATWS_POOL_ASAN 1
#endif
#endif
#ifdef CHATWS_POOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace chatws {

class ConnectionPool {
 public:
  ConnectionPool() = default;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;
  ~ConnectionPool() = default;  // every connection is destroyed before the pool

  template <class... Args>
  Connection* create(Args&&... args) {
    if (!free_) grow();
    Slot* s = free_;
    unpoison(s);
    Slot* next = s->next;  // the connection is built over it
    try {
      Connection* c = new (s->storage) Connection(std::forward<Args>(args)...);
      free_ = next;
      return c;
    } catch (...) {
      s->next = next;  // still the first free slot
      poison(s);
      throw;
    }
  }

  void destroy(Connection* c) {
    c->~Connection();
    Slot* s = reinterpret_cast<Slot*>(c);
    s->next = free_;
    free_ = s;
    poison(s);  // a use after destroy is reported under ASan
  }

 private:
  static constexpr size_t kPerBlock = 256;

  union Slot {
    Slot* next;
    alignas(Connection) unsigned char storage[sizeof(Connection)];
  };

  void grow() {
    // Kept first, linked after: if the push_back throws, the block goes
    // and the free list never pointed into it.
    blocks_.push_back(std::make_unique<Slot[]>(kPerBlock));
    Slot* block = blocks_.back().get();
    for (size_t i = kPerBlock; i-- > 0;) {
      block[i].next = free_;
      free_ = &block[i];
      poison(&block[i]);
    }
  }

  // The free-list link stays addressable; the rest of a free slot does not.
  static void poison(Slot* s) {
#ifdef CHATWS_POOL_ASAN
    ASAN_POISON_MEMORY_REGION(reinterpret_cast<char*>(s) + sizeof(Slot*),
                              sizeof(Slot) - sizeof(Slot*));
#else
    (void)s;
#endif
  }
  static void unpoison(Slot* s) {
#ifdef CHATWS_POOL_ASAN
    ASAN_UNPOISON_MEMORY_REGION(s, sizeof(Slot));
#else
    (void)s;
#endif
  }

  std::vector<std::unique_ptr<Slot[]>> blocks_;
  Slot* free_ = nullptr;
};

}  // namespace chatws
