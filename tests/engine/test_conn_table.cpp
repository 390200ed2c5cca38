// ConnTable (open addressing, linear probing, backward-shift deletion):
// checked against std::unordered_map under random operations, plus the
// cases that stress its edges: empty tables, absent and stale ids, probe
// runs that wrap around the end of the slot array, grow/shrink cycles.
// Also Connection's compact peer address (the table's element type).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "server/conn_table.h"
#include "server/connection.h"

namespace chatws {
namespace {

// Owns the Connection objects the table points at (the table owns nothing).
class Conns {
 public:
  Connection* make(ConnId id) {
    owned_.push_back(std::make_unique<Connection>(limits_));
    owned_.back()->id = id;
    return owned_.back().get();
  }

 private:
  protocol::ParserLimits limits_;
  std::vector<std::unique_ptr<Connection>> owned_;
};

using Model = std::unordered_map<ConnId, Connection*>;

// A new connection with `id`, inserted into the table and recorded in the model.
void add(Conns& conns, ConnTable& t, Model& model, ConnId id) {
  Connection* c = conns.make(id);
  t.insert(c);
  model[id] = c;
}

// Every member reachable by find(), iteration visits each exactly once, and
// size() agrees with the model.
void expect_matches(const ConnTable& t, const Model& model) {
  ASSERT_EQ(t.size(), model.size());
  ASSERT_EQ(t.empty(), model.empty());
  for (const auto& [id, c] : model) ASSERT_EQ(t.find(id), c) << "id " << id;
  std::unordered_set<ConnId> seen;
  for (Connection* c : t) {
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(seen.insert(c->id).second) << "id " << c->id << " visited twice";
    auto it = model.find(c->id);
    ASSERT_NE(it, model.end()) << "id " << c->id << " not in the model";
    ASSERT_EQ(it->second, c);
  }
  ASSERT_EQ(seen.size(), model.size());
}

// The slot a given id hashes to at capacity `cap` (mirrors the table's
// Fibonacci hashing; used only to pick ids that collide on purpose).
size_t home_at(ConnId id, size_t cap) {
  unsigned shift = 64 - unsigned(__builtin_ctzll(cap));
  return size_t((id * 0x9E3779B97F4A7C15ull) >> shift);
}

TEST(ConnTable, EmptyTableFindAndEraseAreNoOps) {
  ConnTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(0), nullptr);
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_EQ(t.find(UINT64_MAX), nullptr);
  t.erase(1);  // no slot array yet
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.begin() != t.end());
}

TEST(ConnTable, EraseAbsentIdLeavesOthersIntact) {
  Conns conns;
  ConnTable t;
  Model model;
  for (ConnId id = 1; id <= 40; ++id) {
    add(conns, t, model, id);
  }
  for (ConnId absent : {ConnId(0), ConnId(41), ConnId(1000), ConnId(UINT64_MAX)}) {
    t.erase(absent);
    EXPECT_EQ(t.find(absent), nullptr);
    expect_matches(t, model);
  }
  // Erasing twice: the second one is an absent id.
  t.erase(7);
  model.erase(7);
  t.erase(7);
  expect_matches(t, model);
}

TEST(ConnTable, StaleIdsAreNotFoundAfterErase) {
  Conns conns;
  ConnTable t;
  Model model;
  // Sequential, never-reused ids, as the server assigns them.
  for (ConnId id = 1; id <= 5000; ++id) {
    add(conns, t, model, id);
  }
  for (ConnId id = 2; id <= 5000; id += 2) {
    t.erase(id);
    model.erase(id);
  }
  expect_matches(t, model);
  for (ConnId id = 2; id <= 5000; id += 2) ASSERT_EQ(t.find(id), nullptr) << "stale id " << id;
  // Drain fully: the table keeps a slot array but holds nothing.
  for (ConnId id = 1; id <= 5000; id += 2) {
    t.erase(id);
    model.erase(id);
  }
  expect_matches(t, model);
  for (ConnId id = 0; id <= 5001; ++id) ASSERT_EQ(t.find(id), nullptr);
  // Reusable after draining.
  Connection* c = conns.make(5001);
  t.insert(c);
  EXPECT_EQ(t.find(5001), c);
  EXPECT_EQ(t.size(), 1u);
}

// Ids that all hash near the end of a 64-slot table make probe runs that
// wrap to slot 0; erasing from them in random order exercises the backward
// shift's cyclic interval test. At most 48 members keep the capacity at 64.
TEST(ConnTable, CollidingIdsWrappingTheSlotArray) {
  constexpr size_t kCap = 64;  // the first capacity the table allocates
  std::vector<ConnId> ids;
  for (ConnId id = 1; ids.size() < 200; ++id) {
    size_t h = home_at(id, kCap);
    if (h >= kCap - 3 || h <= 1) ids.push_back(id);
  }
  std::mt19937_64 rng(7);
  Conns conns;
  for (int round = 0; round < 30; ++round) {
    ConnTable t;
    Model model;
    std::shuffle(ids.begin(), ids.end(), rng);
    for (size_t i = 0; i < 48; ++i) {
      add(conns, t, model, ids[i]);
    }
    expect_matches(t, model);
    std::vector<ConnId> order(ids.begin(), ids.begin() + 48);
    std::shuffle(order.begin(), order.end(), rng);
    for (ConnId id : order) {
      t.erase(id);
      model.erase(id);
      expect_matches(t, model);
      // Colliding ids never inserted must stay absent as runs shift.
      for (size_t i = 48; i < 56; ++i) ASSERT_EQ(t.find(ids[i]), nullptr);
    }
  }
}

// Mass connect / mass disconnect, repeatedly: the table grows past the
// shrink threshold (capacity > 1024) and gives memory back, with every
// survivor still reachable after each rehash.
TEST(ConnTable, GrowShrinkCycles) {
  Conns conns;
  ConnTable t;
  Model model;
  std::mt19937_64 rng(11);
  ConnId next = 1;
  for (int cycle = 0; cycle < 4; ++cycle) {
    while (model.size() < 6000) {
      add(conns, t, model, next++);
    }
    expect_matches(t, model);
    // Disconnect in random order down to a handful.
    std::vector<ConnId> live;
    for (const auto& kv : model) live.push_back(kv.first);
    std::shuffle(live.begin(), live.end(), rng);
    for (size_t i = 0; i + 10 < live.size(); ++i) {
      t.erase(live[i]);
      model.erase(live[i]);
      if (i % 997 == 0) expect_matches(t, model);
    }
    expect_matches(t, model);
    for (size_t i = 0; i + 10 < live.size(); ++i) ASSERT_EQ(t.find(live[i]), nullptr);
  }
}

// Random inserts (sequential ids), erases and lookups of present, erased
// and never-issued ids, with the live count swinging between ~50 and ~3000
// so both growth and shrinking rehashes happen mid-stream.
TEST(ConnTable, ModelBasedAgainstUnorderedMap) {
  Conns conns;
  ConnTable t;
  Model model;
  std::mt19937_64 rng(42);
  ConnId next = 1;
  for (int step = 0; step < 60000; ++step) {
    const size_t target = (step / 7500) % 2 ? 50 : 3000;
    const unsigned op = unsigned(rng() % 10);
    if (op < 5 && model.size() < target + rng() % 500) {
      add(conns, t, model, next++);
    } else if (op < 8) {
      const ConnId id = 1 + rng() % next;  // may be erased already, or == next
      const auto it = model.find(id);
      t.erase(id);
      if (it != model.end()) model.erase(it);
      ASSERT_EQ(t.find(id), nullptr);
      ASSERT_EQ(t.size(), model.size());
    } else {
      const ConnId id = rng() % (next + 2);
      const auto it = model.find(id);
      ASSERT_EQ(t.find(id), it == model.end() ? nullptr : it->second) << "step " << step;
    }
    if (step % 5000 == 0) expect_matches(t, model);
  }
  expect_matches(t, model);
}

// Connection keeps the peer address in binary until the host asks for it;
// text produced by inet_ntop (what net::Acceptor reports) must come back
// unchanged, for IPv4, IPv6 and IPv4-mapped IPv6 peers. IPv4 (mapped or
// not) fits in the connection itself; other IPv6 addresses go to its cold
// part, which therefore must outlive the handshake.
TEST(ConnectionAddress, BinaryRoundTrip) {
  protocol::ParserLimits limits;
  struct Case {
    const char* text;
    bool cold;
  };
  const Case cases[] = {
      {"127.0.0.1", false},         {"10.1.2.3", false},
      {"0.0.0.0", false},           {"255.255.255.255", false},
      {"::1", true},                {"::", true},
      {"2001:db8::1:0:0:1", true},  {"fe80::1ff:fe23:4567:890a", true},
      {"::ffff:127.0.0.1", false},  {"::ffff:10.0.0.255", false},
      {"2001:db8:85a3:8d3:1319:8a2e:370:7348", true},
  };
  for (const Case& k : cases) {
    Connection c(limits);
    c.start_http(1024);
    ASSERT_TRUE(c.set_address(k.text)) << k.text;
    c.end_http();  // the cold part goes unless the address lives there
    EXPECT_EQ(c.has_cold(), k.cold) << k.text;
    EXPECT_EQ(c.address(), k.text);
  }
}

TEST(ConnectionAddress, NonAddressTextIsRejected) {
  protocol::ParserLimits limits;
  for (const char* text : {"", "localhost", "1.2.3", "::g", "unix:/tmp/s"}) {
    Connection c(limits);
    EXPECT_FALSE(c.set_address(text)) << text;
  }
}

}  // namespace
}  // namespace chatws
