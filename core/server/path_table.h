// Interned request paths. The connections of a server typically share a
// handful of paths ("/", "/chat/lobby"), so each keeps a 16-bit reference
// here until its ConnInfo is built, instead of a 32-byte std::string of its
// own. Reference-counted: a path no connection refers to any more is freed,
// so clients sending distinct paths cannot grow the table without bound
// (beyond 65535 live distinct paths acquire() says no and the caller keeps
// the path itself). Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chatws {

class PathTable {
 public:
  static constexpr uint16_t kNone = UINT16_MAX;

  // A reference to `path` (a new one or one more to an existing entry), or
  // kNone if the table is full. Out of memory: throws, nothing taken.
  uint16_t acquire(std::string_view path) {
    auto it = index_.find(path);
    if (it != index_.end()) {
      ++entries_[it->second].refs;
      return it->second;
    }
    if (free_head_ == kNone) {
      if (entries_.size() >= kNone) return kNone;
      entries_.emplace_back();  // may throw: nothing changed
      free_head_ = uint16_t(entries_.size() - 1);
    }
    const uint16_t ref = free_head_;
    auto [pos, inserted] = index_.emplace(std::string(path), ref);  // may throw: the entry stays free
    (void)inserted;
    free_head_ = entries_[ref].next_free;
    entries_[ref] = Entry{&pos->first, 1, kNone};  // map keys do not move
    return ref;
  }

  const std::string& get(uint16_t ref) const { return *entries_[ref].path; }

  // Never allocates: a connection's clean-up runs it out of memory too (the
  // freed entries are chained through themselves, not kept in a vector).
  void release(uint16_t ref) noexcept {
    if (ref == kNone) return;
    Entry& e = entries_[ref];
    if (--e.refs > 0) return;
    index_.erase(index_.find(*e.path));
    e.path = nullptr;
    e.next_free = free_head_;
    free_head_ = ref;
  }

  size_t size() const { return index_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Entry {
    const std::string* path = nullptr;  // the key in index_
    uint32_t refs = 0;
    uint16_t next_free = kNone;  // while free: the next free entry
  };

  std::unordered_map<std::string, uint16_t, Hash, std::equal_to<>> index_;
  std::vector<Entry> entries_;  // by reference
  uint16_t free_head_ = kNone;  // the first free entry, for reuse
};

}  // namespace chatws
