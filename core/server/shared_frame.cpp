#include "server/shared_frame.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace chatws {
namespace {

// Size classes of the frame pool (bytes of frame data, header included).
constexpr size_t kClassSize[] = {64, 256, 1024, 4096, 16384};
constexpr uint8_t kClasses = sizeof(kClassSize) / sizeof(kClassSize[0]);
constexpr uint8_t kUnpooled = 0xff;
constexpr size_t kMaxPooledPerClass = 4096;

struct FreeList {
  void* head[kClasses] = {};
  size_t count[kClasses] = {};
  ~FreeList() { release(); }
  void release() {
    for (uint8_t c = 0; c < kClasses; ++c) {
      count[c] = 0;
      while (head[c]) {
        void* next = *static_cast<void**>(head[c]);
        std::free(head[c]);
        head[c] = next;
      }
    }
  }
};
thread_local FreeList g_pool;

}  // namespace

void SharedFrame::trim_pool() { g_pool.release(); }

SharedFrame* SharedFrame::allocate(size_t total) {
  uint8_t cls = kUnpooled;
  for (uint8_t c = 0; c < kClasses; ++c) {
    if (total <= kClassSize[c]) {
      cls = c;
      break;
    }
  }
  void* mem = nullptr;
  if (cls != kUnpooled && g_pool.head[cls]) {
    mem = g_pool.head[cls];
    g_pool.head[cls] = *static_cast<void**>(mem);
    --g_pool.count[cls];
  } else {
    size_t cap = cls == kUnpooled ? total : kClassSize[cls];
    mem = std::malloc(sizeof(SharedFrame) + cap);
    if (!mem) throw std::bad_alloc();
  }
  return new (mem) SharedFrame(total, cls);
}

void SharedFrame::destroy() {
  if (SharedFrame* v = variant_.load(std::memory_order_acquire)) v->unref();  // its own variants follow it down the list
  uint8_t cls = class_;
  this->~SharedFrame();
  void* mem = this;
  if (cls != kUnpooled && g_pool.count[cls] < kMaxPooledPerClass) {
    *static_cast<void**>(mem) = g_pool.head[cls];
    g_pool.head[cls] = mem;
    ++g_pool.count[cls];
    return;
  }
  std::free(mem);
}

SharedFrame* SharedFrame::make(protocol::Opcode op, std::string_view payload) {
  return make2(op, payload, {});
}

SharedFrame* SharedFrame::make2(protocol::Opcode op, std::string_view a, std::string_view b) {
  uint8_t hdr[protocol::kMaxFrameHeader];
  size_t n = a.size() + b.size();
  size_t h = protocol::encode_frame_header(hdr, op, n, true);
  SharedFrame* f = allocate(h + n);
  char* p = f->mutable_data();
  std::memcpy(p, hdr, h);
  if (!a.empty()) std::memcpy(p + h, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + h + a.size(), b.data(), b.size());
  f->kind_ = uint8_t(op);
  f->hdr_len_ = uint8_t(h);
  return f;
}

SharedFrame* SharedFrame::make_compressed(protocol::Opcode op, std::string_view deflated,
                                          uint8_t window_bits) {
  SharedFrame* f = make2(op, deflated, {});
  f->mutable_data()[0] = char(uint8_t(f->data()[0]) | 0x40);  // RSV1: compressed
  f->rsv1_ = true;
  f->window_bits_ = window_bits;
  return f;
}

SharedFrame* SharedFrame::buffer(size_t n) { return allocate(n); }

SharedFrame* SharedFrame::raw(std::string_view a, std::string_view b) {
  SharedFrame* f = allocate(a.size() + b.size());
  char* p = f->mutable_data();
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + a.size(), b.data(), b.size());
  return f;
}

}  // namespace chatws
