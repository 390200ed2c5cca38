// ChatService in cluster mode (ChatConfig::cluster_url): the rooms' order
// and history live in a RoomLog (RedisLog) shared by every node.
//
//   append   pending_ -> one append per room -> log flush (one round trip)
//   deliver  a notification (or our own append's reply) -> read_after the
//            room's last_seen -> ready_ -> deliver_ready() at the end of the
//            iteration, in position order; one read in flight per room
//   join     a room new to this node is read (read_last) before its members
//            are greeted; rooms nobody is in are dropped (their history is
//            read again at the next join: nobody keeps it current meanwhile)
//   outage   appends fail ("storage unavailable"), joins wait for their
//            greeting; when the log is up again every room with members is
//            read from its last_seen (or loaded)
//   trim     each room's last_seen goes to the log (set_read_position, with
//            the iteration's appends, every half retention read and with
//            each presence push), which keeps what this node has not
//            read; entries trimmed anyway (the node stopped reading for
//            longer than its heartbeat lives, or lagged beyond the bound)
//            are a hole the members are told of: "dropped" (v1), the next
//            snapshot (classic); never skipped in silence
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <unordered_map>

#include "chat/chat_service.h"
#include "chat/redis_log.h"

namespace chatws::chat {

namespace {

// A read asks for what the room is known to have (notifications and our
// own appends tell the newest position), between these bounds: a node that
// takes a burst reads it back as fast as it appended it, instead of
// falling further behind by a fixed batch per round trip.
constexpr int64_t kReadBatch = 256, kReadMax = 8192;
// Backpressure (cluster_hold_back): how long a sender is not read.
constexpr int kHoldBackMs = 2;
// How long a sender whose reply was lost waits for the answer (the room
// read again after the reconnect) before it is told "storage unavailable".
constexpr int64_t kUncertainMs = 10000;

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::string default_node_name() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "node") + ":" + std::to_string(getpid());
}

}  // namespace

int ChatService::start_cluster(std::string* error) {
  net::RedisUrl url;
  if (!net::RedisUrl::parse(cfg_.cluster_url, &url, error)) return kEInval;
  node_name_ = cfg_.node_name.empty() ? default_node_name() : cfg_.node_name;
  auto sink = cfg_.log;
  auto l = RedisLog::create(server_, cfg_.cluster_url, node_name_, cfg_.cluster_retention,
                            [sink](LogLevel level, std::string_view line) {
                              if (sink) sink(level, line);
                            },
                            error);
  if (!l) return kEStorage;
  l->on_appended([this](std::string_view room, int64_t last) { on_log_appended(room, last); });
  l->on_state([this](bool up) { on_log_state(up); });
  l->on_presence([this](std::string_view room, uint32_t total) { on_log_presence(room, total); });
  l->on_heartbeat([this] {
    for (auto& [name, room] : rooms_) {
      if (room->members.empty() || room->push_due) continue;
      presence_push_.push_back(name);
      room->push_due = true;
    }
  });
  log_ = std::move(l);
  // A quarter of the lag the stream keeps for a live node, at most a few reads.
  hold_back_limit_ = std::max<int64_t>(
      16, std::min<int64_t>(2 * kReadMax, int64_t(cfg_.cluster_retention * RedisLog::kMaxLagRetentions / 4)));
  return kOk;
}

void ChatService::collect_cluster_stats(AppStats* out) const {
  out->cluster = true;
  out->cluster_up = log_->up();
  out->cluster_round_trips = log_->round_trips();
  out->cluster_failures = log_->failures();
  out->cluster_missed = missed_;
}

void ChatService::stop_cluster() {
  if (log_) log_->stop();
}

ChatService::Room* ChatService::room_by_serial(const std::string& name, uint64_t serial) const {
  auto it = rooms_.find(name);
  return it != rooms_.end() && it->second->serial == serial ? it->second.get() : nullptr;
}

uint32_t ChatService::members_shown(const Room* room) const {
  const auto here = static_cast<uint32_t>(room->members.size());
  if (!log_ || !room->total_known) return here;
  // The total told, with our part as it is now rather than as it was pushed.
  const int64_t n = int64_t(room->cluster_total) - room->pushed + here;
  return n < here ? here : uint32_t(n);
}

void ChatService::push_presence() {
  if (presence_push_.empty() || !log_->up()) return;  // after a reconnect the heartbeat pushes
  std::vector<std::string> rooms;
  rooms.swap(presence_push_);
  for (const std::string& name : rooms) {
    auto it = rooms_.find(name);
    uint32_t count = 0;
    if (it != rooms_.end()) {
      Room* r = it->second.get();
      r->push_due = false;
      count = static_cast<uint32_t>(r->members.size());
      r->pushed = count;
    }
    log_->set_presence(name, count);  // 0: the room left this node
    // With it, what the node has read (again: a node whose heartbeat lapsed
    // lost its entry), or that it reads the room no more.
    if (count == 0) {
      log_->set_read_position(name, -1);
      if (it != rooms_.end()) it->second->reported = -1;
    } else if (it->second->loaded) {
      log_->set_read_position(name, it->second->last_seen);
      it->second->reported = it->second->last_seen;
    }
  }
}

void ChatService::cluster_hold_back(Room* room, ConnId sender) {
  const int64_t behind = int64_t(room->pending + room->appending) + std::max<int64_t>(0, room->wanted - room->last_seen);
  if (behind > hold_back_limit_) server_.pause_input(sender, kHoldBackMs);
}

void ChatService::read_moved(Room* room) {
  if (room->report_due) return;
  report_due_.push_back(room->name);
  room->report_due = true;
}

void ChatService::push_read_positions() {
  if (report_due_.empty() || !log_->up()) return;  // after a reconnect the heartbeat pushes
  // An old position only keeps more than needed, never less, and the
  // stream keeps the last retention entries anyway: told once per half the
  // retention read (and with every presence push), not per read.
  const int64_t step = std::max<int64_t>(1, int64_t(cfg_.cluster_retention / 2));
  std::vector<std::string> rooms;
  rooms.swap(report_due_);
  for (const std::string& name : rooms) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) continue;  // gone: its presence push said so
    Room* r = it->second.get();
    r->report_due = false;
    if (r->members.empty() || (r->reported >= 0 && r->last_seen - r->reported < step)) continue;
    log_->set_read_position(name, r->last_seen);
    r->reported = r->last_seen;
  }
}

void ChatService::report_missed(Room* room, uint64_t n, const std::vector<Member>& members) {
  // The ring must stay contiguous (a since in the hole would be answered
  // from it as if nothing were missing): it starts again after the hole.
  room->history = HistoryRing(room->history.capacity());
  room->snapshot = FrameRef();
  FrameRef notice;
  for (const Member& m : members) {
    if (m.format != WireFormat::V1 || m.waiting) continue;  // classic: its next snapshot; waiting: its hello
    if (!notice) notice = text_frame(encode_v1_dropped(n));
    send_member(m.id, notice);
  }
}

void ChatService::on_log_presence(std::string_view name, uint32_t total) {
  auto it = rooms_.find(std::string(name));
  if (it == rooms_.end()) return;
  Room* room = it->second.get();
  if (room->total_known && room->cluster_total == total) return;
  room->cluster_total = total;
  room->total_known = true;
  if (room->members.empty() || room->presence_due) return;
  // Announced at the end of this iteration (each member told a count it has not heard).
  presence_due_.push_back(room);
  room->presence_due = true;
}

int ChatService::cluster_commit() {
  push_presence();
  push_read_positions();
  if (pending_.empty()) {
    log_->flush();  // reads queued this iteration
    return kOk;
  }
  std::vector<Pending> batch;
  batch.swap(pending_);
  // One append per room, its messages in acceptance order.
  std::vector<RoomAppend> groups = by_room(batch, true);
  unsettled_.reserve(unsettled_.size() + batch.size());
  for (Pending& p : batch) {
    --p.room->pending;
    unsettled_.push_back(p.room);
  }
  for (RoomAppend& g : groups) {
    const size_t n = g.msgs.size();
    g.room->appending += n;
    std::vector<std::string> keys;
    keys.reserve(n);
    for (size_t i = 0; i < n; ++i) keys.push_back(node_name_ + ":" + std::to_string(next_key_++));
    log_->append(g.room->name, std::move(g.msgs), keys,
                 [this, name = g.room->name, serial = g.room->serial, senders = std::move(g.senders),
                  keys, n](RoomLog::Outcome outcome, std::vector<int64_t> ids, std::string_view why) {
                   if (Room* r = room_by_serial(name, serial)) r->appending -= n;  // the Room it was added to
                   if (outcome == RoomLog::Outcome::Unknown) {
                     log(LogLevel::Warning, n, " message(s) of room '", name, "': ", why,
                         "; whether stored is known once the room is read again");
                     const int64_t deadline = steady_ms() + kUncertainMs;
                     const uint64_t seq = ++op_seq_;
                     for (size_t i = 0; i < n; ++i)
                       uncertain_.push_back({name, keys[i], senders[i], seq, deadline});
                     return;
                   }
                   if (outcome == RoomLog::Outcome::Refused) {
                     ++commit_failures_;
                     if (!store_failing_)
                       log(LogLevel::Error, n, " message(s) not stored, not delivered: cluster log: ",
                           why);
                     store_failing_ = true;
                     for (ConnId id : senders) {
                       if (id == 0) continue;
                       auto it = conns_.find(id);
                       if (it != conns_.end()) send_error(id, it->second.format, kStorageUnavailable);
                     }
                     return;
                   }
                   if (store_failing_) log(LogLevel::Warning, "cluster log writable again");
                   store_failing_ = false;
                   ++commits_;
                   committed_messages_ += n;
                   // Our own entries: read them without waiting for the notification.
                   Room* room = room_by_serial(name, serial);
                   if (!room || ids.empty()) return;
                   if (ids.front() <= room->last_seen) {
                     // Positions went back: Redis lost the room's stream (a
                     // restart without persistence, a FLUSHALL). Said, not hidden.
                     log(LogLevel::Error, "room '", name, "': its stream went back to position ",
                         size_t(ids.front()), " (Redis lost its data?); reading it from there");
                     room->last_seen = ids.front() - 1;
                     room->wanted = 0;
                   }
                   room->tell(ids.back());
                   if (ids.back() > room->last_seen && !room->members.empty()) cluster_read(room);
                 });
  }
  log_->flush();
  return kOk;
}

void ChatService::cluster_load(Room* room) {
  // Redis not (yet) there: the members wait for their greeting until it is
  // (on_log_state loads every room that has members and no history).
  if (!log_->up()) return;
  room->loading = true;
  log_->read_last(room->name, cfg_.history_size,
                  [this, name = room->name, serial = room->serial](bool ok, std::vector<ChatMessage> msgs,
                                                                   std::vector<std::string>,
                                                                   std::string_view why) {
                    Room* r = room_by_serial(name, serial);
                    if (!r) return;
                    r->loading = false;
                    const std::vector<Member> members = r->members;  // a close changes it
                    if (!ok && !log_->up()) return;  // lost with the connection: loaded when it is back
                    if (!ok) {
                      log(LogLevel::Error, "cannot load room '", name, "': cluster log: ", why);
                      for (const Member& m : members) server_.close(m.id, 1011, kStorageUnavailable);
                      unsettled_.push_back(r);
                      return;
                    }
                    for (ChatMessage& m : msgs) {
                      r->last_seen = std::max(r->last_seen, m.id);
                      r->history.make_room();
                      r->history.push(std::move(m));
                    }
                    r->snapshot = FrameRef();
                    r->loaded = true;
                    read_moved(r);  // from here on the log keeps what we have not read
                    const auto count = static_cast<uint32_t>(r->members.size());
                    for (Member& m : r->members) m.told = count;
                    for (const Member& m : members) greet(m.id, m.format, r);
                    if (r->read_again) cluster_read(r);
                    unsettled_.push_back(r);
                  });
}

void ChatService::cluster_read(Room* room) {
  if (!room->loaded || room->reading) {
    room->read_again = true;  // after the load / the read in flight
    return;
  }
  room->reading = true;
  room->read_again = false;
  const auto want = size_t(std::clamp(room->wanted - room->last_seen, kReadBatch, kReadMax));
  log_->read_after(
      room->name, room->last_seen, want,
      [this, name = room->name, serial = room->serial, read_seq = ++op_seq_, want, told = room->wanted,
       tellings = room->tellings](
          bool ok, std::vector<ChatMessage> msgs, std::vector<std::string> keys, std::string_view why) {
        if (ok && !uncertain_.empty()) settle_uncertain(name, keys, msgs.size() < want, read_seq);
        Room* r = room_by_serial(name, serial);
        if (!r) return;
        r->reading = false;
        if (!ok) {
          // Read again when the log is up (on_log_state) or at the next notification.
          log(LogLevel::Warning, "cannot read room '", name, "': cluster log: ", why);
          return;
        }
        if (read_seq <= r->reset_seq) {  // asked after the old position: read again from the new one
          cluster_read(r);
          return;
        }
        ready_.reserve(ready_.size() + msgs.size() + 1);
        if (!msgs.empty() && msgs.front().id > r->last_seen + 1) {
          // Positions have no holes: these were trimmed before we read them.
          const auto n = uint64_t(msgs.front().id - r->last_seen - 1);
          missed_ += n;
          log(LogLevel::Warning, "room '", name, "': ", size_t(n),
              " message(s) trimmed from the stream before this node read them (it was not reading "
              "for longer than its heartbeat lives, or lagged beyond the bound): its members are told");
          ready_.push_back({r, 0, ChatMessage{}, n});
          ++r->pending;
        }
        const size_t got = msgs.size();
        for (ChatMessage& m : msgs) {
          if (m.id <= r->last_seen) continue;  // already taken
          r->last_seen = m.id;
          ready_.push_back({r, 0, std::move(m)});
          ++r->pending;
        }
        if (got != 0) read_moved(r);
        // Everything told of before the read exists in the stream by then;
        // read to its end short of it, the stream lost data (a Redis
        // restart without persistence) or a notification named a position
        // it never had: not wanted any more, or we would read forever. Not
        // when told anything meanwhile: that may be past what this read saw
        // (and below `told`), so the next read finds out.
        if (got < want && r->tellings == tellings && told > r->last_seen) r->wanted = r->last_seen;
        if (got == want || r->read_again || r->wanted > r->last_seen) cluster_read(r);
      });
}

void ChatService::settle_uncertain(const std::string& room, const std::vector<std::string>& keys,
                                   bool caught_up, uint64_t read_seq) {
  // In the stream: stored (its sender gets it like everyone, as its ack).
  for (const std::string& k : keys) {
    if (k.empty()) continue;
    auto it = std::find_if(uncertain_.begin(), uncertain_.end(),
                           [&](const Uncertain& u) { return u.key == k && u.room == room; });
    if (it == uncertain_.end()) continue;
    ++uncertain_stored_;
    uncertain_.erase(it);
  }
  if (!caught_up) return;
  // Read to the end by a read issued after the reply was lost: not stored.
  auto gone = std::stable_partition(uncertain_.begin(), uncertain_.end(), [&](const Uncertain& u) {
    return !(u.room == room && u.seq < read_seq);
  });
  for (auto it = gone; it != uncertain_.end(); ++it) {
    ++uncertain_refused_;
    if (it->sender == 0) continue;
    auto c = conns_.find(it->sender);
    if (c != conns_.end()) send_error(it->sender, c->second.format, kStorageUnavailable);
  }
  if (gone != uncertain_.end()) {
    log(LogLevel::Warning, size_t(uncertain_.end() - gone), " message(s) of room '", room,
        "' whose reply was lost were not stored: their senders are told");
  }
  uncertain_.erase(gone, uncertain_.end());
}

void ChatService::expire_uncertain() {
  const int64_t now = steady_ms();
  size_t n = 0;
  while (n < uncertain_.size() && uncertain_[n].deadline_ms <= now) ++n;  // in deadline order
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) {
    ++uncertain_refused_;
    auto c = conns_.find(uncertain_[i].sender);
    if (uncertain_[i].sender != 0 && c != conns_.end())
      send_error(uncertain_[i].sender, c->second.format, kStorageUnavailable);
  }
  log(LogLevel::Warning, n, " message(s) whose reply was lost could not be checked in time: "
      "their senders are told \"storage unavailable\" (a stored one is still delivered, once)");
  uncertain_.erase(uncertain_.begin(), uncertain_.begin() + ptrdiff_t(n));
}

void ChatService::on_log_appended(std::string_view name, int64_t last) {
  auto it = rooms_.find(std::string(name));
  if (it == rooms_.end()) return;
  Room* room = it->second.get();
  if (room->members.empty()) return;  // dropped once settled; read again at a join
  if (last != 0) {
    // Taken already (our own reply came first and its read is done), or
    // the read in flight may take it: read again after it only if not.
    // Behind what we took: notifications of two nodes crossed, or Redis
    // lost the stream (asked, since a node that only reads would otherwise
    // wait until the positions pass its own again).
    if (last < room->last_seen && room->loaded) cluster_check_position(room, last);
    if (last <= room->last_seen) return;
    room->tell(last);
    if (room->loaded && room->reading) return;
  }
  cluster_read(room);
}

// Whether Redis lost the room's stream (a restart without persistence, a
// FLUSHALL): its last position is behind what this node took. A node that
// posts sees it in its own appends' positions (commit above); one that only
// reads asks, after a reconnect (`told` 0) and when told of a position behind
// its own (`told`). Then the stream's first entry says what is in it: one
// that starts at position 1 (or is empty) was lost whole, so all of it is new
// (unless a room younger than the retention lost only its last entries: then
// a member may get some again, never miss any); otherwise Redis kept it up to
// `last` (an AOF that lost its last second) and what comes after is new.
void ChatService::cluster_check_position(Room* room, int64_t told) {
  if (room->checking) return;
  if (told > 0) {
    const int64_t now = steady_ms();
    if (now - room->checked_ms < kCheckEveryMs) return;
    room->checked_ms = now;
  }
  room->checking = true;
  log_->read_position(room->name, [this, name = room->name, serial = room->serial, told](
                                      bool ok, int64_t last) {
    Room* r = room_by_serial(name, serial);
    if (!r) return;
    if (!ok || last >= r->last_seen) {
      r->checking = false;
      return;
    }
    log_->read_after(name, 0, 1, [this, name, serial, told, last](
                                     bool read_ok, std::vector<ChatMessage> first,
                                     std::vector<std::string>, std::string_view) {
      Room* rm = room_by_serial(name, serial);
      if (!rm) return;
      rm->checking = false;
      if (!read_ok || last >= rm->last_seen) return;
      const bool whole = first.empty() || first.front().id <= 1;
      const int64_t from = whole ? 0 : told > 0 ? std::min(told - 1, last) : last;
      log(LogLevel::Error, "room '", name, "': its stream went back to position ", size_t(last),
          " (Redis lost its data?); reading it from ", size_t(from + 1));
      rm->last_seen = from;
      rm->wanted = std::max(last, from);  // a reset, not a max with the old wanted
      ++rm->tellings;
      rm->reset_seq = op_seq_;  // a read in flight asked from the old position
      if (!rm->members.empty()) cluster_read(rm);
    });
  });
}

void ChatService::on_log_state(bool up) {
  store_failing_ = !up;
  if (!up) return;
  // Notifications may have been missed meanwhile: read every room with
  // members from where it is.
  for (auto& [name, room] : rooms_) {
    if (room->members.empty()) continue;
    if (room->loaded) {
      cluster_check_position(room.get(), 0);  // a Redis restart may have lost the stream
      cluster_read(room.get());
    } else if (!room->loading) {
      cluster_load(room.get());
    }
  }
  // Written at the end of this iteration (or at the write readiness).
}

}  // namespace chatws::chat

namespace chatws::chat {

bool ChatService::recover_from_log(ConnId id, Room* room, int64_t since) {
  // The ring holds the last history_size; the stream keeps cluster_retention.
  const int64_t newest = room->history.empty() ? 0 : room->history.newest().id;
  if (since < 0 || since >= newest || newest - since > int64_t(cfg_.cluster_retention) || !log_->up())
    return false;
  auto joined = conns_.find(id);
  if (joined == conns_.end() || joined->second.room != room) return false;
  room->members[joined->second.index].waiting = true;  // nothing is sent to it before its hello
  log_->read_after(
      room->name, since, size_t(newest - since),
      [this, id, since, name = room->name, serial = room->serial](
          bool ok, std::vector<ChatMessage> msgs, std::vector<std::string>, std::string_view why) {
        Room* r = room_by_serial(name, serial);
        auto c = conns_.find(id);
        if (!r || c == conns_.end() || c->second.room != r) return;  // gone meanwhile
        Member& m = r->members[c->second.index];
        m.waiting = false;
        m.told = members_shown(r);
        if (!ok) log(LogLevel::Warning, "cannot read room '", name, "' for a recovery: cluster log: ", why);
        // The hello ends where the members are (the ring's newest: entries
        // read since are in ready_ and reach this member like the others).
        // Read entries up to there, then the ring's after them, must run
        // from since + 1 without a gap: otherwise a reset, never a gap.
        const int64_t bound = r->history.empty() ? 0 : r->history.newest().id;
        HistoryRing got(size_t(std::max<int64_t>(bound - since, 1)));
        int64_t next = since + 1;
        for (ChatMessage& e : msgs) {
          if (e.id != next || e.id > bound) break;
          got.push(std::move(e));
          ++next;
        }
        for (size_t i = 0; i < r->history.size(); ++i) {
          if (r->history.at(i).id == next) {
            got.push(r->history.at(i));
            ++next;
          }
        }
        const bool whole = ok && next == bound + 1;
        std::string hello =
            whole ? encode_v1_hello(name, id, m.told, got, SIZE_MAX, server_.identity(id), {since, false, since})
                  : std::string();
        if (!whole || hello.size() > 2 * history_bytes_) {  // half the output cap at most
          HelloRecovery reset;
          reset.reset = true;
          hello = encode_v1_hello(name, id, m.told, r->history, history_bytes_, server_.identity(id), reset);
        }
        server_.send(id, protocol::Opcode::Text, hello);
      });
  return true;
}

}  // namespace chatws::chat
