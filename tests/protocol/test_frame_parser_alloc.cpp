// FrameParser memory: a header's announced length must not make the parser
// allocate ahead of the data. Measured by replacing the global operator new
// in this test binary and recording the largest single request while a
// probe is armed.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "parser_recorder.h"
#include "protocol/frame_parser.h"

// GCC cannot see that these replacements pair malloc with free consistently.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> g_probe{false};
std::atomic<size_t> g_largest{0};
}  // namespace

void* operator new(size_t n) {
  if (g_probe.load(std::memory_order_relaxed)) {
    size_t cur = g_largest.load(std::memory_order_relaxed);
    while (n > cur && !g_largest.compare_exchange_weak(cur, n)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace chatws::protocol {
namespace {

using namespace chatws::protocol::testing;

// Largest single allocation made while `f` runs.
template <class F>
size_t largest_allocation(F f) {
  g_largest = 0;
  g_probe = true;
  f();
  g_probe = false;
  return g_largest;
}

TEST(FrameParserAlloc, LyingHeaderDoesNotAllocateTheAnnouncedLength) {
  // Announces 16 MiB - 1 (within the default limit), sends 10 bytes.
  std::string h = raw({0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4});
  h += std::string(10, 'x');
  FrameParser p;
  Recorder r;
  size_t largest = largest_allocation([&] {
    p.consume(reinterpret_cast<uint8_t*>(h.data()), h.size(), r);
  });
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(p.buffered(), 10u);
  EXPECT_LE(largest, 128u * 1024) << "reserved from the announced length";
}

TEST(FrameParserAlloc, LyingFragmentedHeadersStayBounded) {
  // Many partial fragments each announcing a big remainder.
  FrameParser p;
  Recorder r;
  std::string first = raw({0x02, 0x80 | 126, 0x10, 0x00, 0, 0, 0, 0}) + std::string(0x1000, 'a');
  size_t largest = largest_allocation([&] {
    p.consume(reinterpret_cast<uint8_t*>(first.data()), first.size(), r);
    std::string cont = raw({0x80, 0x80 | 127, 0, 0, 0, 0, 0, 0xF0, 0, 0, 0, 0, 0, 0}) + "b";
    p.consume(reinterpret_cast<uint8_t*>(cont.data()), cont.size(), r);
  });
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(p.buffered(), 0x1000u + 1);
  EXPECT_LE(largest, 0x1000u * 2 + 128u * 1024);
}

TEST(FrameParserAlloc, OversizedHeaderRejectedWithoutAllocating) {
  std::string h = raw({0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  FrameParser p;
  Recorder r;
  r.events.reserve(4);  // the recorder's own bookkeeping, not the parser's
  size_t largest = largest_allocation([&] {
    p.consume(reinterpret_cast<uint8_t*>(h.data()), h.size(), r);
  });
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0], error_ev(1009));
  EXPECT_LE(largest, 256u) << "nothing sized from the header";
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(FrameParserAlloc, ZeroCopyPathDoesNotAllocate) {
  std::string s = cframe(Opcode::Binary, std::string(100000, 'z'));
  FrameParser p;
  size_t count = 0;
  struct Counting {
    size_t* n;
    bool on_message(Opcode, const char*, size_t len) {
      *n += len;
      return true;
    }
    bool on_ping(const char*, size_t) { return true; }
    bool on_pong(const char*, size_t) { return true; }
    bool on_close(uint16_t, std::string_view) { return true; }
    void on_error(uint16_t, const char*) {}
  } h{&count};
  size_t largest = largest_allocation([&] {
    p.consume(reinterpret_cast<uint8_t*>(s.data()), s.size(), h);
  });
  EXPECT_EQ(count, 100000u);
  EXPECT_EQ(largest, 0u);
}

TEST(FrameParserAlloc, LargeMessageInSmallReadsGrowsGeometrically) {
  // 4 MiB in 4 KiB reads: reassembly must not be quadratic; check the
  // result and that the buffer never exceeds twice the data plus the slack.
  std::string payload(4u << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31);
  std::string s = cframe(Opcode::Binary, payload);
  FrameParser p;
  Recorder r;
  size_t largest = largest_allocation([&] {
    for (size_t i = 0; i < s.size(); i += 4096) {
      size_t n = std::min<size_t>(4096, s.size() - i);
      p.consume(reinterpret_cast<uint8_t*>(s.data()) + i, n, r);
    }
  });
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_TRUE(r.events[0] == binary(payload));
  EXPECT_LE(largest, 2 * payload.size() + 128u * 1024);
}

}  // namespace
}  // namespace chatws::protocol
