// Presence in a big room: joins and leaves are announced as one member-count
// update per room and loop iteration, so what each member receives is
// bounded by iterations, not by how many joined or left.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_harness.h"
#include "chat/wire_decode.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

constexpr int kJoiners = 1500;

// Reads presence frames until one says `members`; returns how many came,
// or -1 if the stream broke or showed anything but presence.
int presence_until(WsClient& c, int64_t members, int64_t* last_seen) {
  int n = 0;
  for (;;) {
    std::string f = c.read_text(10000);
    V1 p;
    if (!decode_v1(f, &p) || (p.type != "join" && p.type != "leave")) {
      ADD_FAILURE() << "expected presence, got " << f;
      return -1;
    }
    ++n;
    *last_seen = p.members;
    if (p.members == members) return n;
  }
}

TEST(ChatPresence, ThousandsOfJoinsAndLeavesCostPresenceFramesPerIterationNotPerJoin) {
  ChatHarness h;
  ASSERT_TRUE(h.start(chat::ChatConfig{})) << h.error();
  WsClient anchor;
  ASSERT_TRUE(anchor.connect(h.port(), "/rooms/big", "chatws.v1"));
  V1 hello;
  ASSERT_TRUE(decode_v1(anchor.read_text(), &hello));
  ASSERT_EQ(hello.members, 1);

  // Every joiner's request reaches the server while its loop is held, so
  // the joins land in few iterations.
  std::vector<std::unique_ptr<WsClient>> joiners;
  const long it0 = h.iterations();
  h.while_loop_held([&] {
    for (int i = 0; i < kJoiners; ++i) {
      auto c = std::make_unique<WsClient>();
      ASSERT_TRUE(c->open(h.port())) << i << " " << c->error();
      ASSERT_TRUE(c->send_handshake("/rooms/big", "chatws.v1")) << i;
      joiners.push_back(std::move(c));
    }
  });
  ASSERT_EQ(joiners.size(), size_t(kJoiners));
  const int64_t all = kJoiners + 1;
  std::vector<int> got(kJoiners, 0);
  for (int i = 0; i < kJoiners; ++i) {
    WsClient& c = *joiners[i];
    ASSERT_EQ(c.finish_handshake(10000), 101) << i << " " << c.error();
    ASSERT_TRUE(decode_v1(c.read_text(10000), &hello)) << i;
    ASSERT_EQ(hello.type, "hello");
    ASSERT_GE(hello.members, 2);
    ASSERT_LE(hello.members, all);
    int64_t last = hello.members;
    if (hello.members != all) {
      got[i] = presence_until(c, all, &last);
      ASSERT_GE(got[i], 1) << i;
    }
  }
  int64_t last = 1;
  const int anchor_frames = presence_until(anchor, all, &last);
  const long joins_took = h.iterations() - it0;
  ASSERT_GE(anchor_frames, 1);
  // The bound: at most one update per iteration...
  EXPECT_LE(anchor_frames, joins_took);
  EXPECT_LE(*std::max_element(got.begin(), got.end()), joins_took);
  // ... and so far fewer than one per join (one per join would be 1500).
  EXPECT_LE(anchor_frames, kJoiners / 10) << "presence frames to one member for " << kJoiners << " joins";

  // Everyone leaves at once (TCP closed without a close frame, as a
  // crowd of closing tabs does): the anchor hears a few count updates.
  const long it1 = h.iterations();
  h.while_loop_held([&] { joiners.clear(); });
  const int leave_frames = presence_until(anchor, 1, &last);
  EXPECT_GE(leave_frames, 1);
  EXPECT_LE(leave_frames, h.iterations() - it1);
  EXPECT_LE(leave_frames, kJoiners / 10) << "presence frames to one member for " << kJoiners << " leaves";
  EXPECT_TRUE(h.wait_for([](chat::ChatService& c) { return c.member_count("big") == 1; }));

  // The room still works for the one left.
  ASSERT_TRUE(anchor.send_text(R"({"user":"a","text":"still here"})"));
  V1 m;
  ASSERT_TRUE(decode_v1(anchor.read_text(), &m));
  EXPECT_EQ(m.type, "msg");
  EXPECT_EQ(m.msg.text, "still here");
}

}  // namespace
}  // namespace chatws::test
