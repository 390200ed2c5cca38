// SqliteLog: the single node's history through the RoomLog seam, on a real
// SQLite file. It answers within each call and keeps the chat's ids.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/sqlite_log.h"
#include "temp_dir.h"

namespace chatws::chat {
namespace {

using test::TempDir;

std::vector<ChatMessage> msgs(int64_t from, int64_t to) {
  std::vector<ChatMessage> v;
  for (int64_t i = from; i <= to; ++i) v.push_back({i, "u", "m" + std::to_string(i), 1700000000000 + i});
  return v;
}

TEST(SqliteLog, AppendsOfAnIterationAreOneTransactionAnsweredAtFlush) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string err;
  auto log = SqliteLog::open(dir.file("h.db"), 50, &err);
  ASSERT_TRUE(log) << err;
  EXPECT_FALSE(log->shared());
  std::vector<std::vector<int64_t>> answered;
  auto done = [&](RoomLog::Outcome o, std::vector<int64_t> ids, std::string_view) {
    EXPECT_EQ(o, RoomLog::Outcome::Stored);
    answered.push_back(ids);
  };
  log->append("a", msgs(1, 3), {}, done);
  log->append("b", msgs(1, 1), {}, done);
  EXPECT_TRUE(answered.empty());  // queued until flush
  log->flush();
  ASSERT_EQ(answered.size(), 2u);
  EXPECT_EQ(answered[0], (std::vector<int64_t>{1, 2, 3}));  // the ids given, kept
  EXPECT_EQ(answered[1], (std::vector<int64_t>{1}));

  bool read = false;
  log->read_after("a", 1, 10, [&](bool ok, std::vector<ChatMessage> got, std::vector<std::string>, std::string_view) {
    read = ok;
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].id, 2);
    EXPECT_EQ(got[1].text, "m3");
  });
  EXPECT_TRUE(read);  // answered within the call
  read = false;
  log->read_last("a", 2, [&](bool ok, std::vector<ChatMessage> got, std::vector<std::string>, std::string_view) {
    read = ok;
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].id, 2);  // oldest first
    EXPECT_EQ(got[1].id, 3);
  });
  EXPECT_TRUE(read);
  bool has = false;
  ASSERT_TRUE(log->has_room("b", &has, &err));
  EXPECT_TRUE(has);
  ASSERT_TRUE(log->has_room("c", &has, &err));
  EXPECT_FALSE(has);
}

TEST(SqliteLog, AFailedWriteRefusesEveryRoomOfTheBatch) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string err;
  auto log = SqliteLog::open(dir.file("h.db"), 50, &err);
  ASSERT_TRUE(log) << err;
  log->append("a", msgs(1, 1), {}, [](RoomLog::Outcome, std::vector<int64_t>, std::string_view) {});
  log->flush();
  // Id 1 of room a again: the primary key refuses the transaction, room b's row with it.
  std::vector<RoomLog::Outcome> outcomes;
  auto done = [&](RoomLog::Outcome o, std::vector<int64_t> ids, std::string_view why) {
    outcomes.push_back(o);
    EXPECT_TRUE(ids.empty());
    EXPECT_FALSE(why.empty());
  };
  log->append("b", msgs(1, 1), {}, done);
  log->append("a", msgs(1, 1), {}, done);
  log->flush();
  EXPECT_EQ(outcomes, (std::vector<RoomLog::Outcome>{RoomLog::Outcome::Refused, RoomLog::Outcome::Refused}));
  EXPECT_EQ(log->failures(), 1u);
  bool has = true;
  ASSERT_TRUE(log->has_room("b", &has, &err));
  EXPECT_FALSE(has);
}

}  // namespace
}  // namespace chatws::chat
