// Reading a history file in a test with a connection of the test's own
// (the store must be closed: it holds the file's lock while open).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace chatws::test {

// The first column of the first row of `sql` as text ("" if none or on error).
inline std::string sqlite_one(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string v;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      if (const unsigned char* t = sqlite3_column_text(st, 0)) v = reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return v;
}

// Rows of the messages table that match `where`; -1 on error.
inline int64_t count_rows(const std::string& path, const std::string& where = "1") {
  const std::string n = sqlite_one(path, "SELECT count(*) FROM messages WHERE " + where);
  return n.empty() ? -1 : std::strtoll(n.c_str(), nullptr, 10);
}

}  // namespace chatws::test
