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
// Retention: a store opened with a retention N keeps the last N messages of
// each room and deletes older ones, in the transaction that stores newer
// ones (one DELETE per room and commit; a batch does not even insert the
// rows it would delete) and once at open (a file written with a larger N,
// or by a version without retention). So the file holds at most
// rooms x N rows. It is created with auto_vacuum=INCREMENTAL (an older
// file is converted, once, at open) and its free pages are given back to
// the file system at open; between opens SQLite reuses pages freed by the
// trimming, so the file stays at the size of its largest content. The WAL
// is truncated to journal_size_limit (4 MiB) after each checkpoint.
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
  // history of a known version, writable and not corrupt, and trims it to
  // `retention` messages per room (0: keep every message). On failure
  // returns nullptr and sets *error.
  static std::unique_ptr<HistoryStore> open(const std::string& path, std::string* error,
                                            size_t retention = 0);
  ~HistoryStore();
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;

  // The last `limit` messages of `room`, oldest first, into *out, and the
  // room's highest id (0 when it has none) into *max_id.
  bool load(std::string_view room, size_t limit, std::vector<ChatMessage>* out, int64_t* max_id,
            std::string* error);
  // Up to `limit` messages of `room` with an id above `after`, oldest first.
  bool load_after(std::string_view room, int64_t after, size_t limit, std::vector<ChatMessage>* out,
                  std::string* error);

  struct Row {
    std::string_view room;
    const ChatMessage* msg;
  };
  // Inserts all rows in one transaction, all or none, and deletes what
  // falls out of the retention for the rooms written. Ids increase per
  // room within `rows` and across calls.
  bool write(const std::vector<Row>& rows, std::string* error);

  // Whether `room` has stored messages (*out); false on a query error.
  bool has_room(std::string_view room, bool* out, std::string* error);
  // Rooms with stored messages when the file was opened (a room, once
  // stored, always keeps its newest messages).
  size_t rooms_at_open() const { return rooms_; }

  const std::string& path() const { return path_; }

 private:
  HistoryStore() = default;
  bool exec(const char* sql, std::string* error);
  std::string errmsg() const;
  bool trim_all(std::string* error);
  bool trim(std::string_view room, int64_t newest, std::string* error);
  bool prepare(const char* sql, sqlite3_stmt** st);
  // Steps `st` (bound) to the end, its rows (id, user, text, time) into *out.
  bool read_rows(sqlite3_stmt* st, std::vector<ChatMessage>* out, std::string* error);

  std::string path_;
  size_t retention_ = 0;
  size_t rooms_ = 0;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_last_ = nullptr;
  sqlite3_stmt* select_after_ = nullptr;
  sqlite3_stmt* trim_ = nullptr;
  sqlite3_stmt* has_room_ = nullptr;
};

}  // namespace chatws::chat
