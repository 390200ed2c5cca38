// RoomLog on the SQLite history store (history_store.h): the single-node
// default with history_path. The file is this node's alone, so the log is
// not shared(): it stores the ids the chat gave (the only writer), answers
// every call within it (reads at once, the appends of an iteration at
// flush(), in one transaction), and has no presence, notifications or
// state changes to report. The file's schema and durability are
// HistoryStore's, unchanged.
//
// Loop thread only (or while no loop runs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/history_store.h"
#include "chat/room_log.h"

namespace chatws::chat {

class SqliteLog final : public RoomLog {
 public:
  // Opens the store (HistoryStore::open, retention messages per room);
  // nullptr with *error as it says.
  static std::unique_ptr<SqliteLog> open(const std::string& path, size_t retention, std::string* error);

  bool shared() const override { return false; }
  void append(const std::string& room, std::vector<ChatMessage> msgs, std::vector<std::string> keys,
              AppendDone done) override;
  void flush() override;
  void read_last(const std::string& room, size_t n, ReadDone done) override;
  void read_after(const std::string& room, int64_t after, size_t max, ReadDone done) override;
  bool has_room(std::string_view room, bool* out, std::string* error) override {
    return store_->has_room(room, out, error);
  }
  size_t rooms_at_open() const override { return store_->rooms_at_open(); }

  // Nothing to hear from a log nobody else writes.
  void on_appended(std::function<void(std::string_view, int64_t)>) override {}
  void set_presence(const std::string&, uint32_t) override {}
  void set_read_position(const std::string&, int64_t) override {}
  void on_presence(std::function<void(std::string_view, uint32_t)>) override {}
  void on_heartbeat(std::function<void()>) override {}
  void on_state(std::function<void(bool)>) override {}
  // Up: a failed write is answered Refused; the next one is tried anyway.
  bool up() const override { return true; }
  void stop() override {}
  uint64_t round_trips() const override { return 0; }
  uint64_t failures() const override { return failures_; }

 private:
  explicit SqliteLog(std::unique_ptr<HistoryStore> store) : store_(std::move(store)) {}
  struct Queued {
    std::string room;
    std::vector<ChatMessage> msgs;
    AppendDone done;
  };
  std::unique_ptr<HistoryStore> store_;
  std::vector<Queued> queued_;
  uint64_t failures_ = 0;
};

}  // namespace chatws::chat
