// chatws-loadgen: an epoll WebSocket load generator for comparing servers on
// echo, broadcast and idle-connection workloads, on one thread or (--threads)
// several shards of the connections. See BENCHMARKS.md.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

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

  Result r;
  if (opts.threads == 1) {
    LoadGenerator gen(opts);
    r = gen.run();
  } else {
    PhaseSync sync(opts.threads);
    std::vector<std::unique_ptr<LoadGenerator>> gens;
    std::vector<Result> results(size_t(opts.threads));
    for (int i = 0; i < opts.threads; ++i) gens.push_back(std::make_unique<LoadGenerator>(opts, i, &sync));
    std::vector<std::thread> threads;
    for (int i = 1; i < opts.threads; ++i)
      threads.emplace_back([&, i] { results[size_t(i)] = gens[size_t(i)]->run(); });
    results[0] = gens[0]->run();
    for (auto& t : threads) t.join();
    r = results[0];
    for (size_t i = 1; i < results.size(); ++i) r.merge(results[i]);
  }
  print_report(stdout, opts, r);
  std::fflush(stdout);
  return (r.errors || r.unexpected_closes || r.opened < opts.connections) ? 1 : 0;
}
