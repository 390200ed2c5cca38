// A classic member that keeps reading while a v1 member floods its room
// with messages of control characters (1 byte stored, 6 on the wire, so
// 24.6 KB per message on a classic member's wire): what the reader saw.
// Shared by the one-loop test (test_chat_slow_reader.cpp) and the two-loop
// one (test_chat_multiloop_e2e.cpp), where the two members are on
// different loops.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "chat/wire_decode.h"
#include "support/ws_client.h"

namespace chatws::test {

struct ClassicFlood {
  WsClient reader, flooder;  // members of the room until this is destroyed
  int snapshots = 0;
  size_t largest = 0;    // bytes of the largest snapshot
  std::string failure;   // "" while all was well

  // Joins `room` as the classic reader, then as the v1 flooder, and posts
  // `n` such messages (each once the previous one's echo is in: each its
  // own batch and snapshot) and then "end", while a thread reads every
  // snapshot until the one with "end". Fatal test failures for the
  // flooder's side; the reader's go to `failure`.
  void run(uint16_t port, const std::string& room, int n) {
    ASSERT_TRUE(reader.connect(port, "/rooms/" + room, "json"));
    ASSERT_EQ(reader.read_text(), R"({"msg":[]})");
    ASSERT_TRUE(flooder.connect(port, "/rooms/" + room, "chatws.v1"));
    ASSERT_NE(flooder.read_text().find("\"hello\""), std::string::npos);
    std::thread read_all([this] { read_snapshots(); });
    struct JoinAtExit {  // an assertion below must not leave the reader running
      std::thread& t;
      ~JoinAtExit() {
        if (t.joinable()) t.join();
      }
    } join_reader{read_all};
    std::string flood = "{\"user\":\"f\",\"text\":\"";
    for (int i = 0; i < 4096; ++i) flood += "\\u0001";
    flood += "\"}";
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(flooder.send_text(flood)) << i;
      const std::string echo = flooder.read_text();
      ASSERT_NE(echo.find("\"type\":\"msg\""), std::string::npos) << i << ": " << echo.substr(0, 100);
    }
    ASSERT_TRUE(flooder.send_text(R"({"user":"f","text":"end"})"));
  }

 private:
  void read_snapshots() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // sanitizers are slow
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = reader.read_message(10000);
      if (!m) return void(failure = "read failed: " + reader.error());
      if (m->op == protocol::Opcode::Close) {
        return void(failure = "closed " + std::to_string(m->close_code()) + " " + m->close_reason());
      }
      std::vector<Entry> e;
      if (!decode_snapshot(m->payload, &e) || e.empty()) return void(failure = "bad snapshot");
      ++snapshots;
      largest = std::max(largest, m->payload.size());
      if (e[0].text == "end") return;
    }
    failure = "no snapshot with the last message in time";
  }
};

}  // namespace chatws::test
