#include "latency_histogram.h"

#include <bit>
#include <cmath>

namespace chatws::bench {

// Values below 64 map to themselves; above, the top kSubBits+1 significant
// bits select the bucket within the value's power of two.
int LatencyHistogram::index_of(uint64_t v) {
  if (v < (1u << kSubBits)) return int(v);
  int msb = 63 - std::countl_zero(v);            // >= kSubBits
  int shift = msb - kSubBits;                     // >= 0
  int sub = int(v >> shift) - (1 << kSubBits);    // 0 .. 63
  return ((shift + 1) << kSubBits) + sub;
}

uint64_t LatencyHistogram::upper_value(int index) {
  if (index < (1 << kSubBits)) return uint64_t(index);
  int shift = (index >> kSubBits) - 1;
  uint64_t sub = uint64_t(index & ((1 << kSubBits) - 1)) + (1u << kSubBits);
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::record(uint64_t ns) {
  ++counts_[size_t(index_of(ns))];
  ++count_;
  if (ns > max_) max_ = ns;
}

uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  auto rank = uint64_t(std::ceil(p / 100.0 * double(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[size_t(i)];
    if (seen >= rank) {
      uint64_t v = upper_value(i);
      return v < max_ ? v : max_;
    }
  }
  return max_;
}

void LatencyHistogram::clear() {
  counts_.fill(0);
  count_ = 0;
  max_ = 0;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  if (other.max_ > max_) max_ = other.max_;
}

}  // namespace chatws::bench
