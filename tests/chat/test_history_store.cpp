// The SQLite history store against real files in a temporary directory.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <string>
#include <vector>

#include "chat/history_store.h"
#include "sqlite_peek.h"
#include "temp_dir.h"

namespace chatws::chat {
namespace {

using test::count_rows;
using test::TempDir;

ChatMessage msg(int64_t id, const std::string& text) { return ChatMessage{id, "user" + std::to_string(id), text, 1700000000000 + id}; }

bool write_msgs(HistoryStore& s, std::string_view room, const std::vector<ChatMessage>& msgs,
                std::string* err) {
  std::vector<HistoryStore::Row> rows;
  for (const ChatMessage& m : msgs) rows.push_back({room, &m});
  return s.write(rows, err);
}

TEST(HistoryStore, WriteReopenLoadLastNInOrder) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.file("history.db");
  std::string err;
  {
    auto s = HistoryStore::open(path, &err);
    ASSERT_TRUE(s) << err;
    std::vector<ChatMessage> a, b;
    for (int i = 1; i <= 60; ++i) a.push_back(msg(i, "a" + std::to_string(i)));
    for (int i = 1; i <= 3; ++i) b.push_back(msg(i, std::string("b\0\n\"", 4) + std::to_string(i)));
    // Two transactions for room a, one for b.
    ASSERT_TRUE(write_msgs(*s, "a", std::vector<ChatMessage>(a.begin(), a.begin() + 10), &err)) << err;
    ASSERT_TRUE(write_msgs(*s, "a", std::vector<ChatMessage>(a.begin() + 10, a.end()), &err)) << err;
    ASSERT_TRUE(write_msgs(*s, "", b, &err)) << err;
  }
  auto s = HistoryStore::open(path, &err);
  ASSERT_TRUE(s) << err;
  std::vector<ChatMessage> out;
  int64_t max_id = -1;
  ASSERT_TRUE(s->load("a", 50, &out, &max_id, &err)) << err;
  EXPECT_EQ(max_id, 60);
  ASSERT_EQ(out.size(), 50u);
  for (size_t i = 0; i < out.size(); ++i) {  // oldest first: ids 11..60
    EXPECT_EQ(out[i].id, static_cast<int64_t>(11 + i));
    EXPECT_EQ(out[i].text, "a" + std::to_string(11 + i));
    EXPECT_EQ(out[i].user, "user" + std::to_string(11 + i));
    EXPECT_EQ(out[i].time_ms, 1700000000000 + out[i].id);
  }
  ASSERT_TRUE(s->load("", 50, &out, &max_id, &err));
  EXPECT_EQ(max_id, 3);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].text, std::string("b\0\n\"1", 5));  // NUL and quotes survive
  ASSERT_TRUE(s->load("nobody", 50, &out, &max_id, &err));
  EXPECT_EQ(max_id, 0);
  EXPECT_TRUE(out.empty());
  // Ids continue: the next id of room a is 61 and it can be stored.
  ASSERT_TRUE(write_msgs(*s, "a", {msg(61, "next")}, &err)) << err;
  ASSERT_TRUE(s->load("a", 1, &out, &max_id, &err));
  EXPECT_EQ(max_id, 61);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "next");
}

TEST(HistoryStore, BatchIsAllOrNothing) {
  TempDir dir;
  std::string err;
  auto s = HistoryStore::open(dir.file("h.db"), &err);
  ASSERT_TRUE(s) << err;
  ASSERT_TRUE(write_msgs(*s, "r", {msg(1, "one")}, &err));
  // Id 1 again violates the primary key: 2 must not be stored either.
  EXPECT_FALSE(write_msgs(*s, "r", {msg(2, "two"), msg(1, "dup")}, &err));
  EXPECT_NE(err.find("UNIQUE"), std::string::npos) << err;
  std::vector<ChatMessage> out;
  int64_t max_id;
  ASSERT_TRUE(s->load("r", 50, &out, &max_id, &err));
  EXPECT_EQ(max_id, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "one");
  // And the store is usable afterwards.
  EXPECT_TRUE(write_msgs(*s, "r", {msg(2, "two")}, &err)) << err;
}

TEST(HistoryStore, SchemaAndModeOnDisk) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  { ASSERT_TRUE(HistoryStore::open(path, &err)) << err; }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto one = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    std::string v;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
  };
  EXPECT_EQ(one("PRAGMA user_version"), "1");
  EXPECT_EQ(one("PRAGMA journal_mode"), "wal");  // persistent in the file
  EXPECT_EQ(one("SELECT group_concat(name) FROM pragma_table_info('messages')"), "room,id,user,text,time");
  EXPECT_EQ(one("PRAGMA auto_vacuum"), "2");  // incremental: freed pages can be given back
  sqlite3_close(db);
}

TEST(HistoryStore, RetentionKeepsTheLastNOfEachRoom) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  {
    auto s = HistoryStore::open(path, &err, 5);
    ASSERT_TRUE(s) << err;
    ASSERT_TRUE(write_msgs(*s, "b", {msg(1, "b1"), msg(2, "b2"), msg(3, "b3")}, &err)) << err;
    int64_t id = 1;
    for (int batch = 0; batch < 10; ++batch) {  // 10 commits of 10
      std::vector<ChatMessage> ten;
      for (int i = 0; i < 10; ++i, ++id) ten.push_back(msg(id, "a" + std::to_string(id)));
      ASSERT_TRUE(write_msgs(*s, "a", ten, &err)) << err;
    }
    std::vector<ChatMessage> one_commit;  // more than the retention in one commit
    for (int i = 0; i < 30; ++i, ++id) one_commit.push_back(msg(id, "a" + std::to_string(id)));
    ASSERT_TRUE(write_msgs(*s, "a", one_commit, &err)) << err;
    std::vector<ChatMessage> out;
    int64_t max_id = 0;
    ASSERT_TRUE(s->load("a", 1000, &out, &max_id, &err)) << err;
    EXPECT_EQ(max_id, 130);
    ASSERT_EQ(out.size(), 5u);
    EXPECT_EQ(out.front().id, 126);
    EXPECT_EQ(out.back().text, "a130");
    bool has = false;
    ASSERT_TRUE(s->has_room("b", &has, &err));
    EXPECT_TRUE(has);
    ASSERT_TRUE(s->has_room("nobody", &has, &err));
    EXPECT_FALSE(has);
  }
  EXPECT_EQ(count_rows(path), 8);  // 5 of a, 3 of b
  EXPECT_EQ(count_rows(path, "room = 'a' AND id < 126"), 0);
  // A later open with a smaller retention trims at once.
  {
    auto s = HistoryStore::open(path, &err, 2);
    ASSERT_TRUE(s) << err;
    EXPECT_EQ(s->rooms_at_open(), 2u);
  }
  EXPECT_EQ(count_rows(path), 4);
  EXPECT_EQ(count_rows(path, "room = 'a' AND id >= 129"), 2);
}

// A file written without retention (or by a version without it): the first
// open trims it, converts it to incremental auto-vacuum and gives the
// space back.
TEST(HistoryStore, OpenTrimsAnUnboundedFileAndShrinksIt) {
  TempDir dir;
  const std::string path = dir.file("old.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE messages(room TEXT NOT NULL, id INTEGER NOT NULL, user TEXT NOT NULL,"
                           " text TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY(room, id)) WITHOUT ROWID;"
                           "PRAGMA user_version = 1;"
                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
                           " INSERT INTO messages SELECT 'flood', i, 'u', printf('%.1000c', 'x'), i FROM n;"
                           "INSERT INTO messages VALUES('quiet', 1, 'u', 'hello', 1);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  const auto before = std::filesystem::file_size(path);
  ASSERT_GT(before, 5u << 20);
  std::string err;
  {
    auto s = HistoryStore::open(path, &err, 50);
    ASSERT_TRUE(s) << err;
    EXPECT_EQ(s->rooms_at_open(), 2u);
    std::vector<ChatMessage> out;
    int64_t max_id = 0;
    ASSERT_TRUE(s->load("flood", 1000, &out, &max_id, &err)) << err;
    EXPECT_EQ(max_id, 5000);  // ids go on from the newest
    EXPECT_EQ(out.size(), 50u);
  }
  EXPECT_EQ(count_rows(path), 51);
  EXPECT_LT(std::filesystem::file_size(path), before / 20);
  EXPECT_EQ(test::sqlite_one(path, "PRAGMA auto_vacuum"), "2");
}

// One room flooded for many commits: the rows stay at the retention and
// the file (and its WAL) at a small steady size.
TEST(HistoryStore, FloodedRoomKeepsTheFileSmall) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  auto s = HistoryStore::open(path, &err, 50);
  ASSERT_TRUE(s) << err;
  int64_t id = 1;
  uintmax_t largest = 0;
  for (int batch = 0; batch < 400; ++batch) {  // 40,000 messages of 1 KB: 40 MB sent
    std::vector<ChatMessage> hundred;
    for (int i = 0; i < 100; ++i, ++id) hundred.push_back(msg(id, std::string(1000, 'f')));
    ASSERT_TRUE(write_msgs(*s, "flood", hundred, &err)) << err;
    largest = std::max(largest, std::filesystem::file_size(path) + std::filesystem::file_size(path + "-wal"));
  }
  EXPECT_LT(largest, uintmax_t(6) << 20);  // the WAL's checkpoint size plus a few pages
  s.reset();
  EXPECT_EQ(count_rows(path), 50);
  // The file is at the size of the largest content (about two batches) ...
  EXPECT_LT(std::filesystem::file_size(path), uintmax_t(1) << 20);
  // ... and the next open gives the free pages back.
  s = HistoryStore::open(path, &err, 50);
  ASSERT_TRUE(s) << err;
  s.reset();
  EXPECT_LT(std::filesystem::file_size(path), uintmax_t(384) << 10);  // 50 rows of 1 KB: ~60 pages
}

TEST(HistoryStore, CorruptFileIsRefused) {
  TempDir dir;
  const std::string path = dir.file("garbage.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 1000; ++i) f << "this is not an SQLite database ";
  }
  std::string err;
  EXPECT_FALSE(HistoryStore::open(path, &err));
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("not a database"), std::string::npos) << err;
}

TEST(HistoryStore, DamagedPagesAreRefused) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  {
    auto s = HistoryStore::open(path, &err);
    ASSERT_TRUE(s) << err;
    std::vector<ChatMessage> many;
    for (int i = 1; i <= 500; ++i) many.push_back(msg(i, std::string(200, 'x')));
    ASSERT_TRUE(write_msgs(*s, "r", many, &err)) << err;
  }  // closing checkpoints everything into the main file
  ASSERT_GT(std::filesystem::file_size(path), 8u * 4096);
  {
    // Keep the header page, overwrite page 3 onwards with garbage.
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(2 * 4096);
    for (int i = 0; i < 4 * 4096; ++i) f.put(static_cast<char>(0xA5));
  }
  EXPECT_FALSE(HistoryStore::open(path, &err));
  EXPECT_NE(err.find(path), std::string::npos) << err;
}

TEST(HistoryStore, UnopenablePathsAreRefused) {
  TempDir dir;
  std::string err;
  // A directory where the file should be.
  EXPECT_FALSE(HistoryStore::open(dir.path(), &err));
  EXPECT_NE(err.find("unable to open"), std::string::npos) << err;
  // A missing parent directory.
  EXPECT_FALSE(HistoryStore::open(dir.file("missing/h.db"), &err));
  EXPECT_NE(err.find("unable to open"), std::string::npos) << err;
}

TEST(HistoryStore, NewerSchemaIsRefused) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=7", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  std::string err;
  EXPECT_FALSE(HistoryStore::open(path, &err));
  EXPECT_NE(err.find("schema version 7"), std::string::npos) << err;
}

TEST(HistoryStore, SecondOwnerIsRefused) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  auto first = HistoryStore::open(path, &err);
  ASSERT_TRUE(first) << err;
  EXPECT_FALSE(HistoryStore::open(path, &err));
  EXPECT_NE(err.find("locked"), std::string::npos) << err;
  first.reset();
  EXPECT_TRUE(HistoryStore::open(path, &err)) << err;
}

// A write that fails at commit time (the file size limit makes write(2)
// fail with EFBIG, as a full disk would with ENOSPC), then recovery.
TEST(HistoryStore, CommitFailureThenRecovery) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  std::string err;
  auto s = HistoryStore::open(path, &err);
  ASSERT_TRUE(s) << err;
  ASSERT_TRUE(write_msgs(*s, "r", {msg(1, "one")}, &err)) << err;
  const auto wal_size = std::filesystem::file_size(path + "-wal");
  ASSERT_GT(wal_size, 0u);

  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = wal_size;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const bool wrote = write_msgs(*s, "r", {msg(2, std::string(3000, 'y')), msg(3, "three")}, &err);
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(wrote);
  EXPECT_FALSE(err.empty());

  std::vector<ChatMessage> out;
  int64_t max_id;
  ASSERT_TRUE(s->load("r", 50, &out, &max_id, &err)) << err;
  EXPECT_EQ(max_id, 1);
  // Recovered: the same ids can now be written.
  ASSERT_TRUE(write_msgs(*s, "r", {msg(2, "two")}, &err)) << err;
  s.reset();
  s = HistoryStore::open(path, &err);
  ASSERT_TRUE(s) << err;
  ASSERT_TRUE(s->load("r", 50, &out, &max_id, &err));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].text, "two");
}

}  // namespace
}  // namespace chatws::chat
