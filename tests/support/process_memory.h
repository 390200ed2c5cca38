// The resident set of the test process, for attack tests that run the
// server in-process and check its memory stays within a stated bound.
// Under a sanitizer (quarantined frees, shadow memory) RSS says nothing, so
// kMeasureMemory is false there and only the behaviour is checked.
#pragma once

#include <malloc.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace chatws::test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kMeasureMemory = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
inline constexpr bool kMeasureMemory = false;
#else
inline constexpr bool kMeasureMemory = true;
#endif
#else
inline constexpr bool kMeasureMemory = true;
#endif

inline constexpr size_t kMiB = 1024 * 1024;

// Resident set of this process, after handing freed heap back to the OS.
inline size_t rss_bytes() {
  malloc_trim(0);
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return size_t(resident) * size_t(sysconf(_SC_PAGESIZE));
}

}  // namespace chatws::test
