// Durable chat history in one SQLite file (WAL mode).
//
// Schema (PRAGMA user_version = 1):
//   messages(room TEXT, id INTEGER, user TEXT, text TEXT, time INTEGER,
//            PRIMARY KEY(room, id)) WITHOUT ROWID
//
// Durability: journal_mode=WAL with synchronous=NORMAL. A committed
// transaction is in the WAL file (written with write(2) before COMMIT
// returns), so it survives a crash or kill -9 of the process; only a power
// loss or OS crash may lose the last transactions (synchronous=FULL would be
// needed for that, at one fsync per commit).
//
// The file is opened with locking_mode=EXCLUSIVE: one server owns it, a
// second server on the same file fails at open ("database is locked")
// instead of interleaving ids, and other processes cannot read it while the
// server runs.
//
// Not thread-safe: used from the loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/message.h"

struct sqlite3;
struct sqlite3_stmt;

namespace chatws::chat {

class HistoryStore {
 public:
  static constexpr int kSchemaVersion = 1;

  // Opens or creates the database at `path`, checks that it is a chatws
  // history of a known version, writable and not corrupt. On failure
  // returns nullptr and sets *error.
  static std::unique_ptr<HistoryStore> open(const std::string& path, std::string* error);
  ~HistoryStore();
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;

  // The last `limit` messages of `room`, oldest first, into *out, and the
  // room's highest id (0 when it has none) into *max_id.
  bool load(std::string_view room, size_t limit, std::vector<ChatMessage>* out, int64_t* max_id,
            std::string* error);

  struct Row {
    std::string_view room;
    const ChatMessage* msg;
  };
  // Inserts all rows in one transaction: all are stored or none.
  bool write(const std::vector<Row>& rows, std::string* error);

  const std::string& path() const { return path_; }

 private:
  HistoryStore() = default;
  bool exec(const char* sql, std::string* error);
  std::string errmsg() const;

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_last_ = nullptr;
};

}  // namespace chatws::chat
