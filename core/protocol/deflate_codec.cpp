// permessage-deflate message codec over zlib (raw deflate, RFC 7692 7.2).
//
// Decisions:
// - Inflate output grows geometrically from a small first step and never
//   past max + 1 bytes: a bomb costs what the limit allows, not what it
//   would inflate to. The check is on the output produced, while inflating.
// - A window of 8 bits is inflated with 9: zlib's deflate rounds 8 up to 9,
//   so a peer "using 8" may reach 512 bytes back. A larger inflate window
//   is always safe.
// - A message whose stream ends (a BFINAL block) starts the next one afresh;
//   with context takeover the window is carried into it as a dictionary.
#include "protocol/deflate_codec.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace chatws::protocol {

namespace {
constexpr uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};
constexpr size_t kFirstStep = 1024;
}  // namespace

struct Inflater::Z {
  z_stream s{};
};

struct Deflater::Z {
  z_stream s{};
};

// ------------------------------------------------------------------ inflate

Inflater::Inflater(uint8_t window_bits, bool keep_context)
    : bits_(std::clamp<uint8_t>(window_bits, 9, 15)), keep_(keep_context) {}

Inflater::~Inflater() { close_stream(); }

bool Inflater::open() {
  if (z_) return true;
  auto z = std::make_unique<Z>();
  if (inflateInit2(&z->s, -int(bits_)) != Z_OK) return false;
  if (!saved_window_.empty()) {
    inflateSetDictionary(&z->s, reinterpret_cast<const Bytef*>(saved_window_.data()),
                         uInt(saved_window_.size()));
    std::string().swap(saved_window_);
  }
  z_ = std::move(z);
  return true;
}

void Inflater::close_stream() {
  if (!z_) return;
  inflateEnd(&z_->s);
  z_.reset();
}

void Inflater::release() {
  if (!z_) return;
  if (keep_) {
    uInt n = 0;
    inflateGetDictionary(&z_->s, nullptr, &n);
    saved_window_.resize(n);
    if (n) inflateGetDictionary(&z_->s, reinterpret_cast<Bytef*>(saved_window_.data()), &n);
  }
  close_stream();
}

size_t Inflater::memory() const {
  // zlib's inflate_state (about 7 KiB) plus the window it allocates lazily.
  return (z_ ? 7200 + (size_t(1) << bits_) : 0) + (saved_window_.empty() ? 0 : saved_window_.capacity());
}

Inflater::Result Inflater::inflate_message(const uint8_t* data, size_t len, size_t max,
                                           std::string* out) {
  const Result r = inflate_into(data, len, max, out);
  // A message that failed leaves the stream mid-block: the next one (on
  // another connection, for the shared inflater) must not continue it.
  if (r != Result::Ok && z_) inflateReset(&z_->s);
  if (r != Result::Ok) out->clear();
  return r;
}

Inflater::Result Inflater::inflate_into(const uint8_t* data, size_t len, size_t max,
                                        std::string* out) {
  out->clear();
  if (!open()) return Result::NoMem;
  z_stream& s = z_->s;
  size_t produced = 0;
  // Two inputs: the message, then the tail that ends its last block.
  const uint8_t* inputs[2] = {data, kTail};
  const size_t sizes[2] = {len, sizeof kTail};
  size_t step = std::min(max + 1, std::max(kFirstStep, len * 2));
  for (int part = 0; part < 2; ++part) {
    s.next_in = const_cast<Bytef*>(inputs[part]);
    s.avail_in = uInt(sizes[part]);
    while (s.avail_in > 0) {
      if (produced == out->size()) {
        if (produced > max) return Result::TooBig;
        const size_t grow = std::min(step, max + 1 - std::min(max, produced));
        out->resize(produced + std::max<size_t>(grow, 1));
        step = std::min<size_t>(step * 2, 1u << 20);
      }
      s.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
      s.avail_out = uInt(std::min<size_t>(out->size() - produced, UINT32_MAX));
      const uInt before = s.avail_out;
      const uInt in_before = s.avail_in;
      const int rc = ::inflate(&s, Z_SYNC_FLUSH);
      produced += before - s.avail_out;
      if (rc == Z_BUF_ERROR && s.avail_out != 0 && s.avail_in == in_before) return Result::Bad;
      if (rc == Z_STREAM_END) {
        // A final block: whatever follows it in the message is ignored;
        // the next message starts a stream of its own (see the header).
        uInt n = 0;
        std::string window;
        if (keep_) {
          inflateGetDictionary(&s, nullptr, &n);
          window.resize(n);
          if (n) inflateGetDictionary(&s, reinterpret_cast<Bytef*>(window.data()), &n);
        }
        inflateReset(&s);
        if (n) inflateSetDictionary(&s, reinterpret_cast<const Bytef*>(window.data()), n);
        if (produced > max) return Result::TooBig;
        out->resize(produced);
        return Result::Ok;
      }
      if (rc == Z_MEM_ERROR) return Result::NoMem;
      if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) return Result::Bad;
      if (produced > max) return Result::TooBig;
      // Z_BUF_ERROR: no progress possible (output full: grown above).
    }
  }
  // The tail flushed everything the input holds: more output space cannot
  // produce more unless zlib stopped for lack of it.
  while (s.avail_out == 0) {
    if (produced > max) return Result::TooBig;
    out->resize(produced + std::min(step, max + 1 - std::min(max, produced)) + 1);
    s.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
    s.avail_out = uInt(out->size() - produced);
    const uInt before = s.avail_out;
    const int rc = ::inflate(&s, Z_SYNC_FLUSH);
    produced += before - s.avail_out;
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) return Result::Bad;
    if (rc == Z_MEM_ERROR) return Result::NoMem;
    if (before == s.avail_out) break;
  }
  if (produced > max) return Result::TooBig;
  out->resize(produced);
  if (!keep_) inflateReset(&s);
  return Result::Ok;
}

// ------------------------------------------------------------------ deflate

Deflater::Deflater(uint8_t window_bits, int mem_level, bool keep_context, int level)
    : bits_(std::clamp<uint8_t>(window_bits, 9, 15)),
      mem_level_(int8_t(std::clamp(mem_level, 1, 9))),
      level_(int8_t(std::clamp(level, -1, 9))),
      keep_(keep_context) {}

Deflater::~Deflater() { release(); }

bool Deflater::open() {
  if (z_) return true;
  auto z = std::make_unique<Z>();
  if (deflateInit2(&z->s, level_, Z_DEFLATED, -int(bits_), mem_level_, Z_DEFAULT_STRATEGY) != Z_OK)
    return false;
  z_ = std::move(z);
  return true;
}

void Deflater::release() {
  if (!z_) return;
  deflateEnd(&z_->s);
  z_.reset();
}

bool Deflater::compress(const char* data, size_t len, std::string* out) {
  ++calls_;
  out->clear();
  if (!open()) return false;
  z_stream& s = z_->s;
  // Enough for the stored-block worst case plus the sync flush's marker.
  out->resize(deflateBound(&s, uLong(len)) + 16);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  s.avail_in = uInt(len);
  size_t produced = 0;
  for (;;) {
    s.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
    s.avail_out = uInt(out->size() - produced);
    const uInt before = s.avail_out;
    const int rc = ::deflate(&s, Z_SYNC_FLUSH);
    produced += before - s.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      release();
      return false;
    }
    if (s.avail_out != 0) break;  // all of it flushed
    out->resize(out->size() * 2);
  }
  // The sync flush ends with an empty stored block, 00 00 ff ff: removed.
  if (produced < 4 || std::memcmp(out->data() + produced - 4, kTail, 4) != 0) {
    release();
    return false;
  }
  out->resize(produced - 4);
  if (!keep_) deflateReset(&s);
  return true;
}

}  // namespace chatws::protocol
