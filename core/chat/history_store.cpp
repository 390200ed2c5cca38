#include "chat/history_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <unordered_map>

namespace chatws::chat {

namespace {

constexpr const char* kCreateSchema =
    "CREATE TABLE IF NOT EXISTS messages("
    " room TEXT NOT NULL, id INTEGER NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL,"
    " time INTEGER NOT NULL, PRIMARY KEY(room, id)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

// Runs a statement that returns one row of one column, e.g. a PRAGMA query.
bool query_one(sqlite3* db, const char* sql, std::string* text_out, std::string* error) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  bool ok = rc == SQLITE_ROW;
  if (ok) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    text_out->assign(t ? t : "");
  } else {
    *error = sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  return ok;
}

}  // namespace

std::string HistoryStore::errmsg() const { return sqlite3_errmsg(db_); }

bool HistoryStore::exec(const char* sql, std::string* error) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
  *error = msg ? msg : errmsg();
  sqlite3_free(msg);
  return false;
}

bool HistoryStore::prepare(const char* sql, sqlite3_stmt** st) {
  return sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, st, nullptr) == SQLITE_OK;
}

std::unique_ptr<HistoryStore> HistoryStore::open(const std::string& path, std::string* error, size_t retention) {
  std::unique_ptr<HistoryStore> s(new HistoryStore());
  s->path_ = path;
  s->retention_ = retention;
  auto fail = [&](const std::string& what) {
    *error = "history database '" + path + "': " + what;
    return nullptr;
  };
  // NOMUTEX: one thread (the loop) uses the connection.
  int rc = sqlite3_open_v2(path.c_str(), &s->db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    return fail(s->db_ ? s->errmsg() : "cannot open");
  }
  sqlite3_extended_result_codes(s->db_, 1);
  std::string err, val;
  // EXCLUSIVE before WAL: the WAL index then lives in heap memory (no -shm
  // file) and the lock, taken below, keeps a second server out.
  if (!s->exec("PRAGMA locking_mode=EXCLUSIVE", &err)) return fail(err);
  // The first read of the file: a non-database file fails here. Before the
  // journal mode, which writes a new file's header: a new file is created
  // with it, an older one converted below.
  if (!s->exec("PRAGMA auto_vacuum=INCREMENTAL", &err)) return fail(err);
  if (!query_one(s->db_, "PRAGMA journal_mode=WAL", &val, &err)) return fail(err);
  if (val != "wal") return fail("cannot use WAL journal mode (got '" + val + "')");
  if (!s->exec("PRAGMA synchronous=NORMAL", &err)) return fail(err);
  // A big transaction grows the WAL; after its checkpoint it shrinks back.
  if (!s->exec("PRAGMA journal_size_limit=4194304", &err)) return fail(err);
  if (sqlite3_db_readonly(s->db_, "main") == 1) return fail("opened read-only");

  if (!query_one(s->db_, "PRAGMA user_version", &val, &err)) return fail(err);
  const int version = std::stoi(val);
  if (version > kSchemaVersion) {
    return fail("schema version " + val + " is newer than this library supports (" +
                std::to_string(kSchemaVersion) + ")");
  }
  // BEGIN IMMEDIATE takes the write lock now, so that an unwritable or
  // already-owned database fails here rather than at the first message.
  if (!s->exec("BEGIN IMMEDIATE", &err)) return fail(err);
  if (version == 0 && !s->exec(kCreateSchema, &err)) {
    s->exec("ROLLBACK", &val);
    return fail(err);
  }
  if (!s->exec("COMMIT", &err)) return fail(err);
  // Catch a damaged file at start rather than in the middle of a chat.
  if (!query_one(s->db_, "PRAGMA quick_check", &val, &err)) return fail(err);
  if (val != "ok") return fail("corrupt: " + val);

  if (!s->prepare("INSERT INTO messages(room, id, user, text, time) VALUES(?1,?2,?3,?4,?5)", &s->insert_) ||
      !s->prepare("SELECT id, user, text, time FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT ?2",
                  &s->select_last_) ||
      !s->prepare("SELECT id, user, text, time FROM messages WHERE room = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                  &s->select_after_) ||
      !s->prepare("DELETE FROM messages WHERE room = ?1 AND id <= ?2", &s->trim_) ||
      !s->prepare("SELECT 1 FROM messages WHERE room = ?1 LIMIT 1", &s->has_room_)) {
    return fail("not a chatws history (" + s->errmsg() + ")");
  }
  if (!s->trim_all(&err)) return fail(err);
  // A file of a version without auto_vacuum is rebuilt with it (once; the
  // trimming above has made it as small as it gets); any other gives the
  // pages the trimming freed back to the file system.
  if (!query_one(s->db_, "PRAGMA auto_vacuum", &val, &err)) return fail(err);
  if (!s->exec(val == "0" ? "VACUUM" : "PRAGMA incremental_vacuum", &err)) return fail(err);
  return s;
}

bool HistoryStore::trim_all(std::string* error) {
  // One pass over the primary key: every room, its newest id and its size.
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT room, max(id), count(*) FROM messages GROUP BY room", -1, &st, nullptr) !=
      SQLITE_OK) {
    *error = errmsg();
    return false;
  }
  struct Over {
    std::string room;
    int64_t newest;
  };
  std::vector<Over> over;
  int rc;
  rooms_ = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ++rooms_;
    if (retention_ != 0 && static_cast<uint64_t>(sqlite3_column_int64(st, 2)) > retention_) {
      over.push_back({std::string(reinterpret_cast<const char*>(sqlite3_column_blob(st, 0)),
                                  static_cast<size_t>(sqlite3_column_bytes(st, 0))),
                      sqlite3_column_int64(st, 1)});
    }
  }
  if (rc != SQLITE_DONE) *error = errmsg();
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return false;
  if (over.empty()) return true;
  if (!exec("BEGIN", error)) return false;
  for (const Over& o : over) {
    if (!trim(o.room, o.newest, error)) {
      std::string ignored;
      exec("ROLLBACK", &ignored);
      return false;
    }
  }
  return exec("COMMIT", error);
}

bool HistoryStore::trim(std::string_view room, int64_t newest, std::string* error) {
  sqlite3_bind_text(trim_, 1, room.data(), static_cast<int>(room.size()), SQLITE_STATIC);
  sqlite3_bind_int64(trim_, 2, newest - static_cast<int64_t>(retention_));
  const int rc = sqlite3_step(trim_);
  if (rc != SQLITE_DONE) *error = errmsg();
  sqlite3_reset(trim_);
  sqlite3_clear_bindings(trim_);
  return rc == SQLITE_DONE;
}

bool HistoryStore::has_room(std::string_view room, bool* out, std::string* error) {
  sqlite3_bind_text(has_room_, 1, room.data(), static_cast<int>(room.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(has_room_);
  *out = rc == SQLITE_ROW;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) *error = errmsg();
  sqlite3_reset(has_room_);
  sqlite3_clear_bindings(has_room_);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

HistoryStore::~HistoryStore() {
  sqlite3_finalize(insert_);
  sqlite3_finalize(select_last_);
  sqlite3_finalize(select_after_);
  sqlite3_finalize(trim_);
  sqlite3_finalize(has_room_);
  sqlite3_close(db_);  // checkpoints the WAL into the main file
}

bool HistoryStore::read_rows(sqlite3_stmt* st, std::vector<ChatMessage>* out, std::string* error) {
  out->clear();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ChatMessage m;
    m.id = sqlite3_column_int64(st, 0);
    m.user.assign(reinterpret_cast<const char*>(sqlite3_column_blob(st, 1)),
                  static_cast<size_t>(sqlite3_column_bytes(st, 1)));
    m.text.assign(reinterpret_cast<const char*>(sqlite3_column_blob(st, 2)),
                  static_cast<size_t>(sqlite3_column_bytes(st, 2)));
    m.time_ms = sqlite3_column_int64(st, 3);
    out->push_back(std::move(m));
  }
  const bool ok = rc == SQLITE_DONE;
  if (!ok) *error = errmsg();
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (!ok) out->clear();
  return ok;
}

bool HistoryStore::load(std::string_view room, size_t limit, std::vector<ChatMessage>* out,
                        int64_t* max_id, std::string* error) {
  *max_id = 0;
  sqlite3_stmt* st = select_last_;
  sqlite3_bind_text(st, 1, room.data(), static_cast<int>(room.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(limit));
  if (!read_rows(st, out, error)) return false;
  if (!out->empty()) *max_id = out->front().id;
  // Newest first from the query; history is kept oldest first.
  std::reverse(out->begin(), out->end());
  return true;
}

bool HistoryStore::load_after(std::string_view room, int64_t after, size_t limit,
                              std::vector<ChatMessage>* out, std::string* error) {
  sqlite3_stmt* st = select_after_;
  sqlite3_bind_text(st, 1, room.data(), static_cast<int>(room.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, after);
  sqlite3_bind_int64(st, 3, static_cast<sqlite3_int64>(limit));
  return read_rows(st, out, error);
}

bool HistoryStore::write(const std::vector<Row>& rows, std::string* error) {
  if (rows.empty()) return true;
  // The newest id of each room in the batch: rows it puts out of the
  // retention are neither inserted nor kept.
  std::unordered_map<std::string_view, int64_t> newest;
  if (retention_ != 0) {
    for (const Row& r : rows) {
      int64_t& n = newest[r.room];
      n = std::max(n, r.msg->id);
    }
  }
  auto rollback = [&] {
    std::string ignored;
    if (!sqlite3_get_autocommit(db_)) exec("ROLLBACK", &ignored);
    return false;
  };
  if (!exec("BEGIN", error)) return false;
  for (const Row& r : rows) {
    if (retention_ != 0 && r.msg->id <= newest[r.room] - static_cast<int64_t>(retention_)) continue;
    sqlite3_stmt* st = insert_;
    sqlite3_bind_text(st, 1, r.room.data(), static_cast<int>(r.room.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r.msg->id);
    sqlite3_bind_text(st, 3, r.msg->user.data(), static_cast<int>(r.msg->user.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r.msg->text.data(), static_cast<int>(r.msg->text.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r.msg->time_ms);
    const int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) *error = errmsg();
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return rollback();
  }
  // One DELETE per room and commit, in the same transaction: stored and
  // trimmed together or not at all.
  for (const auto& [room, id] : newest) {
    if (!trim(room, id, error)) return rollback();
  }
  if (!exec("COMMIT", error)) {
    // A failed COMMIT may leave the transaction open; end it so the next
    // batch starts clean.
    return rollback();
  }
  return true;
}

}  // namespace chatws::chat
