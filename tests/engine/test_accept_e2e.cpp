// Accepting: when the process has no descriptor left the listener must not
// spin, and accepting resumes once descriptors come back (the server is
// driven with Server::poll() from the test thread, so nothing is accepted
// before the test has taken the descriptors away); and the per-address limit
// counts an IPv6 network prefix as one address.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "net/socket.h"
#include "support/test_server.h"
#include "support/ws_client.h"

using namespace chatws;
using namespace chatws::test;
using Clock = std::chrono::steady_clock;

namespace {

struct IterationCounter : RecordingHandler {
  uint64_t iterations = 0;  // loop thread = this thread (poll())
  void on_iteration_end() override { ++iterations; }
};

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

// Lowers RLIMIT_NOFILE for the scope: with a soft limit of 0 no descriptor
// can be created at all, so the server cannot accept, nor shed (its spare
// descriptor, once given up, cannot be reopened).
struct NoDescriptors {
  rlimit old{};
  bool ok = false;
  NoDescriptors() {
    getrlimit(RLIMIT_NOFILE, &old);
    rlimit none = old;
    none.rlim_cur = 0;
    ok = setrlimit(RLIMIT_NOFILE, &none) == 0;
  }
  void restore() {
    if (ok) setrlimit(RLIMIT_NOFILE, &old);
    ok = false;
  }
  ~NoDescriptors() { restore(); }
};

TEST(AcceptExhaustion, ListenerDoesNotSpinWhenItCannotShedAndResumesAfter) {
  IterationCounter h;
  std::string err;
  int code = 0;
  auto server = Server::create(ServerConfig{}, &h, &err, &code);
  ASSERT_TRUE(server) << err;
  h.server = server.get();
  // A few idle iterations first: UBSan checks each virtual call's target
  // once and caches the verdict, and its first check needs descriptors (it
  // probes memory through a pipe), which the window below has none of.
  for (int i = 0; i < 3; ++i) ASSERT_GE(server->poll(0), 0);

  // Connected (the kernel completes the handshake into the backlog) and the
  // upgrade request written, all before the descriptors run out.
  WsClient c;
  ASSERT_TRUE(c.open(server->port()));
  const std::string upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " + std::string(WsClient::kKey) +
                              "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ASSERT_TRUE(c.write_all(upgrade));

  NoDescriptors none;
  ASSERT_TRUE(none.ok);
  // Observe the loop for a fixed window while the connection stays pending.
  // A level-triggered listener that keeps failing makes every poll() return
  // at once: tens of thousands of iterations; paused, it wakes only for its
  // retries (about every 100 ms) and timer ticks.
  const auto window = std::chrono::milliseconds(400);
  const double cpu0 = process_cpu_ms();
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < window) ASSERT_GE(server->poll(50), 0);
  const double cpu_ms = process_cpu_ms() - cpu0;
  const uint64_t spun = h.iterations;
  EXPECT_LE(spun, 40u) << "loop iterations in " << window.count() << " ms without descriptors (CPU "
                       << cpu_ms << " ms)";
  EXPECT_EQ(h.count(Event::Open), 0u);
  none.restore();

  // Descriptors are back: the pending connection is accepted and upgraded.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (h.count(Event::Open) == 0 && Clock::now() < deadline) ASSERT_GE(server->poll(50), 0);
  ASSERT_EQ(h.count(Event::Open), 1u) << "not accepted after descriptors came back";
  auto resp = c.read_http_response(2000);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->rfind("HTTP/1.1 101", 0), 0u) << *resp;
  std::printf("[ info ] %llu iterations, %.1f ms CPU in %lld ms without descriptors\n",
              static_cast<unsigned long long>(spun), cpu_ms, static_cast<long long>(window.count()));
}

// ---------------------------------------------------- per-address keying

TEST(AddressGroup, Ipv4IsKeyedWholeAndMappedIpv4LikeIpv4) {
  EXPECT_EQ(net::address_group("192.0.2.7", 64), "192.0.2.7");
  EXPECT_NE(net::address_group("192.0.2.7", 64), net::address_group("192.0.2.8", 64));
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: same client.
  EXPECT_EQ(net::address_group("::ffff:192.0.2.7", 64), net::address_group("192.0.2.7", 64));
  EXPECT_EQ(net::address_group("::ffff:192.0.2.7", 1), "192.0.2.7");
}

TEST(AddressGroup, Ipv6IsKeyedByItsPrefix) {
  const auto g = [](const char* a, unsigned bits) { return net::address_group(a, bits); };
  // One /64: every address a host can pick from its prefix is one client.
  EXPECT_EQ(g("2001:db8:1:2::1", 64), g("2001:db8:1:2:ffff:ffff:ffff:ffff", 64));
  EXPECT_EQ(g("2001:db8:1:2::1", 64), "2001:db8:1:2::/64");
  EXPECT_NE(g("2001:db8:1:2::1", 64), g("2001:db8:1:3::1", 64));
  // Bit-exact at a prefix that is not a multiple of 8.
  EXPECT_EQ(g("2001:db8:1:2::", 61), g("2001:db8:1:7::", 61));
  EXPECT_NE(g("2001:db8:1:2::", 61), g("2001:db8:1:8::", 61));
  EXPECT_EQ(g("2001:db8:1:7::", 61), "2001:db8:1::/61");
  // 128: the whole address, as before.
  EXPECT_NE(g("2001:db8::1", 128), g("2001:db8::2", 128));
  EXPECT_EQ(g("2001:db8::1", 128), "2001:db8::1/128");
  // Loopback is an address like any other.
  EXPECT_EQ(g("::1", 64), "::/64");
  // Not an address (not expected from the acceptor): keyed as given.
  EXPECT_EQ(g("not-an-address", 64), "not-an-address");
}

// The limit over real IPv6 connections from distinct addresses. Loopback has
// only ::1, so the test runs in a network namespace of its own (a forked
// child: the machine's interfaces are never touched) where two /64s are
// routed to lo as local, so clients can bind (IP_FREEBIND) any address in them.

// Writes `text` to `path` (for the namespace's uid/gid maps).
bool write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  ::close(fd);
  return ok;
}

// In the calling (single-threaded) process: a new network namespace with lo
// up and 2001:db8:1:2::/64 and 2001:db8:1:3::/64 local on it. Root gets the
// namespace directly; an unprivileged user through a user namespace of its
// own. "" on success, else why not.
std::string enter_test_network() {
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (::unshare(CLONE_NEWNET) != 0) {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
      return std::string("unshare: ") + std::strerror(errno);
    write_file("/proc/self/setgroups", "deny");
    if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
        !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"))
      return "cannot map the user namespace";
  }
  const char* setup =
      "ip link set lo up && ip -6 route add local 2001:db8:1:2::/64 dev lo && "
      "ip -6 route add local 2001:db8:1:3::/64 dev lo";
  if (std::system(setup) != 0) return std::string("network setup failed: ") + setup;
  return {};
}

// A client from `source` (bound to it) to [::1]:port: the upgrade's HTTP
// status, or -1. The socket stays open in *keep, so it still counts.
int upgrade_from(const char* source, uint16_t port, std::vector<int>* keep) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  keep->push_back(fd);
  sockaddr_in6 src{};
  src.sin6_family = AF_INET6;
  if (inet_pton(AF_INET6, source, &src.sin6_addr) != 1) return -1;
  // The address is routed to lo as local but not assigned: binding to it
  // needs IP_FREEBIND (the connection itself is ordinary).
  int one = 1;
  setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return -1;
  sockaddr_in6 dst{};
  dst.sin6_family = AF_INET6;
  dst.sin6_port = htons(port);
  inet_pton(AF_INET6, "::1", &dst.sin6_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) return -1;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: " + std::string(WsClient::kKey) +
                          "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) return -1;
  std::string resp;
  char buf[1024];
  while (resp.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    resp.append(buf, size_t(n));
  }
  return resp.size() > 12 ? std::atoi(resp.c_str() + 9) : -1;
}

// In the namespace: two connections per /64 (the default prefix), so a third
// address of the same /64 is refused while other networks are not; with a
// /128 prefix every address counts on its own.
void check_limit_in_namespace() {
  {
    RecordingHandler h;
    ServerConfig cfg;
    cfg.host = "::1";
    cfg.max_connections_per_ip = 2;  // ipv6_prefix_length: the default, 64
    ServerThread st(cfg, &h);
    ASSERT_TRUE(st.server) << st.error;
    std::vector<int> fds;
    EXPECT_EQ(upgrade_from("2001:db8:1:2::1", st.port(), &fds), 101);
    EXPECT_EQ(upgrade_from("2001:db8:1:2:aaaa:bbbb:cccc:dddd", st.port(), &fds), 101);
    EXPECT_EQ(upgrade_from("2001:db8:1:2::3", st.port(), &fds), 503) << "a third address of one /64";
    EXPECT_EQ(upgrade_from("2001:db8:1:2:ffff::9", st.port(), &fds), 503);
    EXPECT_EQ(upgrade_from("2001:db8:1:3::1", st.port(), &fds), 101) << "another /64";
    EXPECT_EQ(upgrade_from("::1", st.port(), &fds), 101);
    for (int fd : fds) ::close(fd);
    // The count goes down as they leave: the /64 may connect again.
    ASSERT_TRUE(h.wait_count(Event::Close, 4));
    std::vector<int> again;
    EXPECT_EQ(upgrade_from("2001:db8:1:2::77", st.port(), &again), 101);
    for (int fd : again) ::close(fd);
  }
  {
    RecordingHandler h;
    ServerConfig cfg;
    cfg.host = "::1";
    cfg.max_connections_per_ip = 2;
    cfg.ipv6_prefix_length = 128;
    ServerThread st(cfg, &h);
    ASSERT_TRUE(st.server) << st.error;
    std::vector<int> fds;
    for (const char* a : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"})
      EXPECT_EQ(upgrade_from(a, st.port(), &fds), 101) << a;
    EXPECT_EQ(upgrade_from("2001:db8:1:2::1", st.port(), &fds), 101);
    EXPECT_EQ(upgrade_from("2001:db8:1:2::1", st.port(), &fds), 503) << "a third from one address";
    for (int fd : fds) ::close(fd);
  }
}

TEST(PerAddressLimit, OneIpv6PrefixCountsAsOneAddress) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string why = enter_test_network();
    if (!why.empty()) {
      std::fprintf(stderr, "cannot make the test's network namespace: %s\n", why.c_str());
      _exit(77);
    }
    check_limit_in_namespace();
    std::fflush(stdout);
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the namespace child died (status " << status << ")";
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "no network namespace here: see stderr";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "checks failed in the namespace (above)";
}

}  // namespace
