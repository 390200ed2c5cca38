// The load generator's chat codec (--chat), checked against the server's own
// chatws.v1 encoder and parser so that a change of the wire format shows up
// here rather than as a silent mis-measurement.
#include <gtest/gtest.h>

#include <string>

#include "chat/chat_wire.h"
#include "chat/history_ring.h"
#include "chat_codec.h"

namespace {

using namespace chatws::bench;
namespace chat = chatws::chat;

TEST(ChatCodec, ClientMessageIsAcceptedByTheServerParser) {
  const std::string payload = "0123456789abcdef00000007xxxxxxxx";
  const std::string msg = chat_prefix(7) + payload + std::string(kChatSuffix);
  EXPECT_EQ(msg, "{\"user\":\"lg7\",\"text\":\"" + payload + "\"}");
  chat::MessageParser parser{chat::TextLimits{}};
  std::string_view user, text;
  std::string error;
  ASSERT_TRUE(parser.parse(msg, chat::WireFormat::V1, &user, &text, &error)) << error;
  EXPECT_EQ(user, "lg7");
  EXPECT_EQ(text, payload);
}

TEST(ChatCodec, ExtractsTheTextOfTheServersMsgEvent) {
  chat::ChatMessage m;
  m.id = 42;
  m.user = "lg12";
  m.text = "00000001deadbeef0000000cxxxxxxxxxxxxxxxx";
  m.time_ms = 1700000000123;
  const std::string wire = chat::encode_v1_msg(m);
  std::string_view text;
  ASSERT_EQ(parse_chat_event(wire, &text), ChatEvent::Msg) << wire;
  EXPECT_EQ(text, m.text);
  // The view points into the frame: no copy per delivery.
  EXPECT_GE(text.data(), wire.data());
  EXPECT_LE(text.data() + text.size(), wire.data() + wire.size());
}

TEST(ChatCodec, PresenceAndHelloAreIgnored) {
  std::string_view text;
  EXPECT_EQ(parse_chat_event(chat::encode_v1_presence(true, 3), &text), ChatEvent::Ignored);
  EXPECT_EQ(parse_chat_event(chat::encode_v1_presence(false, 2), &text), ChatEvent::Ignored);
  // A hello whose history holds messages (with "text" fields) is still no delivery.
  chat::HistoryRing ring(5);
  chat::ChatMessage m;
  m.id = 1;
  m.user = "lg0";
  m.text = "0000000000000000" "00000000" "xxxxxxxx";
  m.time_ms = 1;
  ring.push(m);
  const std::string hello = chat::encode_v1_hello("bench", 9, 4, ring);
  ASSERT_NE(hello.find("\"text\":\""), std::string::npos);
  EXPECT_EQ(parse_chat_event(hello, &text), ChatEvent::Ignored);
}

TEST(ChatCodec, ErrorsAndUnknownShapesAreBad) {
  std::string_view text;
  EXPECT_EQ(parse_chat_event(chat::encode_v1_error("storage unavailable"), &text), ChatEvent::Bad);
  EXPECT_EQ(parse_chat_event(chat::encode_v1_dropped(5), &text), ChatEvent::Bad);
  EXPECT_EQ(parse_chat_event("{\"type\":\"typing\"}", &text), ChatEvent::Bad);
  EXPECT_EQ(parse_chat_event("{\"msg\":[]}", &text), ChatEvent::Bad);  // classic format
  EXPECT_EQ(parse_chat_event("", &text), ChatEvent::Bad);
  EXPECT_EQ(parse_chat_event("{\"type\":\"msg", &text), ChatEvent::Bad);              // truncated type
  EXPECT_EQ(parse_chat_event("{\"type\":\"msg\",\"id\":1}", &text), ChatEvent::Bad);  // no text
  EXPECT_EQ(parse_chat_event("{\"type\":\"msg\",\"text\":\"abc", &text), ChatEvent::Bad);  // unclosed
  // An escaped text is not something the loadgen sent: refuse, do not mis-read.
  EXPECT_EQ(parse_chat_event("{\"type\":\"msg\",\"text\":\"a\\\\b\"}", &text), ChatEvent::Bad);
}

TEST(ChatCodec, EscapedUserCannotFakeTheTextField) {
  // Another client's user name containing "text":" is escaped by the server,
  // so the search still lands on the real text field.
  chat::ChatMessage m;
  m.id = 3;
  m.user = "x\",\"text\":\"fake";
  m.text = "real";
  m.time_ms = 2;
  std::string_view text;
  ASSERT_EQ(parse_chat_event(chat::encode_v1_msg(m), &text), ChatEvent::Msg);
  EXPECT_EQ(text, "real");
}

}  // namespace
