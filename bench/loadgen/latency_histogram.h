// Log-linear latency histogram (nanoseconds in, percentiles out): 64 linear
// sub-buckets per power of two, so any percentile is within ~1.6% of the
// truth, in a fixed 30 KiB whatever the number of samples.
#pragma once

#include <array>
#include <cstdint>

namespace chatws::bench {

class LatencyHistogram {
 public:
  void record(uint64_t ns);
  uint64_t count() const { return count_; }
  // Value at percentile p (0..100) in nanoseconds; 0 with no samples.
  uint64_t percentile(double p) const;
  uint64_t max() const { return max_; }
  void clear();
  // Adds another histogram's samples (the shards of a --threads run).
  void merge(const LatencyHistogram& other);

 private:
  static constexpr int kSubBits = 6;                   // 64 sub-buckets
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;
  static int index_of(uint64_t v);
  static uint64_t upper_value(int index);

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace chatws::bench
