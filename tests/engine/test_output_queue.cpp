// OutputQueue: the byte stream it hands to writev (gather + consume) must be
// exactly the pushed frames in order, whatever the write sizes, across the
// inline first slot and the spill array; drop_unstarted() must keep a partly
// written frame; every reference it takes must be given back exactly once;
// clear()/trim() must give the spill array back.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "server/output_queue.h"
#include "server/shared_frame.h"

namespace chatws {
namespace {

uint32_t refs(const SharedFrame* f) { return f->use_count(); }

FrameRef raw(std::string_view bytes) { return FrameRef(SharedFrame::raw(bytes)); }

// What a writev of at most `limit` bytes would send: the gathered iovecs'
// bytes, in order.
std::string gathered(const OutputQueue& q, size_t limit = SIZE_MAX, int max_iov = 64) {
  std::vector<iovec> iov(static_cast<size_t>(max_iov));
  int n = q.gather(iov.data(), max_iov);
  std::string out;
  for (int i = 0; i < n && out.size() < limit; ++i) {
    size_t take = std::min(iov[size_t(i)].iov_len, limit - out.size());
    out.append(static_cast<const char*>(iov[size_t(i)].iov_base), take);
  }
  return out;
}

// Writes everything out in chunks of `chunk` bytes; returns the stream.
std::string drain(OutputQueue& q, size_t chunk) {
  std::string out;
  for (int guard = 0; !q.empty() && guard < 100000; ++guard) {
    std::string s = gathered(q, chunk);
    EXPECT_FALSE(s.empty());
    if (s.empty()) break;
    out += s;
    q.consume(s.size());
  }
  return out;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHATWS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHATWS_TEST_SANITIZED 1
#endif
#endif
#ifdef CHATWS_TEST_SANITIZED
// From <sanitizer/allocator_interface.h>, which GCC does not install; the
// function is in libasan and libtsan alike.
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#endif

// Bytes the C heap has handed out (small and mmapped chunks). Only the
// queue's spill array allocates between two readings in the tests below;
// arrays there are far above the tcache size, so a free shows up at once.
// ASan and TSan replace malloc (mallinfo2 sees none of their heap), so there
// the sanitizer allocator's own count is read.
size_t heap_in_use() {
#ifdef CHATWS_TEST_SANITIZED
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

TEST(OutputQueue, EmptyQueue) {
  OutputQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_FALSE(q.mid_frame());
  iovec iov[4];
  EXPECT_EQ(q.gather(iov, 4), 0);
  q.consume(0);
  q.drop_unstarted();
  q.trim();
  q.clear();
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueue, SingleFrameUsesInlineSlot) {
  FrameRef a = raw("hello");
  {
    OutputQueue q;
    q.push(a.get());
    EXPECT_EQ(refs(a.get()), 2u);
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(q.bytes(), 5u);
    iovec iov[4];
    ASSERT_EQ(q.gather(iov, 4), 1);
    EXPECT_EQ(iov[0].iov_base, a->data());
    EXPECT_EQ(iov[0].iov_len, 5u);
    q.consume(5);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(refs(a.get()), 1u);
    // Again, after the slot was used once.
    q.push(a.get());
    EXPECT_EQ(gathered(q), "hello");
  }
  EXPECT_EQ(refs(a.get()), 1u);  // the destructor gave its reference back
}

TEST(OutputQueue, PushAdoptTakesTheCallersReference) {
  FrameRef a = raw("abc");
  FrameRef extra = a;  // the reference the queue will adopt
  ASSERT_EQ(refs(a.get()), 2u);
  OutputQueue q;
  q.push_adopt(extra.release());
  EXPECT_EQ(refs(a.get()), 2u);
  q.consume(3);
  EXPECT_EQ(refs(a.get()), 1u);
}

// The first frame is partly written while it sits in the inline slot; a
// burst then spills: the offset must follow the frame into the heap array.
TEST(OutputQueue, GatherAcrossInlineSlotAndSpillArray) {
  FrameRef a = raw("AAAAAAAA"), b = raw("BB"), c = raw("CCC"), d = raw("D");
  OutputQueue q;
  q.push(a.get());
  q.consume(3);
  ASSERT_TRUE(q.mid_frame());
  q.push(b.get());
  q.push(c.get());
  q.push(d.get());
  EXPECT_EQ(q.bytes(), 5u + 2 + 3 + 1);
  EXPECT_TRUE(q.mid_frame());

  iovec iov[8];
  ASSERT_EQ(q.gather(iov, 8), 4);
  EXPECT_EQ(iov[0].iov_base, a->data() + 3);
  EXPECT_EQ(iov[0].iov_len, 5u);
  EXPECT_EQ(iov[1].iov_base, b->data());
  EXPECT_EQ(iov[2].iov_base, c->data());
  EXPECT_EQ(iov[3].iov_base, d->data());
  EXPECT_EQ(iov[3].iov_len, 1u);
  ASSERT_EQ(q.gather(iov, 2), 2);  // capped at max
  EXPECT_EQ(iov[1].iov_base, b->data());

  EXPECT_EQ(drain(q, 4), "AAAAABBCCCD");
  for (const FrameRef* f : {&a, &b, &c, &d}) EXPECT_EQ(refs(f->get()), 1u);
}

// Every split point of the stream, including mid-frame and exact frame
// boundaries, in one and then two consume() calls.
TEST(OutputQueue, PartialConsumeAtEveryOffset) {
  const std::vector<std::string> payloads = {"a", "bcde", "fghijklmn", "op", "qrstuvwxyz012345", "678"};
  std::vector<FrameRef> frames;
  std::string stream;
  for (const auto& p : payloads) {
    frames.push_back(raw(p));
    stream += p;
  }
  // Where each frame starts in the stream.
  std::vector<size_t> starts;
  for (size_t i = 0, at = 0; i < payloads.size(); at += payloads[i].size(), ++i) starts.push_back(at);

  for (size_t k = 0; k <= stream.size(); ++k) {
    for (size_t j = 0; j <= stream.size() - k; ++j) {
      SCOPED_TRACE("k=" + std::to_string(k) + " j=" + std::to_string(j));
      OutputQueue q;
      for (auto& f : frames) q.push(f.get());
      q.consume(k);
      ASSERT_EQ(q.bytes(), stream.size() - k);
      q.consume(j);
      const size_t done = k + j;
      ASSERT_EQ(q.bytes(), stream.size() - done);
      ASSERT_EQ(q.empty(), done == stream.size());
      // mid_frame exactly when `done` is not a frame boundary.
      bool boundary = done == stream.size();
      for (size_t s : starts) boundary = boundary || s == done;
      ASSERT_EQ(q.mid_frame(), !boundary);
      if (done < stream.size()) {
        size_t fi = 0;
        while (fi + 1 < starts.size() && starts[fi + 1] <= done) ++fi;
        iovec iov[8];
        ASSERT_EQ(q.gather(iov, 8), int(frames.size() - fi));
        ASSERT_EQ(iov[0].iov_base, frames[fi]->data() + (done - starts[fi]));
      }
      ASSERT_EQ(gathered(q), stream.substr(done));
      q.consume(q.bytes());
      ASSERT_TRUE(q.empty());
      for (auto& f : frames) ASSERT_EQ(refs(f.get()), 1u);
    }
  }
}

TEST(OutputQueue, DropUnstartedKeepsPartlyWrittenFirstFrame) {
  FrameRef a = raw("0123456789"), b = raw("bb"), c = raw("ccc"), e = raw("E");
  OutputQueue q;
  q.push(a.get());
  q.push(b.get());
  q.push(c.get());
  q.consume(4);
  q.drop_unstarted();
  EXPECT_TRUE(q.mid_frame());
  EXPECT_EQ(q.bytes(), 6u);
  EXPECT_EQ(refs(a.get()), 2u);
  EXPECT_EQ(refs(b.get()), 1u);
  EXPECT_EQ(refs(c.get()), 1u);
  iovec iov[4];
  ASSERT_EQ(q.gather(iov, 4), 1);
  EXPECT_EQ(iov[0].iov_base, a->data() + 4);
  // Something queued afterwards (e.g. the close frame) follows the remainder.
  q.push(e.get());
  EXPECT_EQ(drain(q, 3), "456789E");
  for (const FrameRef* f : {&a, &b, &c, &e}) EXPECT_EQ(refs(f->get()), 1u);
}

// The partly written frame is not at the array's start once earlier frames
// were consumed.
TEST(OutputQueue, DropUnstartedAfterEarlierFramesWereWritten) {
  FrameRef a = raw("aaa"), b = raw("bbbb"), c = raw("cc"), d = raw("d");
  OutputQueue q;
  for (const FrameRef* f : {&a, &b, &c, &d}) q.push(f->get());
  q.consume(3 + 1);  // all of a, one byte of b
  q.drop_unstarted();
  EXPECT_EQ(q.bytes(), 3u);
  EXPECT_EQ(gathered(q), "bbb");
  EXPECT_EQ(refs(c.get()), 1u);
  EXPECT_EQ(refs(d.get()), 1u);
  EXPECT_EQ(drain(q, 1), "bbb");
  EXPECT_EQ(refs(a.get()), 1u);
  EXPECT_EQ(refs(b.get()), 1u);
}

TEST(OutputQueue, DropUnstartedAtFrameBoundaryDropsEverything) {
  FrameRef a = raw("aaa"), b = raw("bbbb"), c = raw("cc");
  OutputQueue q;
  for (const FrameRef* f : {&a, &b, &c}) q.push(f->get());
  q.consume(3);  // exactly frame a
  ASSERT_FALSE(q.mid_frame());
  q.drop_unstarted();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  for (const FrameRef* f : {&a, &b, &c}) EXPECT_EQ(refs(f->get()), 1u);
  // Still usable.
  q.push(c.get());
  EXPECT_EQ(drain(q, 100), "cc");
}

// The frames holding the first `keep_bytes` unwritten bytes (a greeting)
// stay, whole; a partly written one counts with what is left of it.
TEST(OutputQueue, DropUnstartedKeepsTheFramesOfTheFirstBytes) {
  FrameRef a = raw("aaa"), b = raw("bbbb"), c = raw("cc"), d = raw("d");
  OutputQueue q;
  for (const FrameRef* f : {&a, &b, &c, &d}) q.push(f->get());
  q.drop_unstarted(4);  // a and one byte of b: a and b stay
  EXPECT_EQ(q.bytes(), 7u);
  EXPECT_EQ(gathered(q), "aaabbbb");
  EXPECT_EQ(refs(c.get()), 1u);
  EXPECT_EQ(refs(d.get()), 1u);
  q.push(c.get());
  q.push(d.get());
  q.consume(2);       // "a" left of a
  q.drop_unstarted(1);  // exactly the rest of a
  EXPECT_EQ(gathered(q), "a");
  q.push(c.get());
  q.push(d.get());
  q.drop_unstarted(100);  // more than queued: everything stays
  EXPECT_EQ(drain(q, 2), "acc" "d");
  for (const FrameRef* f : {&a, &b, &c, &d}) EXPECT_EQ(refs(f->get()), 1u);
}

// A broadcast frame queued many times: clear() returns every reference.
TEST(OutputQueue, ClearReleasesEveryReference) {
  FrameRef shared = raw("broadcast");
  FrameRef own = raw("own");
  OutputQueue q;
  for (int i = 0; i < 100; ++i) q.push(i % 10 == 3 ? own.get() : shared.get());
  EXPECT_EQ(refs(shared.get()), 91u);
  EXPECT_EQ(refs(own.get()), 11u);
  q.consume(5);
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_FALSE(q.mid_frame());
  EXPECT_EQ(refs(shared.get()), 1u);
  EXPECT_EQ(refs(own.get()), 1u);
  q.push(own.get());
  EXPECT_EQ(drain(q, 2), "own");
}

// The spill array of a large burst goes back on clear(); one left behind
// by a queue drained through consume() goes back on trim(), and not before
// the queue is empty.
TEST(OutputQueue, ClearAndTrimGiveTheSpillArrayBack) {
  constexpr int kBurst = 20000;  // a spill array of 32768 pointers
  FrameRef f = raw("x");
  OutputQueue q;

  const size_t base = heap_in_use();
  for (int i = 0; i < kBurst; ++i) q.push(f.get());
  const size_t grown = heap_in_use();
  q.clear();
  const size_t after_clear = heap_in_use();
  EXPECT_GE(grown - base, size_t(kBurst) * sizeof(void*));
  EXPECT_LT(after_clear - base, 4096u);
  EXPECT_EQ(refs(f.get()), 1u);

  for (int i = 0; i < kBurst; ++i) q.push(f.get());
  q.consume(kBurst - 1);
  const size_t busy = heap_in_use();
  q.trim();  // not empty: must keep the array (and the frame)
  const size_t trimmed_busy = heap_in_use();
  q.consume(1);
  const size_t drained = heap_in_use();
  q.trim();
  const size_t trimmed = heap_in_use();
  EXPECT_GE(busy - base, size_t(kBurst) * sizeof(void*));
  EXPECT_EQ(trimmed_busy, busy);
  EXPECT_EQ(drained, busy);  // consume() keeps the array for the next burst
  EXPECT_LT(trimmed - base, 4096u);
  EXPECT_EQ(refs(f.get()), 1u);

  // Usable again after trim(), through the inline slot and a new spill.
  q.push(f.get());
  q.push(f.get());
  EXPECT_EQ(drain(q, 1), "xx");
}

// Random pushes (fresh and shared frames), writes of random size through
// gather() with random iovec limits, drop_unstarted(), trim() and clear(),
// against a deque of (frame, written offset). After every step the queue's
// byte count, mid_frame() and each frame's reference count must match.
TEST(OutputQueue, ModelBasedAgainstDeque) {
  struct Pending {
    SharedFrame* f;
    size_t off;
  };
  std::deque<Pending> model;
  std::unordered_map<SharedFrame*, std::pair<FrameRef, uint32_t>> held;  // frame -> (ours, queued count)
  std::vector<FrameRef> shared;  // frames queued repeatedly, like broadcasts
  std::mt19937_64 rng(42);
  for (int i = 0; i < 6; ++i)
    shared.emplace_back(SharedFrame::make(protocol::Opcode::Text, std::string(size_t(rng() % 200), 's')));

  OutputQueue q;
  auto retire = [&](SharedFrame* f) {  // one queued copy of f left the queue
    auto it = held.find(f);
    ASSERT_NE(it, held.end());
    if (--it->second.second == 0) {
      ASSERT_EQ(refs(f), 1u) << "queue kept or over-released a reference";
      held.erase(it);
    }
  };

  for (int step = 0; step < 20000; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const unsigned op = unsigned(rng() % 16);
    if (op < 6) {
      SharedFrame* f;
      if (rng() % 3 == 0) {
        f = shared[rng() % shared.size()].get();  // `shared` holds our reference
        held.try_emplace(f, FrameRef(), 0u);
      } else {
        std::string p(size_t(rng() % 300), char('a' + step % 26));
        f = SharedFrame::make(protocol::Opcode::Binary, p);
        held.try_emplace(f, FrameRef(f), 0u);  // adopts make()'s reference
      }
      ++held[f].second;
      if (rng() % 2) {
        q.push(f);
      } else {
        f->ref();  // the reference the queue adopts
        q.push_adopt(f);
      }
      model.push_back({f, 0});
    } else if (op < 12) {
      const int max_iov = 1 + int(rng() % 8);
      iovec iov[8];
      const int n = q.gather(iov, max_iov);
      ASSERT_EQ(n, int(std::min<size_t>(model.size(), size_t(max_iov))));
      size_t total = 0;
      for (int i = 0; i < n; ++i) {
        const Pending& p = model[size_t(i)];
        ASSERT_EQ(iov[i].iov_base, p.f->data() + p.off);
        ASSERT_EQ(iov[i].iov_len, p.f->size() - p.off);
        total += iov[i].iov_len;
      }
      size_t w = total ? rng() % (total + 1) : 0;  // a short write is normal
      q.consume(w);
      while (w > 0) {
        Pending& p = model.front();
        const size_t left = p.f->size() - p.off;
        if (w < left) {
          p.off += w;
          w = 0;
        } else {
          w -= left;
          SharedFrame* f = p.f;
          model.pop_front();
          retire(f);
        }
      }
    } else if (op < 14) {
      const size_t keep = !model.empty() && model.front().off ? 1 : 0;
      q.drop_unstarted();
      while (model.size() > keep) {
        SharedFrame* f = model.back().f;
        model.pop_back();
        retire(f);
      }
    } else if (op == 14) {
      q.trim();
    } else if (rng() % 20 == 0) {
      q.clear();
      while (!model.empty()) {
        SharedFrame* f = model.front().f;
        model.pop_front();
        retire(f);
      }
    }
    if (HasFatalFailure()) return;

    size_t bytes = 0;
    for (const Pending& p : model) bytes += p.f->size() - p.off;
    ASSERT_EQ(q.bytes(), bytes);
    ASSERT_EQ(q.empty(), model.empty());
    ASSERT_EQ(q.mid_frame(), !model.empty() && model.front().off != 0);
    for (const auto& [f, h] : held) ASSERT_EQ(refs(f), 1u + h.second);
  }
  q.clear();
  for (const auto& [f, h] : held) EXPECT_EQ(refs(f), 1u);
  for (const FrameRef& f : shared) EXPECT_EQ(refs(f.get()), 1u);
}

}  // namespace
}  // namespace chatws
