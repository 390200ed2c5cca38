// Room names from WebSocket request paths.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/room_path.h"

namespace chatws::chat {
namespace {

TEST(RoomPath, DefaultRoom) {
  auto r = room_from_path("/");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.room, "");
  r = room_from_path("/?token=abc");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.room, "");
}

TEST(RoomPath, NamedRooms) {
  for (const std::string& name : std::vector<std::string>{"a", "lobby", "Team-1", "v1.2_beta", "...", std::string(64, 'x')}) {
    auto r = room_from_path("/rooms/" + name);
    EXPECT_EQ(r.status, 0) << name;
    EXPECT_EQ(r.room, name);
  }
  auto r = room_from_path("/rooms/lobby?x=1&y=/a/b");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.room, "lobby");
}

TEST(RoomPath, BadNamesAre400) {
  for (const std::string& path : std::vector<std::string>{"/rooms/", "/rooms/?x", "/rooms/a/b", "/rooms/a/", "/rooms/a%20b",
                           "/rooms/caf\xC3\xA9", "/rooms/a b", "/rooms/" + std::string(65, 'x'),
                           "/rooms//", "/rooms/a:b"}) {
    auto r = room_from_path(path);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_NE(r.reason.find("room name"), std::string::npos) << r.reason;
    EXPECT_EQ(r.room, "");
  }
}

TEST(RoomPath, OtherPathsAre404) {
  for (const std::string& path : std::vector<std::string>{"/foo", "", "/rooms", "/room/a", "//", "/index.html", "/ROOMS/a", "rooms/a"}) {
    auto r = room_from_path(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_FALSE(r.reason.empty());
  }
}

TEST(RoomPath, ValidNames) {
  EXPECT_TRUE(is_valid_room_name(""));
  EXPECT_TRUE(is_valid_room_name("A-z_0.9"));
  EXPECT_TRUE(is_valid_room_name(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_room_name(std::string(65, 'a')));
  EXPECT_FALSE(is_valid_room_name("a/b"));
  EXPECT_FALSE(is_valid_room_name(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace chatws::chat
