// Several event loops in one Server (ServerConfig::threads > 1).
//
// Each loop is a whole Server::Impl: its own epoll, listening socket, con-
// nections, timers, buffers and command queue, run by a thread of its own.
// The loops listen on the same port with SO_REUSEPORT and the kernel spreads
// new connections over them (by a hash of the 4-tuple): no acceptor thread,
// no hand-over of sockets, and no loop ever waits on another to accept. Or
// (ServerConfig::AcceptMode::Handoff) loop 0 alone listens and hands each
// socket to the loop with the fewest connections (an Adopt command through
// its outbox), which keeps the loops even when connections leave unevenly.
// A connection's id names its loop (id % loops), so a call by id goes
// straight to the owning loop: at once on that loop's thread, queued to it
// from any other.
//
// What crosses loops is a command: a send or close by id, or an encoded
// frame by reference (a broadcast, a room's message: encoded, and
// compressed, once). A loop thread addresses other loops through its outbox,
// handed over at the end of its iteration in one batch per loop (one lock,
// at most one eventfd write); a loop's own per-message path takes no lock.
// Loop 0 is the Server's own Impl (and owns the group); it also serves the
// metrics listener.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/server.h"

namespace chatws {

class LoopGroup {
 public:
  static constexpr unsigned kMaxThreads = 256;

  // threads 0: one loop per core available to the process. Then as
  // Server::create.
  static std::unique_ptr<Server> create(const ServerConfig& cfg, ServerHandler* handler,
                                        std::string* error, int* code);

  size_t size() const { return loops_.size(); }
  Server::Impl* loop(size_t i) const { return loops_[i]; }
  Server::Impl* of(ConnId id) const { return loops_[id % loops_.size()]; }
  // The loop of this group the calling thread runs, or nullptr.
  Server::Impl* current() const;

  // Every loop on a thread of its own; the calling thread runs loop 0 and
  // joins the others before returning (all stopped, or one failed: then the
  // others are stopped). kEState if a thread has loop 0 already.
  int run();
  void stop();
  bool stopped() const;
  void wake();
  // Every loop's teardown, the calling thread holding them all (kEState,
  // nothing done, if any is held elsewhere). `force`: from the destructor,
  // torn down even so.
  int shutdown(bool force);
  // f to every open connection of every loop but `exclude`: at once on the
  // loops the calling thread has, by reference to the others. The number of
  // receivers on the loops served at once.
  int broadcast(SharedFrame* f, ConnId exclude);
  void read_stats(StatsSnapshot* out) const;
  size_t connection_count() const;

  explicit LoopGroup(std::vector<Server::Impl*> loops,
                     std::vector<std::unique_ptr<Server::Impl>> extra);
  ~LoopGroup();

 private:
  int run_other(Server::Impl* l);  // on a thread of its own
  std::vector<Server::Impl*> loops_;                  // [0]: the Server's impl_
  std::vector<std::unique_ptr<Server::Impl>> extra_;  // loops 1..n-1
};

}  // namespace chatws
