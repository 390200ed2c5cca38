// CPU time and memory of a process, from /proc (the server under test) or
// getrusage (the load generator itself).
#pragma once

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace chatws::bench {

struct ProcSample {
  double cpu_s = 0;   // utime + stime of all the process's threads
  long rss_kb = 0;    // VmRSS
};

// Reads /proc/<pid>/stat and /proc/<pid>/status; nullopt if the process is gone.
std::optional<ProcSample> sample_process(pid_t pid);

// CPU seconds (user + system) used so far by this process.
double self_cpu_seconds();

// Monotonic clock in nanoseconds.
uint64_t now_ns();

}  // namespace chatws::bench
