// Command line shared by the C++ peer servers:
//   --mode echo|broadcast --port N [--max-message-size B]
// Same shape as chatws-bench-server so that bench/run.py drives them alike.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace peer {

struct Args {
  bool broadcast = false;
  int port = 0;
  size_t max_message_size = 16u << 20;
};

inline Args parse_args(int argc, char** argv, const char* name) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!std::strcmp(argv[i], "--mode") && v) {
      a.broadcast = !std::strcmp(v, "broadcast");
      if (!a.broadcast && std::strcmp(v, "echo")) {
        std::fprintf(stderr, "%s: --mode echo|broadcast\n", name);
        std::exit(2);
      }
      ++i;
    } else if (!std::strcmp(argv[i], "--port") && v) {
      a.port = std::atoi(v);
      ++i;
    } else if (!std::strcmp(argv[i], "--max-message-size") && v) {
      a.max_message_size = std::strtoull(v, nullptr, 10);
      ++i;
    } else {
      std::fprintf(stderr, "usage: %s --mode echo|broadcast --port N [--max-message-size B]\n", name);
      std::exit(2);
    }
  }
  if (a.port <= 0 || a.port > 65535) {
    std::fprintf(stderr, "%s: --port is required\n", name);
    std::exit(2);
  }
  return a;
}

}  // namespace peer
