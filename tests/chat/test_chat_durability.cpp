// The chat with a real SQLite file: history and ids survive a restart, a
// bad store fails at start, a failing commit is reported to the senders and
// delivers nothing, and the store recovers.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "chat_harness.h"
#include "temp_dir.h"
#include "wire_decode.h"
#include "support/ws_client.h"

namespace chatws::test {
namespace {

using Texts = std::vector<std::string>;

std::string msg_json(const std::string& user, const std::string& text) {
  return "{\"user\":\"" + user + "\",\"text\":\"" + text + "\"}";
}

std::vector<std::string> texts(const std::string& payload) { return snapshot_texts(payload); }

chat::ChatConfig file_config(const std::string& path) {
  chat::ChatConfig c;
  c.history_path = path;
  return c;
}

// Joins and returns the join frame.
std::string join(WsClient& c, uint16_t port, const std::string& path, const std::string& sp = "json") {
  if (!c.connect(port, path, sp)) return "<connect failed: " + std::to_string(c.status()) + " " + c.error() + ">";
  return c.read_text();
}

TEST(ChatDurability, HistoryAndIdsSurviveRestart) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string db = dir.file("chat.db");
  {
    ChatHarness h;
    ASSERT_TRUE(h.start(file_config(db))) << h.error();
    WsClient a, d;
    ASSERT_EQ(join(a, h.port(), "/rooms/r"), R"({"msg":[]})");
    ASSERT_EQ(join(d, h.port(), "/"), R"({"msg":[]})");
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(a.send_text(msg_json("ann", "r" + std::to_string(i))));
      ASSERT_EQ(texts(a.read_text()).front(), "r" + std::to_string(i));  // delivered = committed
    }
    ASSERT_TRUE(d.send_text(msg_json("dan", "default one")));
    ASSERT_EQ(texts(d.read_text()), (Texts{"default one"}));
    // 60 host posts to another room: only the last 50 come back.
    for (int i = 1; i <= 60; ++i) {
      ASSERT_EQ(h.on_loop([i](chat::ChatService& c) { return c.post("big", "bot", "p" + std::to_string(i)); }), kOk);
    }
    EXPECT_TRUE(h.on_loop([](chat::ChatService& c) { return c.durable(); }));
  }  // server and service destroyed, clients still connected
  ChatHarness h;
  ASSERT_TRUE(h.start(file_config(db))) << h.error();
  WsClient a, d, big, v;
  EXPECT_EQ(texts(join(a, h.port(), "/rooms/r")), (Texts{"r3", "r2", "r1"}));
  EXPECT_EQ(texts(join(d, h.port(), "/")), (Texts{"default one"}));
  Texts expected;
  for (int i = 60; i >= 11; --i) expected.push_back("p" + std::to_string(i));
  EXPECT_EQ(texts(join(big, h.port(), "/rooms/big")), expected);

  V1 hello;
  const std::string first = join(v, h.port(), "/rooms/r", "chatws.v1");
  ASSERT_TRUE(decode_v1(first, &hello)) << first;
  ASSERT_EQ(hello.history.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(hello.history[i].id, i + 1);
    EXPECT_EQ(hello.history[i].user, "ann");
    EXPECT_EQ(hello.history[i].text, "r" + std::to_string(i + 1));
  }
  // Ids continue after the restart.
  ASSERT_TRUE(v.send_text(msg_json("vic", "r4")));
  V1 m;
  ASSERT_TRUE(decode_v1(v.read_text(), &m));
  EXPECT_EQ(m.type, "msg");
  EXPECT_EQ(m.msg.id, 4);
  EXPECT_EQ(texts(a.read_text()), (Texts{"r4", "r3", "r2", "r1"}));
}

TEST(ChatDurability, InMemoryModeKeepsNothingAcrossRestart) {
  for (const char* path : {"", ":memory:"}) {
    {
      ChatHarness h;
      ASSERT_TRUE(h.start(file_config(path))) << h.error();
      EXPECT_FALSE(h.on_loop([](chat::ChatService& c) { return c.durable(); }));
      ASSERT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("", "bot", "volatile"); }), kOk);
      WsClient a;
      EXPECT_EQ(texts(join(a, h.port(), "/")), (Texts{"volatile"}));
    }
    ChatHarness h;
    ASSERT_TRUE(h.start(file_config(path))) << h.error();
    WsClient a;
    EXPECT_EQ(join(a, h.port(), "/"), R"({"msg":[]})") << path;
  }
  EXPECT_FALSE(std::filesystem::exists(":memory:"));
}

TEST(ChatDurability, BadStoreFailsAtStart) {
  TempDir dir;
  const std::string garbage = dir.file("garbage.db");
  {
    std::ofstream f(garbage, std::ios::binary);
    for (int i = 0; i < 200; ++i) f << "definitely not sqlite ";
  }
  ChatHarness h1;
  EXPECT_FALSE(h1.start(file_config(garbage)));
  EXPECT_EQ(h1.code(), kEStorage);
  EXPECT_NE(h1.error().find(garbage), std::string::npos) << h1.error();
  EXPECT_NE(h1.error().find("not a database"), std::string::npos) << h1.error();

  ChatHarness h2;  // a directory where the file should be
  EXPECT_FALSE(h2.start(file_config(dir.path())));
  EXPECT_EQ(h2.code(), kEStorage);

  ChatHarness h3;  // parent directory missing
  EXPECT_FALSE(h3.start(file_config(dir.file("no/such/dir/chat.db"))));
  EXPECT_EQ(h3.code(), kEStorage);

  // Two servers on one file: the second is refused, not interleaved.
  ChatHarness owner, second;
  ASSERT_TRUE(owner.start(file_config(dir.file("shared.db")))) << owner.error();
  EXPECT_FALSE(second.start(file_config(dir.file("shared.db"))));
  EXPECT_EQ(second.code(), kEStorage);
  EXPECT_NE(second.error().find("locked"), std::string::npos) << second.error();
}

// Makes every write past the WAL's current end fail (EFBIG, as a full disk
// fails with ENOSPC) until destroyed. Process-wide: RLIMIT_FSIZE.
class WalFull {
 public:
  explicit WalFull(const std::string& db) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_ = std::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills us
    struct rlimit small = saved_;
    small.rlim_cur = std::filesystem::file_size(db + "-wal");
    ok_ = setrlimit(RLIMIT_FSIZE, &small) == 0;
  }
  ~WalFull() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_);
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit saved_;
  void (*old_)(int);
  bool ok_ = false;
};

// The chat's log lines as its log sink (the host's on_log) got them.
struct LogLines {
  std::mutex mu;
  std::vector<std::pair<LogLevel, std::string>> lines;
  bool has(LogLevel level, const std::string& part) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [l, text] : lines)
      if (l == level && text.find(part) != std::string::npos) return true;
    return false;
  }
};

TEST(ChatDurability, CommitFailureIsReportedNotDeliveredThenRecovers) {
  TempDir dir;
  const std::string db = dir.file("chat.db");
  LogLines log;
  {
    ChatHarness h;
    chat::ChatConfig cfg = file_config(db);
    cfg.log = [&log](LogLevel level, std::string_view line) {
      std::lock_guard<std::mutex> lock(log.mu);
      log.lines.emplace_back(level, std::string(line));
    };
    ASSERT_TRUE(h.start(cfg)) << h.error();
    WsClient a, b, v;
    ASSERT_EQ(join(a, h.port(), "/rooms/f"), R"({"msg":[]})");
    ASSERT_EQ(join(b, h.port(), "/rooms/f"), R"({"msg":[]})");
    V1 f;
    ASSERT_TRUE(decode_v1(join(v, h.port(), "/rooms/f", "chatws.v1"), &f));
    ASSERT_TRUE(a.send_text(msg_json("ann", "ok1")));
    EXPECT_EQ(texts(a.read_text()), (Texts{"ok1"}));
    EXPECT_EQ(texts(b.read_text()), (Texts{"ok1"}));
    ASSERT_TRUE(decode_v1(v.read_text(), &f));
    EXPECT_EQ(f.msg.id, 1);
    {
      WalFull full(db);
      ASSERT_TRUE(full.ok());
      ASSERT_TRUE(a.send_text(msg_json("ann", std::string(2000, 'L'))));
      EXPECT_EQ(decode_classic_error(a.read_text()), "storage unavailable");
      EXPECT_TRUE(h.on_loop([](chat::ChatService& c) { return c.storage_failing(); }));
      // Still failing: every try is answered, in each client's format.
      ASSERT_TRUE(v.send_text(msg_json("vic", "lost too")));
      ASSERT_TRUE(decode_v1(v.read_text(), &f));
      EXPECT_EQ(f.type, "error");
      EXPECT_EQ(f.error, "storage unavailable");
      EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("f", "bot", "lost post"); }), kEStorage);
      EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("empty-room", "bot", "lost post"); }),
                kEStorage);
      // Said in the host's log (never on stderr of the library's own).
      EXPECT_TRUE(log.has(LogLevel::Error, "chat: 1 message(s) not stored, not delivered: history store: "));
    }
    // The store works again: the next message goes through, and nothing of
    // the failed ones was ever delivered (b's next frame is this one).
    ASSERT_TRUE(a.send_text(msg_json("ann", "ok2")));
    EXPECT_EQ(texts(a.read_text()), (Texts{"ok2", "ok1"}));
    EXPECT_EQ(texts(b.read_text()), (Texts{"ok2", "ok1"}));
    ASSERT_TRUE(decode_v1(v.read_text(), &f));
    EXPECT_EQ(f.type, "msg");
    EXPECT_EQ(f.msg.text, "ok2");
    EXPECT_EQ(f.msg.id, 2);  // the failed ones' ids were given back
    EXPECT_FALSE(h.on_loop([](chat::ChatService& c) { return c.storage_failing(); }));
    EXPECT_TRUE(log.has(LogLevel::Warning, "chat: history store writable again"));
    EXPECT_EQ(h.on_loop([](chat::ChatService& c) { return c.post("empty-room", "bot", "kept"); }), kOk);
  }
  ChatHarness h;
  ASSERT_TRUE(h.start(file_config(db))) << h.error();
  WsClient a, e;
  EXPECT_EQ(texts(join(a, h.port(), "/rooms/f")), (Texts{"ok2", "ok1"}));
  EXPECT_EQ(texts(join(e, h.port(), "/rooms/empty-room")), (Texts{"kept"}));
}

// The rule the whole design serves: a message anyone has seen survives
// kill -9 of the server process.
TEST(ChatDurability, DeliveredMessagesSurviveKill9) {
  TempDir dir;
  const std::string db = dir.file("chat.db");
  int port_pipe[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the server process
    close(port_pipe[0]);
    ChatHarness h;
    uint16_t port = h.start(file_config(db)) ? h.port() : 0;
    if (write(port_pipe[1], &port, sizeof port) != sizeof port) _exit(2);
    for (;;) pause();  // until SIGKILL
  }
  close(port_pipe[1]);
  uint16_t port = 0;
  const bool got_port = read(port_pipe[0], &port, sizeof port) == sizeof port;
  close(port_pipe[0]);
  Texts seen;
  if (got_port && port != 0) {
    WsClient a;
    join(a, port, "/rooms/k");
    for (int i = 1; i <= 5; ++i) {
      a.send_text(msg_json("ann", "k" + std::to_string(i)));
      Texts t = texts(a.read_text());
      if (!t.empty()) seen = t;
    }
  }
  kill(child, SIGKILL);  // no flush, no destructor, no close
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_TRUE(got_port && port != 0);
  ASSERT_EQ(seen, (Texts{"k5", "k4", "k3", "k2", "k1"}));

  ChatHarness h;
  ASSERT_TRUE(h.start(file_config(db))) << h.error();
  WsClient a;
  EXPECT_EQ(texts(join(a, h.port(), "/rooms/k")), seen);
}

}  // namespace
}  // namespace chatws::test
