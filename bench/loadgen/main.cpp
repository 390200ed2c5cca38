// chatws-loadgen: a single-threaded WebSocket load generator for comparing
// servers on echo, broadcast and idle-connection workloads. See BENCHMARKS.md.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

#include "load_generator.h"
#include "options.h"
#include "report.h"

int main(int argc, char** argv) {
  using namespace chatws::bench;
  Options opts = parse_options(argc, argv);

  // A write to a connection the server has reset must be an error code, not death.
  signal(SIGPIPE, SIG_IGN);

  // One descriptor per connection plus a few: raise the soft limit as far as
  // the hard limit allows (no privilege needed).
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t want = rlim_t(opts.connections) + 64;
    if (rl.rlim_cur < want) {
      rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want)
      std::fprintf(stderr, "chatws-loadgen: warning: RLIMIT_NOFILE %llu < %llu needed\n",
                   (unsigned long long)rl.rlim_cur, (unsigned long long)want);
  }

  LoadGenerator gen(opts);
  Result r = gen.run();
  print_report(stdout, opts, r);
  std::fflush(stdout);
  return (r.errors || r.unexpected_closes || r.opened < opts.connections) ? 1 : 0;
}
