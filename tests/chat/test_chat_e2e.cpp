// The chat end to end: a real Server on 127.0.0.1, the ChatService wired as
// the C ABI wires it, and independent real client sockets.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "chat_harness.h"
#include "wire_decode.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string msg_json(const std::string& user, const std::string& text) {
  return "{\"user\":\"" + user + "\",\"text\":\"" + text + "\"}";
}

std::vector<std::string> texts(const std::string& payload) { return snapshot_texts(payload); }

using Texts = std::vector<std::string>;

class ChatE2E : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.start(chat::ChatConfig{})) << h.error(); }

  // A client that joined `path` with `sp`, its join frame consumed.
  void join(WsClient& c, const std::string& path, const std::string& sp = "json",
            std::string* first = nullptr) {
    ASSERT_TRUE(c.connect(h.port(), path, sp)) << c.status() << " " << c.error() << " " << c.body();
    ASSERT_EQ(c.subprotocol(), sp);
    std::string f = c.read_text();
    if (first) *first = f;
  }

  ChatHarness h;
};

TEST_F(ChatE2E, UpgradeRefusesBadRoomPaths) {
  struct Case {
    std::string path;
    int status;
    std::string body_has;
  } cases[] = {
      {"/foo", 404, "/rooms/<name>"},
      {"/rooms", 404, "/rooms/<name>"},
      {"/rooms/", 400, "invalid room name"},
      {"/rooms/a/b", 400, "invalid room name"},
      {"/rooms/a%20b", 400, "invalid room name"},
      {"/rooms/" + std::string(65, 'x'), 400, "invalid room name"},
  };
  for (const auto& sp : {"json", "chatws.v1"}) {
    for (const Case& c : cases) {
      WsClient cl;
      EXPECT_FALSE(cl.connect(h.port(), c.path, sp)) << c.path;
      EXPECT_EQ(cl.status(), c.status) << c.path;
      EXPECT_NE(cl.body().find(c.body_has), std::string::npos) << c.path << ": " << cl.body();
    }
  }
  // Valid names, with a query string.
  WsClient ok;
  ASSERT_TRUE(ok.connect(h.port(), "/rooms/Team-1.x_y?token=abc", "json")) << ok.status() << ok.body();
  EXPECT_EQ(ok.read_text(), R"({"msg":[]})");
  // A connection without a chat subprotocol is not the chat's business.
  WsClient plain;
  ASSERT_TRUE(plain.connect(h.port(), "/foo", "")) << plain.status() << plain.body();
  EXPECT_EQ(plain.subprotocol(), "");
}

TEST_F(ChatE2E, TwoClientsSeeEachOthersMessagesInOrder) {
  WsClient a, b;
  std::string first;
  join(a, "/", "json", &first);
  EXPECT_EQ(first, R"({"msg":[]})");
  join(b, "/", "json", &first);
  EXPECT_EQ(first, R"({"msg":[]})");
  const int64_t before = now_ms();
  ASSERT_TRUE(a.send_text(msg_json("ann", "hello bob")));
  const std::string sa = a.read_text(), sb = b.read_text();
  EXPECT_EQ(sa, sb);  // the same shared frame
  std::vector<Entry> e;
  ASSERT_TRUE(decode_snapshot(sa, &e)) << sa;
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].user, "ann");
  EXPECT_EQ(e[0].text, "hello bob");
  EXPECT_GE(e[0].time, before);
  EXPECT_LE(e[0].time, now_ms());

  ASSERT_TRUE(b.send_text(msg_json("bob", "hi ann")));
  EXPECT_EQ(texts(a.read_text()), (Texts{"hi ann", "hello bob"}));
  EXPECT_EQ(texts(b.read_text()), (Texts{"hi ann", "hello bob"}));

  // Several messages in one TCP write (one loop iteration, one commit):
  // one snapshot for the batch, the latest, with all of them in order.
  std::string burst;
  for (int i = 1; i <= 3; ++i) {
    burst += WsClient::masked_frame(protocol::Opcode::Text, msg_json("ann", "b" + std::to_string(i)));
  }
  ASSERT_TRUE(a.write_all(burst));
  for (WsClient* c : {&a, &b}) {
    EXPECT_EQ(texts(c->read_text()), (Texts{"b3", "b2", "b1", "hi ann", "hello bob"}));
  }
  // Nothing else was sent for the burst: the next snapshot is the next message's.
  ASSERT_TRUE(b.send_text(msg_json("bob", "after")));
  for (WsClient* c : {&a, &b}) {
    EXPECT_EQ(texts(c->read_text()), (Texts{"after", "b3", "b2", "b1", "hi ann", "hello bob"}));
  }
}

TEST_F(ChatE2E, LateJoinerGetsLast50NewestFirst) {
  WsClient a;
  join(a, "/rooms/busy");
  for (int i = 1; i <= 60; ++i) {
    ASSERT_TRUE(a.send_text(msg_json("ann", "m" + std::to_string(i))));
    auto t = texts(a.read_text());
    ASSERT_EQ(t.size(), static_cast<size_t>(std::min(i, 50)));
    ASSERT_EQ(t.front(), "m" + std::to_string(i));
  }
  WsClient c;
  std::string first;
  join(c, "/rooms/busy", "json", &first);
  Texts expected;
  for (int i = 60; i >= 11; --i) expected.push_back("m" + std::to_string(i));
  EXPECT_EQ(texts(first), expected);

  // The rich format: the same 50, oldest first, with ids 11..60.
  WsClient v;
  join(v, "/rooms/busy", "chatws.v1", &first);
  V1 hello;
  ASSERT_TRUE(decode_v1(first, &hello)) << first;
  EXPECT_EQ(hello.type, "hello");
  EXPECT_EQ(hello.room, "busy");
  EXPECT_EQ(hello.members, 3);
  ASSERT_EQ(hello.history.size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(hello.history[i].id, static_cast<int64_t>(11 + i));
    EXPECT_EQ(hello.history[i].text, "m" + std::to_string(11 + i));
  }
}

TEST_F(ChatE2E, RoomsAreIsolated) {
  WsClient a, b, d;
  join(a, "/rooms/a");
  join(b, "/rooms/b");
  join(d, "/");
  ASSERT_TRUE(a.send_text(msg_json("ann", "in a")));
  EXPECT_EQ(texts(a.read_text()), (Texts{"in a"}));
  ASSERT_TRUE(b.send_text(msg_json("bob", "in b")));
  // b's next frame is its own message: nothing from room a came before it.
  EXPECT_EQ(texts(b.read_text()), (Texts{"in b"}));
  ASSERT_TRUE(d.send_text(msg_json("dan", "in default")));
  EXPECT_EQ(texts(d.read_text()), (Texts{"in default"}));
  // A later joiner of each room sees only that room's history.
  WsClient a2, b2, d2;
  std::string fa, fb, fd;
  join(a2, "/rooms/a", "json", &fa);
  join(b2, "/rooms/b", "json", &fb);
  join(d2, "/?x=1", "json", &fd);
  EXPECT_EQ(texts(fa), (Texts{"in a"}));
  EXPECT_EQ(texts(fb), (Texts{"in b"}));
  EXPECT_EQ(texts(fd), (Texts{"in default"}));
  // Room names are case-sensitive.
  WsClient upper;
  join(upper, "/rooms/A", "json", &fa);
  EXPECT_EQ(texts(fa), Texts{});
}

struct BadInput {
  std::string payload;
  std::string error;
  bool binary = false;
};

std::vector<BadInput> bad_inputs() {
  return {
      {R"({"user":"a","text":"b")", "invalid JSON"},
      {"not json", "invalid JSON"},
      {R"(["user","text"])", "message must be a JSON object"},
      {R"("just a string")", "message must be a JSON object"},
      {R"({"text":"b"})", "missing \"user\""},
      {R"({"user":"a"})", "missing \"text\""},
      {R"({"user":7,"text":"b"})", "\"user\" must be a string"},
      {R"({"user":"a","text":null})", "\"text\" must be a string"},
      {R"({"user":"","text":"b"})", "\"user\" must not be empty"},
      {R"({"user":"a","text":""})", "\"text\" must not be empty"},
      {R"({"user":"  \t","text":"b"})", "\"user\" must not be blank"},
      {R"({"user":"\u0000","text":"b"})", "\"user\" must not contain control characters"},
      {R"({"user":"\u202Enimda","text":"b"})", "\"user\" must not contain bidirectional formatting characters"},
      {R"({"user":"ad\u200Bmin","text":"b"})", "\"user\" must not contain invisible characters"},
      {"{\"user\":\"" + std::string(65, 'u') + "\",\"text\":\"b\"}", "\"user\" is longer than 64 characters"},
      {"{\"user\":\"a\",\"text\":\"" + std::string(4097, 't') + "\"}", "\"text\" is longer than 4096 characters"},
      {R"({"user":"a","text":"b"})", "binary messages are not supported", true},
  };
}

TEST_F(ChatE2E, InvalidMessagesGetAnErrorToTheSenderOnly) {
  WsClient a, b, v;
  join(a, "/rooms/v");
  join(b, "/rooms/v");
  std::string first;
  join(v, "/rooms/v", "chatws.v1", &first);
  for (const BadInput& in : bad_inputs()) {
    ASSERT_TRUE(in.binary ? a.send_binary(in.payload) : a.send_text(in.payload));
    EXPECT_EQ(decode_classic_error(a.read_text()), in.error) << in.payload;
    // The rich format answers with the typed error.
    ASSERT_TRUE(in.binary ? v.send_binary(in.payload) : v.send_text(in.payload));
    V1 err;
    std::string got = v.read_text();
    ASSERT_TRUE(decode_v1(got, &err)) << got;
    EXPECT_EQ(err.type, "error");
    EXPECT_EQ(err.error, in.error) << in.payload;
  }
  V1 err;
  ASSERT_TRUE(v.send_text(R"({"type":"typing","user":"a","text":"b"})"));
  ASSERT_TRUE(decode_v1(v.read_text(), &err));
  EXPECT_EQ(err.error, "unsupported message type");
  // Both senders are still connected and can chat; b received nothing
  // before this (its next frame is the snapshot of the first valid message).
  ASSERT_TRUE(a.send_text(R"({"user":"ann","text":"valid","extra":{"ignored":[1,2]}})"));
  EXPECT_EQ(texts(a.read_text()), (Texts{"valid"}));
  EXPECT_EQ(texts(b.read_text()), (Texts{"valid"}));
  V1 m;
  ASSERT_TRUE(decode_v1(v.read_text(), &m));
  EXPECT_EQ(m.type, "msg");
  EXPECT_EQ(m.msg.id, 1);  // nothing invalid took an id
  ASSERT_TRUE(v.send_text(msg_json("vic", "me too")));
  ASSERT_TRUE(decode_v1(v.read_text(), &m));
  EXPECT_EQ(m.msg.text, "me too");
  EXPECT_EQ(m.msg.id, 2);
  EXPECT_EQ(texts(b.read_text()), (Texts{"me too", "valid"}));
}

TEST_F(ChatE2E, RichProtocolHelloMessagesAndPresence) {
  WsClient x, y, z;
  std::string first;
  join(x, "/rooms/p", "chatws.v1", &first);
  V1 f;
  ASSERT_TRUE(decode_v1(first, &f)) << first;
  EXPECT_EQ(f.type, "hello");
  EXPECT_EQ(f.room, "p");
  EXPECT_GT(f.you, 0);
  EXPECT_EQ(f.members, 1);
  EXPECT_TRUE(f.history.empty());
  const int64_t x_id = f.you;

  join(y, "/rooms/p", "json", &first);  // a classic client counts as a member
  EXPECT_EQ(first, R"({"msg":[]})");
  ASSERT_TRUE(decode_v1(x.read_text(), &f));
  EXPECT_EQ(f.type, "join");
  EXPECT_EQ(f.members, 2);

  join(z, "/rooms/p", "chatws.v1", &first);
  ASSERT_TRUE(decode_v1(first, &f));
  EXPECT_EQ(f.members, 3);
  EXPECT_NE(f.you, x_id);
  ASSERT_TRUE(decode_v1(x.read_text(), &f));
  EXPECT_EQ(f.type, "join");
  EXPECT_EQ(f.members, 3);

  ASSERT_TRUE(x.send_text(R"({"type":"msg","user":"xena","text":"a \"quoted\" <b>line</b>\n2"})"));
  std::string dx = x.read_text(), dz = z.read_text();
  EXPECT_EQ(dx, dz);  // one shared frame
  ASSERT_TRUE(decode_v1(dx, &f)) << dx;
  EXPECT_EQ(f.type, "msg");
  EXPECT_EQ(f.msg.id, 1);
  EXPECT_EQ(f.msg.user, "xena");
  EXPECT_EQ(f.msg.text, "a \"quoted\" <b>line</b>\n2");
  EXPECT_EQ(texts(y.read_text()), (Texts{"a \"quoted\" <b>line</b>\n2"}));

  y.close();
  for (WsClient* c : {&x, &z}) {
    ASSERT_TRUE(decode_v1(c->read_text(), &f));
    EXPECT_EQ(f.type, "leave");
    EXPECT_EQ(f.members, 2);
  }
  EXPECT_TRUE(h.wait_for([](chat::ChatService& c) { return c.member_count("p") == 2; }));
  z.close();
  ASSERT_TRUE(decode_v1(x.read_text(), &f));
  EXPECT_EQ(f.type, "leave");
  EXPECT_EQ(f.members, 1);
}

TEST_F(ChatE2E, ModeratorRejectsAndRewrites) {
  std::vector<std::string> seen;  // loop thread only
  h.on_loop([&seen](chat::ChatService& c) {
    c.set_moderator([&seen](chat::ChatDraft& d, std::string* reason) {
      seen.push_back(std::string(d.room) + "|" + std::to_string(d.sender != 0) + "|" + d.user + "|" + d.text +
                     "|" + std::to_string(d.time_ms > 0));
      if (d.text.find("spam") != std::string::npos) {
        *reason = "no spam please";
        return false;
      }
      if (d.text == "silent") return false;  // no reason given
      if (d.text == "empty it") d.text.clear();
      auto p = d.text.find("darn");
      if (p != std::string::npos) d.text.replace(p, 4, "d**n");
      if (d.user == "anon") d.user = "guest";
      return true;
    });
    return 0;
  });
  WsClient a, b;
  join(a, "/rooms/m");
  join(b, "/rooms/m");
  ASSERT_TRUE(a.send_text(msg_json("ann", "buy spam now")));
  EXPECT_EQ(decode_classic_error(a.read_text()), "no spam please");
  ASSERT_TRUE(a.send_text(msg_json("ann", "silent")));
  EXPECT_EQ(decode_classic_error(a.read_text()), "message rejected");
  ASSERT_TRUE(a.send_text(msg_json("ann", "empty it")));
  EXPECT_EQ(decode_classic_error(a.read_text()),
            "message rewritten invalid by moderator: \"text\" must not be empty");
  ASSERT_TRUE(a.send_text(msg_json("anon", "oh darn")));
  std::vector<Entry> e;
  for (WsClient* c : {&a, &b}) {  // b's first frame: rejected ones never reached it
    std::string s = c->read_text();
    ASSERT_TRUE(decode_snapshot(s, &e)) << s;
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].user, "guest");
    EXPECT_EQ(e[0].text, "oh d**n");
  }
  // Host posts are not moderated.
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("m", "system", "spam is fine here"); }), kOk);
  EXPECT_EQ(texts(b.read_text()), (Texts{"spam is fine here", "oh d**n"}));
  auto calls = h.on_loop([&seen](chat::ChatService&) { return seen; });
  EXPECT_EQ(calls, (std::vector<std::string>{"m|1|ann|buy spam now|1", "m|1|ann|silent|1", "m|1|ann|empty it|1",
                                             "m|1|anon|oh darn|1"}));
}

TEST_F(ChatE2E, HostPost) {
  WsClient a, v;
  join(a, "/rooms/lobby");
  std::string first;
  join(v, "/rooms/lobby", "chatws.v1", &first);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "system", "welcome"); }), kOk);
  EXPECT_EQ(texts(a.read_text()), (Texts{"welcome"}));
  V1 m;
  ASSERT_TRUE(decode_v1(v.read_text(), &m));
  EXPECT_EQ(m.msg.user, "system");
  EXPECT_EQ(m.msg.id, 1);
  // Invalid posts are refused and reach nobody.
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("bad/room", "s", "t"); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "", "t"); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "s", ""); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "s", "\xC3"); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "s", std::string(4097, 'x')); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", std::string("\0", 1), "t"); }), kEInval);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "\xE2\x80\xAE" "x", "t"); }), kEInval);
  // A name is stored trimmed.
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "  system\n", "trimmed"); }), kOk);
  ASSERT_TRUE(decode_v1(v.read_text(), &m));
  EXPECT_EQ(m.msg.user, "system");
  EXPECT_EQ(texts(a.read_text()), (Texts{"trimmed", "welcome"}));
  // A post to a room nobody is in is kept for later joiners.
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("", "system", "hello default"); }), kOk);
  EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("lobby", "system", "second"); }), kOk);
  EXPECT_EQ(texts(a.read_text()), (Texts{"second", "trimmed", "welcome"}));
  WsClient d;
  join(d, "/", "json", &first);
  EXPECT_EQ(texts(first), (Texts{"hello default"}));
}

TEST_F(ChatE2E, NonChatConnectionsAreLeftToTheHost) {
  WsClient plain, a;
  ASSERT_TRUE(plain.connect(h.port(), "/anything", ""));
  join(a, "/");
  ASSERT_TRUE(plain.send_text(msg_json("x", "not chat")));
  ASSERT_TRUE(a.send_text(msg_json("ann", "chat")));
  EXPECT_EQ(texts(a.read_text()), (Texts{"chat"}));
  EXPECT_TRUE(h.wait_for([](chat::ChatService& c) { return c.member_count("") == 1; }));
}

}  // namespace
}  // namespace chatws::test
