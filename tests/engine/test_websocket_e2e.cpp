// End-to-end tests of the engine over real sockets on 127.0.0.1: the
// handshake, echo, broadcast, control frames, the close rules, limits.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <memory>
#include <thread>
#include <vector>

#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using protocol::Opcode;

namespace {

// An echo server: every message goes back to its sender with the same opcode.
struct EchoFixture : ::testing::Test {
  RecordingHandler handler;
  std::unique_ptr<ServerThread> st;

  void start(ServerConfig cfg = {}) {
    handler.on_msg = [this](ConnId id, Opcode op, const char* d, size_t n) {
      handler.server->send(id, op, std::string_view(d, n));
    };
    st = std::make_unique<ServerThread>(cfg, &handler);
    ASSERT_TRUE(st->server) << st->error;
    handler.server = st->server.get();
  }
  void SetUp() override { start(); }
  std::unique_ptr<WsClient> connect(std::string_view path = "/") {
    auto c = std::make_unique<WsClient>(st->port());
    EXPECT_TRUE(c->ok());
    EXPECT_EQ(c->handshake(path), 101) << c->response();
    return c;
  }
};

TEST_F(EchoFixture, HandshakeAnswersRfcExampleAccept) {
  WsClient c(st->port());
  ASSERT_EQ(c.handshake(), 101);
  EXPECT_NE(c.response().find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(TcpClient::lower(c.response()).find("upgrade: websocket"), std::string::npos);
}

TEST_F(EchoFixture, EchoesTextAndBinary) {
  auto c = connect();
  ASSERT_TRUE(c->send_text("hello"));
  auto f = c->read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Text);
  EXPECT_EQ(f->payload, "hello");
  std::string bin("\x00\x01\xff\xfe", 4);
  ASSERT_TRUE(c->send_binary(bin));
  f = c->read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Binary);
  EXPECT_EQ(f->payload, bin);
}

TEST_F(EchoFixture, EchoesLargeMessagesInEveryLengthForm) {
  auto c = connect();
  for (size_t n : {0u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
    std::string msg(n, 'x');
    ASSERT_TRUE(c->send_binary(msg));
    auto f = c->read_message();
    ASSERT_TRUE(f) << n;
    EXPECT_EQ(f->payload.size(), n);
  }
}

TEST_F(EchoFixture, ClientWritingOneByteAtATime) {
  WsClient c(st->port());
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  uint8_t mask[4] = {1, 2, 3, 4};
  req += protocol::encode_masked_frame(Opcode::Text, "byte by byte", mask);
  for (char ch : req) ASSERT_TRUE(c.write_all(std::string_view(&ch, 1)));
  auto resp = c.read_http_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->substr(9, 3), "101");
  auto f = c.read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "byte by byte");
}

TEST_F(EchoFixture, ManyFramesInOneWrite) {
  auto c = connect();
  std::string burst;
  uint8_t mask[4] = {9, 8, 7, 6};
  for (int i = 0; i < 200; ++i) burst += protocol::encode_masked_frame(Opcode::Text, std::to_string(i), mask);
  ASSERT_TRUE(c->write_all(burst));
  for (int i = 0; i < 200; ++i) {
    auto f = c->read_message();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, std::to_string(i));
  }
}

TEST_F(EchoFixture, PingGetsPongWithSamePayload) {
  auto c = connect();
  ASSERT_TRUE(c->send_frame(Opcode::Ping, "are you there"));
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Pong);
  EXPECT_EQ(f->payload, "are you there");
}

TEST_F(EchoFixture, FragmentedMessageWithPingInBetween) {
  auto c = connect();
  ASSERT_TRUE(c->send_frame(Opcode::Text, "frag", false));
  ASSERT_TRUE(c->send_frame(Opcode::Ping, "p"));
  ASSERT_TRUE(c->send_frame(Opcode::Continuation, "men", false));
  ASSERT_TRUE(c->send_frame(Opcode::Continuation, "ted", true));
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Pong);
  f = c->read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "fragmented");
}

TEST_F(EchoFixture, CloseHandshakeEchoesCodeAndReportsIt) {
  auto c = connect();
  ASSERT_TRUE(c->send_close(4000, "bye"));
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Close);
  EXPECT_EQ(f->close_code(), 4000);
  EXPECT_TRUE(c->wait_eof());  // the server closes TCP first
  ASSERT_TRUE(handler.wait_count(Event::Close, 1));
  auto ev = handler.events();
  EXPECT_EQ(ev.back().code, 4000);
  EXPECT_EQ(ev.back().data, "bye");
}

// Each row: what the client sends, the close code it must get back.
struct Violation {
  const char* name;
  std::string bytes;
  uint16_t code;
};

std::string masked(uint8_t b0, std::string payload) {
  uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  std::string f = protocol::encode_masked_frame(Opcode::Text, payload, mask);
  f[0] = char(b0);
  return f;
}

TEST_F(EchoFixture, ProtocolViolationsGetTheRightCloseCode) {
  std::string unmasked = protocol::encode_frame(Opcode::Text, "x");
  std::vector<Violation> rows = {
      {"unmasked frame", unmasked, 1002},
      {"rsv1 without extension", masked(0xC1, "x"), 1002},
      {"reserved opcode 3", masked(0x83, "x"), 1002},
      {"reserved control opcode 0xB", masked(0x8B, ""), 1002},
      {"fragmented ping", masked(0x09, "x"), 1002},
      {"control frame over 125 bytes", masked(0x89, std::string(126, 'p')), 1002},
      {"continuation without start", masked(0x80, "x"), 1002},
      {"invalid utf-8 text", masked(0x81, "\xff\xfe"), 1007},
      {"close with 1-byte payload", masked(0x88, "\x03"), 1002},
      {"close with code 1005", masked(0x88, "\x03\xed"), 1002},
      {"close with code 999", masked(0x88, "\x03\xe7"), 1002},
      {"close with code 1004", masked(0x88, "\x03\xec"), 1002},
      {"close with reason not utf-8", masked(0x88, std::string("\x03\xe8\xff", 3)), 1007},
      {"new message inside fragmented one", masked(0x01, "a") + masked(0x81, "b"), 1002},
  };
  for (auto& row : rows) {
    auto c = connect();
    ASSERT_TRUE(c->write_all(row.bytes)) << row.name;
    std::optional<Frame> f;
    do {
      f = c->read_frame();
    } while (f && f->op != Opcode::Close);
    ASSERT_TRUE(f) << row.name;
    EXPECT_EQ(f->close_code(), row.code) << row.name;
    EXPECT_TRUE(c->wait_eof()) << row.name;
  }
  // The server still serves others.
  auto c = connect();
  ASSERT_TRUE(c->send_text("still here"));
  auto f = c->read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "still here");
}

TEST_F(EchoFixture, StaleIdIsAnErrorNotACrash) {
  auto c = connect();
  ASSERT_TRUE(handler.wait_count(Event::Open, 1));
  ConnId id = handler.events()[0].id;
  c->send_close(1000);
  ASSERT_TRUE(handler.wait_count(Event::Close, 1));
  st->stop();
  EXPECT_EQ(st->server->send(id, Opcode::Text, "late"), kEStopped);
}

TEST(EngineLimits, OversizeMessageClosesWith1009) {
  RecordingHandler h;
  ServerConfig cfg;
  cfg.max_message_size = 1000;
  ServerThread st(cfg, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(c.send_text(std::string(1001, 'a')));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, Opcode::Close);
  EXPECT_EQ(f->close_code(), 1009);
  // Fragments adding up past the limit too.
  WsClient c2(st.port());
  ASSERT_EQ(c2.handshake(), 101);
  ASSERT_TRUE(c2.send_frame(Opcode::Text, std::string(600, 'a'), false));
  ASSERT_TRUE(c2.send_frame(Opcode::Continuation, std::string(600, 'a'), true));
  f = c2.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->close_code(), 1009);
  EXPECT_EQ(h.count(Event::Message), 0u);
}

TEST(EngineBroadcast, ReachesEveryClientAndHonoursExclude) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  h.on_msg = [&](ConnId id, Opcode op, const char* d, size_t n) {
    h.server->broadcast(op, std::string_view(d, n), std::string_view(d, n) == "not me" ? id : 0);
  };
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101);
  }
  ASSERT_TRUE(h.wait_count(Event::Open, 3));
  ASSERT_TRUE(cs[0]->send_text("to all"));
  for (auto& c : cs) {
    auto f = c->read_message();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, "to all");
  }
  ASSERT_TRUE(cs[1]->send_text("not me"));
  for (int i : {0, 2}) {
    auto f = cs[size_t(i)]->read_message();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, "not me");
  }
  EXPECT_FALSE(cs[1]->read_message(300));  // excluded: nothing arrives
}

TEST(EngineScale, ThousandConcurrentConnections) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 4096) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ASSERT_GE(rl.rlim_cur, 2100u) << "need descriptors for 1000 clients and 1000 server sockets";
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  h.on_msg = [&](ConnId id, Opcode op, const char* d, size_t n) {
    h.server->send(id, op, std::string_view(d, n));
  };
  std::vector<std::unique_ptr<WsClient>> cs;
  for (int i = 0; i < 1000; ++i) {
    cs.push_back(std::make_unique<WsClient>(st.port()));
    ASSERT_EQ(cs.back()->handshake(), 101) << i;
  }
  ASSERT_TRUE(h.wait_count(Event::Open, 1000));
  EXPECT_EQ(st.server->connection_count(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(cs[size_t(i)]->send_text(std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    auto f = cs[size_t(i)]->read_message();
    ASSERT_TRUE(f) << i;
    EXPECT_EQ(f->payload, std::to_string(i));
  }
  cs.clear();
  ASSERT_TRUE(h.wait_count(Event::Close, 1000));
  EXPECT_EQ(st.server->connection_count(), 0u);
}

// send() from another thread while the loop thread is busy delivering: run
// under ThreadSanitizer in CI (label "threads").
TEST(EngineThreads, SendFromAnotherThreadWhileLoopIsBusy) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  h.on_msg = [&](ConnId id, Opcode op, const char* d, size_t n) {
    h.server->send(id, op, std::string_view(d, n));
  };
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  ConnId id = h.events()[0].id;
  constexpr int kN = 2000;
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) st.server->send(id, Opcode::Text, "t" + std::to_string(i));
  });
  std::thread bcast([&] {
    for (int i = 0; i < 100; ++i) st.server->broadcast(Opcode::Binary, "b", 0);
  });
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(c.send_text("e"));  // keeps the loop busy
  int texts = 0, echoes = 0, bins = 0, next = 0;
  while (texts + echoes + bins < kN + 500 + 100) {
    auto f = c.read_message();
    ASSERT_TRUE(f) << texts << " " << echoes << " " << bins;
    if (f->op == Opcode::Binary) ++bins;
    else if (f->payload == "e") ++echoes;
    else {
      EXPECT_EQ(f->payload, "t" + std::to_string(next));  // in order per sender thread
      ++next;
      ++texts;
    }
  }
  producer.join();
  bcast.join();
  EXPECT_EQ(texts, kN);
  EXPECT_EQ(bins, 100);
}

}  // namespace

namespace {

// One message makes the host queue a burst: runs of small frames (written
// by copying them into one buffer) around frames too large for that (written
// by writev from the frames themselves), and a run of small frames whose
// total is over the copy limit. Every frame must arrive intact, in order.
TEST(EngineOutput, BurstOfSmallAndLargeFramesArrivesIntactAndInOrder) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::vector<std::string> sent;
  for (int i = 0; i < 100; ++i) sent.push_back("s" + std::to_string(i));
  sent.push_back(std::string(20000, 'L'));
  for (int i = 0; i < 70; ++i) sent.push_back(std::string(300, char('a' + i % 26)));  // 21 KB
  sent.push_back(std::string(70000, 'M'));  // 8-byte length form
  for (int i = 0; i < 3; ++i) sent.push_back("t" + std::to_string(i));
  h.on_msg = [&](ConnId id, Opcode, const char*, size_t) {
    for (const std::string& s : sent) ASSERT_EQ(h.server->send(id, Opcode::Text, s), kOk);
  };
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(c.send_text("go"));
  for (size_t i = 0; i < sent.size(); ++i) {
    auto f = c.read_message();
    ASSERT_TRUE(f) << "frame " << i;
    ASSERT_EQ(f->op, Opcode::Text);
    ASSERT_EQ(f->payload, sent[i]) << "frame " << i;
  }
  EXPECT_FALSE(c.read_message(200));  // nothing extra, nothing duplicated
}

// send() skips re-validating the exact buffer on_message is handing over,
// and only that: a slice of it that cuts a character is still refused.
TEST(EngineOutput, EchoOfTheDeliveredBufferIsValidatedOnlyOnce) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  std::vector<int> rcs;
  h.on_msg = [&](ConnId id, Opcode op, const char* d, size_t n) {
    rcs.push_back(h.server->send(id, op, std::string_view(d, n - 1)));  // cuts the 'é'
    rcs.push_back(h.server->send(id, op, std::string_view(d, n)));
    rcs.push_back(h.server->broadcast(op, std::string_view(d + n - 1, 1), 0));  // lone "\xA9"
  };
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(c.send_text("ok \xC3\xA9"));
  auto f = c.read_message();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "ok \xC3\xA9");
  EXPECT_FALSE(c.read_message(200));
  ASSERT_TRUE(h.wait_count(Event::Message, 1));
  ASSERT_EQ(rcs.size(), 3u);
  EXPECT_EQ(rcs[0], kEInval);
  EXPECT_EQ(rcs[1], kOk);
  EXPECT_EQ(rcs[2], kEInval);
}

// A send from another thread while the loop is blocked waiting (no sockets
// busy) must wake it: posting only signals the loop for the first command of
// a batch, so every batch has to get through.
TEST(EngineThreads, EveryCommandBatchWakesAnIdleLoop) {
  RecordingHandler h;
  ServerThread st(ServerConfig{}, &h);
  ASSERT_TRUE(st.server) << st.error;
  h.server = st.server.get();
  WsClient c(st.port());
  ASSERT_EQ(c.handshake(), 101);
  ASSERT_TRUE(h.wait_count(Event::Open, 1));
  ConnId id = h.events()[0].id;
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(st.server->send(id, Opcode::Text, "w" + std::to_string(i)), kOk);
    auto f = c.read_message();  // the loop is idle again before the next send
    ASSERT_TRUE(f) << i;
    ASSERT_EQ(f->payload, "w" + std::to_string(i));
  }
}

}  // namespace
