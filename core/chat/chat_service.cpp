#include "chat/chat_service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "chat/room_path.h"
#include "chat/sqlite_log.h"

namespace chatws::chat {

namespace {

constexpr std::string_view kTooManyRooms = "too many rooms";

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool in_memory_path(const std::string& p) { return p.empty() || p == ":memory:"; }

}  // namespace

FrameRef ChatService::text_frame(std::string_view payload) {
  return FrameRef(SharedFrame::make(protocol::Opcode::Text, payload));
}

bool ChatService::is_chat_subprotocol(std::string_view sp) {
  return sp == kClassicSubprotocol || sp == kV1Subprotocol;
}

ChatService::ChatService(Server& server, const ChatConfig& cfg)
    : server_(server),
      cfg_(cfg),
      history_bytes_(std::max<size_t>(server.max_output_buffer() / 4, 1)),
      limits_{cfg.max_user_length, cfg.max_text_length},
      parser_(limits_) {
  loops_ = server_.loop_count();
  inbox_.resize(loops_);
}

std::unique_ptr<ChatService> ChatService::create(Server& server, const ChatConfig& cfg_in,
                                                 std::string* error, int* code) {
  ChatConfig cfg = cfg_in;
  const ChatConfig defaults;
  if (cfg.history_size == 0) cfg.history_size = defaults.history_size;
  if (cfg.max_user_length == 0) cfg.max_user_length = defaults.max_user_length;
  if (cfg.max_text_length == 0) cfg.max_text_length = defaults.max_text_length;
  if (cfg.max_rooms == 0) cfg.max_rooms = defaults.max_rooms;
  if (cfg.max_idle_room_bytes == 0) cfg.max_idle_room_bytes = defaults.max_idle_room_bytes;
  if (cfg.rate.per_second == 0) cfg.rate.per_second = defaults.rate.per_second;
  if (cfg.rate.per_second == ChatConfig::kRateOff) cfg.rate = RateLimit{};
  if (cfg.rate.enabled() && cfg.rate.burst == 0)
    cfg.rate.burst = std::max<uint32_t>(defaults.rate.burst, cfg.rate.per_second);
  if (cfg.cluster_retention == 0) cfg.cluster_retention = std::max<size_t>(cfg.history_size, 1000);
  if (!cfg.cluster_url.empty() && server.loop_count() > 1) {
    // The room log's Redis connections are driven by one loop's poller.
    if (error) *error = "cluster mode (cluster_url) needs threads 1";
    if (code) *code = kEInval;
    return nullptr;
  }
  std::unique_ptr<ChatService> s(new ChatService(server, cfg));
  std::string err;
  int rc = kOk;
  if (!cfg.cluster_url.empty()) {
    if (!in_memory_path(cfg.history_path)) {
      err = "cluster_url and history_path exclude each other (the cluster's history is in Redis)";
      rc = kEInval;
    } else {
      rc = s->start_cluster(&err);  // chat_cluster.cpp
    }
  } else if (!in_memory_path(cfg.history_path)) {
    // The store is the room log of a single node (sqlite_log.h).
    s->log_ = SqliteLog::open(cfg.history_path, cfg.history_size, &err);
    if (s->log_) {
      s->stored_rooms_ = s->log_->rooms_at_open();
    } else {
      rc = kEStorage;
    }
  }
  if (code) *code = rc;
  if (rc == kOk) return s;
  if (error) *error = err;
  return nullptr;
}

ChatService::~ChatService() {
  if (clustered()) {
    if (!pending_.empty())
      log(LogLevel::Error, pending_.size(), " message(s) not appended at shutdown (cluster)");
    stop_cluster();
    return;
  }
  // The server may be gone: store what was accepted, send nothing.
  std::string err;
  if (local_store() && !pending_.empty() && !store_local(pending_, &err)) {
    ++commit_failures_;
    log(LogLevel::Error, pending_.size(), " message(s) lost at shutdown: history store: ", err);
  }
}

int ChatService::on_upgrade(std::string_view path, std::string_view subprotocol, std::string* reason) {
  Guard g(*this);
  if (!is_chat(subprotocol)) return 0;
  RoomPathResult r = room_from_path(path);
  if (r.status == 0 && !room_admissible(r.room)) {
    r.status = 503;
    r.reason = kTooManyRooms;
  }
  if (r.status != 0 && reason) *reason = std::move(r.reason);
  return r.status;
}

size_t ChatService::room_count() const {
  Guard g(*this);
  return local_store() ? stored_rooms_ + unstored_rooms_ : rooms_.size();
}

bool ChatService::room_admissible(const std::string& name) {
  if (rooms_.count(name) || room_count() < cfg_.max_rooms) return true;
  if (!local_store()) return !idle_.empty();  // get_room drops the least recently used
  // A stored room is counted already. On a query error let on_open report
  // the store's failure.
  bool stored = false;
  std::string err;
  return !log_->has_room(name, &stored, &err) || stored;
}

ChatService::Room* ChatService::get_room(std::string_view name, std::string* error, int* code) {
  std::string key(name);
  if (auto it = rooms_.find(key); it != rooms_.end()) {
    activate(it->second.get());
    return it->second.get();
  }
  auto room = std::make_unique<Room>(key, cfg_.history_size);
  room->serial = next_serial_++;
  room->loaded = !clustered();  // cluster: once its history is read (cluster_load)
  if (local_store()) {
    // Answered within the call (sqlite_log.h).
    bool ok = false;
    log_->read_last(key, cfg_.history_size,
                    [&](bool read, std::vector<ChatMessage> msgs, std::vector<std::string>, std::string_view why) {
                      ok = read;
                      if (!read) error->assign(why);
                      for (ChatMessage& m : msgs) room->history.push(std::move(m));
                    });
    if (!ok) {
      *code = kEStorage;
      return nullptr;
    }
    room->stored = !room->history.empty();
    room->next_id = room->stored ? room->history.newest().id + 1 : 1;
  }
  if (!room->stored && room_count() >= cfg_.max_rooms) {
    // Without a store the least recently used idle room makes way; stored
    // history is never dropped for a new room.
    if (local_store() || idle_.empty()) {
      *code = kEFull;
      *error = std::string(kTooManyRooms);
      return nullptr;
    }
    erase_room(idle_.back());
  }
  Room* r = room.get();
  rooms_.emplace(std::move(key), std::move(room));
  if (local_store() && !r->stored) ++unstored_rooms_;  // once it is in
  return r;
}

void ChatService::activate(Room* room) {
  if (!room->idle) return;
  idle_.erase(room->idle_pos);
  idle_bytes_ -= room->idle_bytes;
  room->idle = false;
}

void ChatService::settle() {
  // Each room once: erasing frees it. A room is erased only here and as
  // the least recently used idle one, and the rooms listed were in use
  // when listed (and can turn idle only here), so every pointer is live.
  std::vector<Room*> rooms;
  rooms.swap(unsettled_);
  std::sort(rooms.begin(), rooms.end());
  rooms.erase(std::unique(rooms.begin(), rooms.end()), rooms.end());
  // If this unwinds, the rooms not yet settled are listed again (nothing
  // is listed meanwhile: settling calls no one).
  size_t done = 0;
  struct Rest {
    std::vector<Room*>& rooms;
    std::vector<Room*>& unsettled;
    size_t& done;
    ~Rest() {
      if (done == rooms.size() || !unsettled.empty()) return;
      rooms.erase(rooms.begin(), rooms.begin() + ptrdiff_t(done));
      unsettled.swap(rooms);
    }
  } rest{rooms, unsettled_, done};
  for (; done < rooms.size(); ++done) {
    Room* r = rooms[done];
    if (r->idle || r->pending != 0 || !r->members.empty() || r->presence_due) continue;
    if (r->history.empty() || clustered()) {  // nothing worth keeping (cluster: read again at the next join)
      erase_room(r);
      continue;
    }
    // Nobody is in it: keep it (a returning member gets its history) as
    // the most recently used idle room, holding no more than it needs.
    r->idle_pos = idle_.insert(idle_.begin(), r);  // first: the only step that allocates
    r->snapshot = FrameRef();
    std::vector<Member>().swap(r->members);
    r->idle = true;
    r->idle_bytes = sizeof(Room) + 2 * r->name.capacity() + 64 + r->history.heap_bytes();
    idle_bytes_ += r->idle_bytes;
  }
  while (idle_bytes_ > cfg_.max_idle_room_bytes && !idle_.empty()) erase_room(idle_.back());
}

void ChatService::erase_room(Room* room) {
  activate(room);
  if (local_store() && !room->stored) --unstored_rooms_;
  rooms_.erase(room->name);
}

size_t ChatService::member_count(std::string_view room) const {
  Guard g(*this);
  auto it = rooms_.find(std::string(room));
  return it == rooms_.end() ? 0 : it->second->members.size();
}

const FrameRef& ChatService::snapshot_of(Room* room) {
  if (!room->snapshot) room->snapshot = text_frame(encode_classic_snapshot(room->history, history_bytes_));
  return room->snapshot;
}

void ChatService::send_error(ConnId id, WireFormat f, std::string_view reason) {
  send_member_text(id, encode_error(f, reason));
}

void ChatService::presence_changed(Room* room, bool after_iteration_end) {
  if (clustered() && !room->push_due) {  // our count goes to Redis with this iteration's appends
    presence_push_.push_back(room->name);
    room->push_due = true;
  }
  // Joins and leaves only mark the room: its members hear one count per
  // iteration (announce_presence), so a join costs the same in any room.
  if (room->presence_due) return;
  // A close reported after this iteration's on_iteration_end would
  // otherwise wait for the next event.
  if (after_iteration_end && presence_due_.empty()) server_.wake();
  presence_due_.push_back(room);
  room->presence_due = true;  // after: the flag says it is listed
}

void ChatService::announce_presence() {
  if (presence_due_.empty()) return;
  std::vector<Room*> rooms;
  unsettled_.reserve(unsettled_.size() + presence_due_.size());  // the guard's room
  rooms.swap(presence_due_);
  // However this ends: delivering_ is reset, the rooms announced are
  // unsettled (so they can still turn idle and be evicted), and those not
  // announced (the one that failed included: each member is only told a
  // count it has not heard) are due again.
  size_t done = 0;
  struct Reset {
    ChatService* self;
    std::vector<Room*>& rooms;
    size_t& done;
    ~Reset() {
      self->delivering_ = false;
      self->unsettled_.insert(self->unsettled_.end(), rooms.begin(), rooms.begin() + ptrdiff_t(done));
      if (done == rooms.size()) return;
      rooms.erase(rooms.begin(), rooms.begin() + ptrdiff_t(done));
      for (Room* r : rooms) r->presence_due = true;
      if (self->presence_due_.empty()) {
        self->presence_due_.swap(rooms);
      } else {
        for (Room* r : rooms) r->presence_due = false;  // not expected: listed again by the next change
      }
    }
  } reset{this, rooms, done};
  delivering_ = true;  // a flush re-entered meanwhile only commits
  std::vector<ConnId> joined, left;
  for (; done < rooms.size(); ++done) {
    Room* room = rooms[done];
    room->presence_due = false;
    if (!room->loaded) continue;  // its members are told the count in their greeting
    const uint32_t n = members_shown(room);
    // The receivers first (a send never reports a close, but stays out of
    // the walk anyway); each v1 member is told only a count it has not
    // heard, so a joiner is not told its own join and a join and a leave
    // in one iteration cost nothing.
    joined.clear();
    left.clear();
    for (Member& m : room->members) {
      if (m.format != WireFormat::V1 || m.told == n || m.waiting) continue;
      (m.told < n ? joined : left).push_back(m.id);
      m.told = n;
    }
    if (!joined.empty()) {
      FrameRef f = text_frame(encode_v1_presence(true, n));
      for (ConnId id : joined) send_member(id, f);
    }
    if (!left.empty()) {
      FrameRef f = text_frame(encode_v1_presence(false, n));
      for (ConnId id : left) send_member(id, f);
    }
  }
}

void ChatService::on_open(ConnId id) {
  Guard g(*this);
  // Subprotocol and path only: a chat connection never needs its full
  // ConnInfo built (and kept for its whole life). "" when stale.
  const std::string_view subprotocol = server_.subprotocol(id);
  if (!is_chat(subprotocol) || conns_.count(id)) return;
  const WireFormat fmt = subprotocol == kV1Subprotocol ? WireFormat::V1 : WireFormat::Classic;
  RoomPathResult rp = room_from_path(server_.path(id));  // copies the room name
  if (rp.status != 0) {  // the handler did not route on_upgrade to us
    server_.close(id, 1008, rp.reason.substr(0, 120));
    return;
  }
  std::string err;
  int code = kOk;
  Room* room = get_room(rp.room, &err, &code);
  if (!room && code == kEFull) {
    // Admitted at the upgrade, but others took the last rooms since.
    server_.close(id, 1013, kTooManyRooms);
    return;
  }
  if (!room) {
    log(LogLevel::Error, "cannot load room '", rp.room, "': history store: ", err);
    server_.close(id, 1011, kStorageUnavailable);
    return;
  }
  // Both or neither: on_close swap-removes by the index.
  room->members.push_back({id, fmt, members_shown(room) + 1});
  try {
    conns_[id] = Conn{room, fmt, room->members.size() - 1, 0, false,
                      TokenBucket(cfg_.rate, TokenBucket::now_ms())};
  } catch (...) {
    room->members.pop_back();
    unsettled_.push_back(room);  // may be left unused
    throw;
  }
  if (room->loaded) {
    greet(id, fmt, room);
  } else if (!room->loading) {
    cluster_load(room);  // greets once the history is read
  }
  presence_changed(room, false);
}

void ChatService::greet(ConnId id, WireFormat fmt, Room* room) {
  if (fmt == WireFormat::Classic) {
    send_member(id, snapshot_of(room));
  } else {
    std::string why;
    const HelloRecovery rec = recovery_for(server_.query(id), room->history, &why);
    if (!why.empty()) send_error(id, fmt, why);  // and the plain hello
    if (rec.reset && clustered() && recover_from_log(id, room, rec.asked)) return;  // greeted later
    send_member_text(id, encode_v1_hello(room->name, id, members_shown(room), room->history,
                                         history_bytes_, server_.identity(id), rec));
  }
}

void ChatService::on_drain(ConnId id) {
  Guard g(*this);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  const uint64_t dropped = server_.dropped(id);  // 0 when stale
  if (dropped <= c.dropped_told && !c.snapshot_stale) return;
  const uint64_t n = dropped - c.dropped_told;
  c.dropped_told = dropped;
  if (c.format == WireFormat::Classic) {
    // A classic client only ever shows the latest snapshot: sending it
    // now repairs whatever it missed or was not sent while behind.
    c.snapshot_stale = false;
    send_member(id, snapshot_of(c.room));
  } else if (n != 0) {
    send_member_text(id, encode_v1_dropped(n));
  }
}

void ChatService::on_close(ConnId id) {
  Guard g(*this);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn c = it->second;
  conns_.erase(it);
  Room* room = c.room;
  // Swap-remove, keeping the moved member's index right.
  if (c.index + 1 != room->members.size()) {
    room->members[c.index] = room->members.back();
    conns_[room->members[c.index].id].index = c.index;
  }
  room->members.pop_back();
  presence_changed(room, true);
}

void ChatService::on_message(ConnId id, protocol::Opcode op, const char* data, size_t len) {
  Guard g(*this);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  const WireFormat fmt = it->second.format;
  if (op != protocol::Opcode::Text) {
    send_error(id, fmt, "binary messages are not supported");
    return;
  }
  // Flood control before any parsing. Over the limit, the message is
  // refused and the connection is not read again until a token is due: a
  // flooder gets one error per refill interval, its flood waits in TCP, and
  // the loop spends nothing on it meanwhile (issue 12).
  if (cfg_.rate.enabled()) {
    const int64_t now = TokenBucket::now_ms();
    TokenBucket& bucket = it->second.bucket;
    if (!bucket.take(cfg_.rate, now)) {
      send_error(id, fmt, "rate limited: too many messages, slow down");
      server_.pause_input(id, int(bucket.ms_until_token(cfg_.rate, now)));
      return;
    }
  }
  std::string_view user, text;
  std::string err;
  if (!parser_.parse(std::string_view(data, len), fmt, &user, &text, &err)) {
    send_error(id, fmt, err);
    return;
  }
  ChatDraft d;
  d.sender = id;
  const std::string room_name = it->second.room->name;  // the moderator may close us
  d.room = room_name;
  // A connection the upgrade hook bound to an identity posts under it,
  // whatever the client put in "user" (issue 12): a name cannot be spoofed.
  if (const std::string* identity = server_.identity(id)) {
    std::string_view bound = *identity;
    if (std::string why = validate_fields(&bound, text, limits_); !why.empty()) {
      send_error(id, fmt, "your identity is not a valid chat user name: " + why);
      return;
    }
    d.user.assign(bound);
  } else {
    d.user.assign(user);
  }
  d.text.assign(text);
  d.time_ms = now_ms();
  if (moderator_) {
    std::string reason;
    bool accept = false;
    try {
      accept = moderator_(d, &reason);
    } catch (const std::exception& e) {
      log(LogLevel::Error, "moderator threw: ", e.what());
      reason = "moderation failed";
    } catch (...) {
      log(LogLevel::Error, "moderator threw");
      reason = "moderation failed";
    }
    if (!accept) {
      send_error(id, fmt, reason.empty() ? "message rejected" : reason);
      return;
    }
    std::string_view kept = d.user;
    err = validate_fields(&kept, d.text, limits_);
    if (!err.empty()) {
      send_error(id, fmt, "message rewritten invalid by moderator: " + err);
      return;
    }
    d.user = std::string(kept);
  }
  // Look the room up again: the moderator may have posted to other rooms
  // and so made room for them.
  int code = kOk;
  Room* room = get_room(room_name, &err, &code);
  if (!room) {
    if (code == kEStorage) {
      log(LogLevel::Error, "cannot load room '", room_name, "': history store: ", err);
    }
    send_error(id, fmt, code == kEFull ? kTooManyRooms : kStorageUnavailable);
    return;
  }
  enqueue(room, id, std::move(d.user), std::move(d.text), d.time_ms);
}

int ChatService::post(std::string_view room_name, std::string_view user, std::string_view text) {
  Guard g(*this);
  if (!is_valid_room_name(room_name)) return kEInval;
  if (!validate_fields(&user, text, limits_).empty()) return kEInval;  // user trimmed
  if (log_ && !log_->up()) return kEStorage;
  std::string err;
  int code = kOk;
  Room* room = get_room(room_name, &err, &code);
  if (!room) {
    if (code == kEStorage) {
      log(LogLevel::Error, "cannot load room '", room_name, "': history store: ", err);
    }
    return code;
  }
  enqueue(room, 0, std::string(user), std::string(text), now_ms());
  unsettled_.push_back(room);  // a room made for the post alone goes again
  // The batch (ours included) is stored as a whole or not at all.
  return flush();
}

void ChatService::enqueue(Room* room, ConnId sender, std::string user, std::string text,
                          int64_t time_ms) {
  ChatMessage m;
  m.id = room->next_id;
  m.user = std::move(user);
  m.text = std::move(text);
  m.time_ms = time_ms;
  pending_.push_back({room, sender, std::move(m)});
  ++room->next_id;  // after: a room's pending count must match pending_
  ++room->pending;
  if (sender != 0 && hold_back_limit_ != 0) cluster_hold_back(room, sender);
}

int ChatService::flush() {
  Guard g(*this);
  if (loops_ > 1) drain_inbox();
  if (!uncertain_.empty()) expire_uncertain();
  const int rc = commit();
  // A flush re-entered from a send of deliver_ready() (a host callback that
  // posts) only commits; the outer loop delivers, so that every room's
  // messages go out in id order.
  if (!delivering_) {
    deliver_ready();
    announce_presence();
    settle();
  }
  return rc;
}

void ChatService::collect_stats(AppStats* out) const {
  Guard g(*this);
  out->present = true;
  out->rooms = rooms_.size();
  out->members = conns_.size();
  out->commits = commits_;
  out->commit_failures = commit_failures_;
  out->committed_messages = committed_messages_;
  out->deliveries = deliveries_;
  out->store_ok = !storage_failing();
  if (clustered()) collect_cluster_stats(out);
  out->commit_duration = commit_duration_;
}

void ChatService::send_member(ConnId id, const FrameRef& f) {
  if (loops_ == 1) {
    server_.send_frame(id, f);
    return;
  }
  const unsigned to = unsigned(id % loops_);
  Inbox& box = inbox_[to];
  if (int(to) == server_.current_loop()) {
    if (!box.empty()) drain_inbox();  // what was committed before goes first
    server_.send_frame(id, f);
    return;
  }
  if (box.frames.empty() || box.frames.back().get() != f.get()) box.frames.push_back(f);
  box.deliveries.push_back({id, uint32_t(box.frames.size() - 1)});
  if (box.deliveries.size() == 1) server_.wake_loop(to);  // one wake-up per batch
}

void ChatService::send_snapshot(ConnId id, Room* room) {
  if (loops_ > 1) {
    const unsigned to = unsigned(id % loops_);
    Inbox& box = inbox_[to];
    if (int(to) != server_.current_loop()) {
      const FrameRef& f = snapshot_of(room);
      if (box.frames.empty() || box.frames.back().get() != f.get()) box.frames.push_back(f);
      box.deliveries.push_back({id, uint32_t(box.frames.size() - 1), true});
      if (box.deliveries.size() == 1) server_.wake_loop(to);
      return;
    }
    if (!box.empty()) drain_inbox();  // what was committed before goes first
  }
  if (defer_snapshot(id)) return;
  server_.send_frame(id, snapshot_of(room));  // one encoding per room and batch, shared
}

bool ChatService::defer_snapshot(ConnId id) {
  if (!server_.backlogged(id)) return false;
  if (auto it = conns_.find(id); it != conns_.end()) it->second.snapshot_stale = true;
  return true;
}

void ChatService::send_member_text(ConnId id, std::string_view text) {
  if (loops_ == 1) {
    server_.send(id, protocol::Opcode::Text, text);
    return;
  }
  send_member(id, text_frame(text));
}

void ChatService::drain_inbox() {
  const int me = server_.current_loop();
  if (me < 0) return;  // not a loop thread (a post before run): each loop drains its own
  // Taken out first: a send may close a slow member, whose close may post
  // and so fill this inbox again (drained after, in order).
  Inbox& mine = inbox_[size_t(me)];
  Inbox box;
  std::swap(box, mine);
  for (const Inbox::Delivery& d : box.deliveries) {
    if (d.snapshot && defer_snapshot(d.to)) continue;
    server_.send_frame(d.to, box.frames[d.frame]);
  }
  box.deliveries.clear();
  box.frames.clear();
  if (mine.deliveries.capacity() == 0) std::swap(box, mine);  // its buffers back, for the next batch
}

}  // namespace chatws::chat
