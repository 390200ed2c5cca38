// Rooms are bounded: max_rooms refuses new rooms (503 at the upgrade, kEFull
// from post), idle rooms are dropped least recently used first by count and
// by bytes, and a store keeps only history_size messages per room.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "chat/chat_harness.h"
#include "chat/sqlite_peek.h"
#include "chat/temp_dir.h"
#include "chat/wire_decode.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

using Texts = std::vector<std::string>;

Texts texts(const std::string& payload) { return snapshot_texts(payload); }

chat::ChatConfig rooms_config(uint32_t max_rooms, const std::string& path = "") {
  chat::ChatConfig c;
  c.max_rooms = max_rooms;
  c.history_path = path;
  return c;
}

int post(ChatHarness& h, const std::string& room, const std::string& text) {
  return h.on_loop([&](chat::ChatService& c) { return c.post(room, "host", text); });
}

bool holds(ChatHarness& h, const std::string& room) {
  return h.on_loop([&](chat::ChatService& c) { return c.holds_room(room); });
}

// The texts a classic joiner of `room` gets, then it leaves.
Texts visit(ChatHarness& h, const std::string& room) {
  WsClient c;
  if (!c.connect(h.port(), "/rooms/" + room, "json")) return {"<status " + std::to_string(c.status()) + ">"};
  return texts(c.read_text());
}

TEST(ChatRooms, NewRoomsAreRefusedWhenEveryRoomIsInUse) {
  ChatHarness h;
  ASSERT_TRUE(h.start(rooms_config(3))) << h.error();
  WsClient a, b, c;
  for (auto [cl, room] : {std::pair{&a, "a"}, {&b, "b"}, {&c, "c"}}) {
    ASSERT_TRUE(cl->connect(h.port(), std::string("/rooms/") + room, "json")) << room;
    ASSERT_EQ(cl->read_text(), R"({"msg":[]})");
  }
  for (const char* sp : {"json", "chatws.v1"}) {
    WsClient d;
    EXPECT_FALSE(d.connect(h.port(), "/rooms/d", sp));
    EXPECT_EQ(d.status(), 503) << sp;
    EXPECT_NE(d.body().find("too many rooms"), std::string::npos) << d.body();
  }
  EXPECT_EQ(post(h, "d", "x"), kEFull);
  EXPECT_FALSE(holds(h, "d"));
  // The rooms in use are not disturbed, and may still be joined.
  ASSERT_TRUE(a.send_text(R"({"user":"ann","text":"still fine"})"));
  EXPECT_EQ(texts(a.read_text()), (Texts{"still fine"}));
  EXPECT_EQ(visit(h, "a"), (Texts{"still fine"}));
  EXPECT_EQ(post(h, "b", "posted"), kOk);
  EXPECT_EQ(texts(b.read_text()), (Texts{"posted"}));
  // c leaves (its room had nothing to keep): d fits now.
  c.close();
  ASSERT_TRUE(h.wait_for([](chat::ChatService& s) { return s.room_count() == 2; }));
  EXPECT_EQ(visit(h, "d"), (Texts{}));
}

TEST(ChatRooms, IdleRoomsGiveWayLeastRecentlyUsedFirst) {
  ChatHarness h;
  ASSERT_TRUE(h.start(rooms_config(3))) << h.error();
  for (const char* r : {"a", "b", "c"}) ASSERT_EQ(post(h, r, std::string("in ") + r), kOk);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.rooms_in_memory(); }), 3u);
  EXPECT_EQ(visit(h, "a"), (Texts{"in a"}));  // a is now more recent than b and c
  ASSERT_TRUE(h.wait_for([](chat::ChatService& s) { return s.member_count("a") == 0; }));
  EXPECT_EQ(post(h, "c", "c again"), kOk);    // and c too: b is the least recently used
  EXPECT_EQ(post(h, "d", "in d"), kOk);       // a fourth room: b gives way
  EXPECT_FALSE(holds(h, "b"));
  EXPECT_TRUE(holds(h, "a"));
  EXPECT_TRUE(holds(h, "c"));
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.room_count(); }), 3u);
  // Without a store b's history is gone; a's is not.
  EXPECT_EQ(visit(h, "a"), (Texts{"in a"}));
  EXPECT_EQ(visit(h, "b"), (Texts{}));
}

TEST(ChatRooms, IdleRoomMemoryIsBoundedInBytes) {
  ChatHarness h;
  chat::ChatConfig cfg = rooms_config(0);  // default max_rooms
  cfg.max_idle_room_bytes = 256 * 1024;
  ASSERT_TRUE(h.start(cfg)) << h.error();
  const std::string text(4000, 't');
  EXPECT_EQ(h.on_loop([&](chat::ChatService& c) {
              int ok = 0;
              for (int i = 0; i < 200; ++i) ok += c.post("r" + std::to_string(i), "host", text) == kOk;
              return ok;
            }),
            200);
  const size_t bytes = h.on_loop([](chat::ChatService& c) { return c.idle_room_bytes(); });
  const size_t held = h.on_loop([](chat::ChatService& c) { return c.rooms_in_memory(); });
  EXPECT_LE(bytes, cfg.max_idle_room_bytes);
  EXPECT_GT(bytes, cfg.max_idle_room_bytes / 2);
  EXPECT_LT(held, 70u);  // 4 KB of text each
  EXPECT_GT(held, 20u);
  EXPECT_TRUE(holds(h, "r199"));  // the most recent are kept
  EXPECT_FALSE(holds(h, "r0"));
  EXPECT_EQ(visit(h, "r199"), (Texts{text}));
}

// Clients that each make up a room, post once and leave: rooms in memory
// stay at max_rooms and every client is served.
TEST(ChatRooms, RoomExplosionByClientsStaysAtTheBound) {
  ChatHarness h;
  ASSERT_TRUE(h.start(rooms_config(50))) << h.error();
  for (int i = 0; i < 300; ++i) {
    WsClient c;
    ASSERT_TRUE(c.connect(h.port(), "/rooms/x" + std::to_string(i), "chatws.v1")) << i << " " << c.status();
    ASSERT_NE(c.read_text().find("\"hello\""), std::string::npos);
    ASSERT_TRUE(c.send_text(R"({"user":"u","text":"mine"})"));
    ASSERT_NE(c.read_text().find("\"mine\""), std::string::npos) << i;
  }
  EXPECT_LE(h.on_loop([](chat::ChatService& c) { return c.rooms_in_memory(); }), 50u);
  EXPECT_EQ(visit(h, "x299"), (Texts{"mine"}));
}

// With a store, max_rooms counts the rooms in the file (across restarts);
// a stored room may always be joined, a new one is refused; and the file
// keeps history_size messages per room.
TEST(ChatRooms, StoredRoomsCountAndTheFileKeepsHistorySizeMessages) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  chat::ChatConfig cfg = rooms_config(3, path);
  cfg.history_size = 5;
  {
    ChatHarness h;
    ASSERT_TRUE(h.start(cfg)) << h.error();
    for (const char* r : {"a", "b", "c"}) ASSERT_EQ(post(h, r, std::string("in ") + r), kOk);
    EXPECT_EQ(post(h, "d", "x"), kEFull);
    WsClient d;
    EXPECT_FALSE(d.connect(h.port(), "/rooms/d", "json"));
    EXPECT_EQ(d.status(), 503);
    EXPECT_EQ(h.on_loop([](chat::ChatService& c) {
                int ok = 0;
                for (int i = 1; i <= 100; ++i) ok += c.post("a", "host", "a" + std::to_string(i)) == kOk;
                return ok;
              }),
              100);
    EXPECT_EQ(visit(h, "a"), (Texts{"a100", "a99", "a98", "a97", "a96"}));
  }
  EXPECT_EQ(count_rows(path, "room = 'a'"), 5);
  EXPECT_EQ(count_rows(path), 7);
  ChatHarness h;
  cfg.max_idle_room_bytes = 1;  // nothing cached: every join reloads from the file
  ASSERT_TRUE(h.start(cfg)) << h.error();
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.room_count(); }), 3u);
  EXPECT_EQ(post(h, "d", "x"), kEFull);
  EXPECT_EQ(visit(h, "b"), (Texts{"in b"}));
  ASSERT_TRUE(h.wait_for([](chat::ChatService& c) { return c.rooms_in_memory() == 0; }));
  EXPECT_EQ(visit(h, "b"), (Texts{"in b"}));
  EXPECT_EQ(post(h, "a", "a101"), kOk);  // ids go on after the trimmed ones (1 + 100 stored)
  WsClient v;
  ASSERT_TRUE(v.connect(h.port(), "/rooms/a", "chatws.v1"));
  V1 hello;
  ASSERT_TRUE(decode_v1(v.read_text(), &hello));
  ASSERT_EQ(hello.history.size(), 5u);
  EXPECT_EQ(hello.history.back().id, 102);
  EXPECT_EQ(hello.history.back().text, "a101");
}

// One client floods one durable room: the file keeps history_size rows and
// stays small.
TEST(ChatRooms, FloodIntoADurableRoomKeepsTheFileBounded) {
  TempDir dir;
  const std::string path = dir.file("h.db");
  chat::ChatConfig cfg = rooms_config(0, path);
  ChatHarness h;
  ASSERT_TRUE(h.start(cfg)) << h.error();
  WsClient f;
  ASSERT_TRUE(f.connect(h.port(), "/rooms/flood", "chatws.v1"));
  ASSERT_NE(f.read_text().find("\"hello\""), std::string::npos);
  const std::string msg = "{\"user\":\"f\",\"text\":\"" + std::string(1000, 'x') + "\"}";
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += WsClient::masked_frame(protocol::Opcode::Text, msg);
  for (int round = 0; round < 50; ++round) {  // 5,000 messages, read back as they come
    ASSERT_TRUE(f.write_all(burst));
    for (int i = 0; i < 100; ++i) ASSERT_NE(f.read_text().find("\"type\":\"msg\""), std::string::npos);
  }
  EXPECT_LT(std::filesystem::file_size(path), uintmax_t(1) << 20);
  h.stop();
  EXPECT_EQ(count_rows(path), 50);
}

// A room admitted at the upgrade whose slot is taken before on_open (here
// by the host's upgrade hook storing a post elsewhere) is closed with 1013.
TEST(ChatRooms, RoomTakenBetweenUpgradeAndOpenIsClosedTryAgain) {
  TempDir dir;
  ChatHarness h;
  h.set_upgrade_hook([](chat::ChatService& c, std::string_view path) {
    if (path == "/rooms/late") {
      EXPECT_EQ(c.post("other", "host", "first"), kOk);
    }
  });
  ASSERT_TRUE(h.start(rooms_config(1, dir.file("h.db")))) << h.error();
  WsClient c;
  ASSERT_TRUE(c.connect(h.port(), "/rooms/late", "chatws.v1"));
  auto m = c.read_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->op, protocol::Opcode::Close);
  EXPECT_EQ(m->close_code(), 1013);
  EXPECT_EQ(m->close_reason(), "too many rooms");
}

}  // namespace
}  // namespace chatws::test
