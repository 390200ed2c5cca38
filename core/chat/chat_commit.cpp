// ChatService: the iteration's batch, stored then delivered (the single
// node's path; the cluster's commit is in chat_cluster.cpp and hands what
// it reads back to deliver_ready() the same way).
//
//   commit   pending_ -> the store (SqliteLog, one transaction for every
//            room of the iteration) or, in memory, nothing -> ready_
//   deliver  ready_ -> the rooms' histories and members, one shared frame
//            per message (v1) or one snapshot per room and batch (classic)
#include <unordered_map>
#include <utility>

#include "chat/chat_service.h"

namespace chatws::chat {

std::vector<ChatService::RoomAppend> ChatService::by_room(std::vector<Pending>& batch, bool take) {
  std::vector<RoomAppend> groups;
  std::unordered_map<Room*, size_t> index;
  for (Pending& p : batch) {
    auto [it, fresh] = index.try_emplace(p.room, groups.size());
    if (fresh) groups.push_back({p.room, {}, {}});
    RoomAppend& g = groups[it->second];
    if (take) {
      g.msgs.push_back(std::move(p.msg));
    } else {
      g.msgs.push_back(p.msg);
    }
    g.senders.push_back(p.sender);
  }
  return groups;
}

bool ChatService::store_local(std::vector<Pending>& batch, std::string* why) {
  // A log that is not shared (SqliteLog) answers within flush(): every
  // room's outcome is known when it returns, and it is the same for all
  // (one transaction).
  bool stored = true;
  for (RoomAppend& g : by_room(batch, false)) {
    log_->append(g.room->name, std::move(g.msgs), {},
                 [&stored, why](RoomLog::Outcome outcome, std::vector<int64_t>, std::string_view w) {
                   if (outcome == RoomLog::Outcome::Stored) return;
                   stored = false;
                   why->assign(w);
                 });
  }
  const uint64_t t0 = monotonic_ns();
  log_->flush();
  commit_duration_.observe(monotonic_ns() - t0);
  return stored;
}

int ChatService::commit() {
  if (clustered()) return cluster_commit();
  if (pending_.empty()) return kOk;
  // Room for the batch in ready_ first: once stored it must move there
  // without a failure (or it would be stored twice).
  ready_.reserve(ready_.size() + pending_.size());
  std::vector<Pending> batch;
  batch.swap(pending_);
  // Until it is stored (or refused), an unwind gives the batch back to
  // pending_ (nothing is queued there meanwhile: storing calls no one).
  bool taken = false;
  struct GiveBack {
    std::vector<Pending>& batch;
    std::vector<Pending>& pending;
    bool& taken;
    ~GiveBack() {
      if (!taken && pending.empty()) pending.swap(batch);
    }
  } give_back{batch, pending_, taken};
  if (local_store()) {
    std::string err;
    if (!store_local(batch, &err)) {
      ++commit_failures_;
      log(LogLevel::Error, batch.size(), " message(s) not stored, not delivered: history store: ", err);
      taken = true;
      store_failing_ = true;
      for (const Pending& p : batch) {
        --p.room->pending;
        // Give the ids back: nobody saw them and the store does not hold them.
        if (p.msg.id < p.room->next_id) p.room->next_id = p.msg.id;
      }
      for (const Pending& p : batch) unsettled_.push_back(p.room);
      for (const Pending& p : batch) {
        if (p.sender == 0) continue;
        auto it = conns_.find(p.sender);
        if (it != conns_.end()) send_error(p.sender, it->second.format, kStorageUnavailable);
      }
      return kEStorage;
    }
    taken = true;
    if (store_failing_) {
      log(LogLevel::Warning, "history store writable again");
      store_failing_ = false;
    }
    for (const Pending& p : batch) {
      if (p.room->stored) continue;
      p.room->stored = true;
      ++stored_rooms_;
      --unstored_rooms_;
    }
  }
  taken = true;
  ++commits_;
  committed_messages_ += batch.size();
  for (Pending& p : batch) ready_.push_back(std::move(p));  // reserved: no allocation
  return kOk;
}

void ChatService::deliver_ready() {
  if (ready_.empty()) return;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }  // or the chat would store and never deliver again
  } reset{delivering_};
  delivering_ = true;
  std::vector<Pending> batch;
  while (!ready_.empty()) {
    batch.clear();
    batch.swap(ready_);
    deliver(batch);
  }
}

void ChatService::deliver(std::vector<Pending>& batch) {
  // Receivers per room, copied once per batch: a send may close a
  // connection, whose on_close changes room->members.
  //
  // Each message goes into its room's history (and out of its pending
  // count) before it is sent; if sending fails, the guard does that for the
  // rest of the batch, unsent: those are in the history (a joiner or a
  // classic snapshot gets them), the room can settle, and nothing is sent
  // twice.
  unsettled_.reserve(unsettled_.size() + batch.size());  // the guard's room
  size_t done = 0;
  struct Rest {
    const ChatService& self;
    std::vector<Pending>& batch;
    std::vector<Room*>& unsettled;
    size_t& done;
    ~Rest() {
      for (; done < batch.size(); ++done) {
        Pending& p = batch[done];
        --p.room->pending;
        p.room->snapshot = FrameRef();
        unsettled.push_back(p.room);
        if (p.missed != 0) continue;  // a notice, not a message
        try {
          p.room->history.make_room();
          p.room->history.push(std::move(p.msg));
        } catch (...) {
          self.log(LogLevel::Error, "out of memory: a message was not kept in the history");
        }
      }
    }
  } rest{*this, batch, unsettled_, done};
  std::unordered_map<Room*, std::vector<Member>> receivers;
  while (done < batch.size()) {
    Pending& p = batch[done];
    Room* room = p.room;
    auto [rit, fresh] = receivers.try_emplace(room);
    if (fresh) rit->second = room->members;
    if (p.missed != 0) {
      ++done;
      --room->pending;
      unsettled_.push_back(room);  // reserved
      report_missed(room, p.missed, rit->second);
      continue;
    }
    room->history.make_room();
    room->history.push(std::move(p.msg));
    ++done;  // in the history: the guard no longer owes it anything
    --room->pending;
    unsettled_.push_back(room);  // reserved
    room->snapshot = FrameRef();
    const ChatMessage& m = room->history.newest();
    deliveries_ += rit->second.size();
    FrameRef v1;
    for (const Member& r : rit->second) {
      if (r.format != WireFormat::V1 || r.waiting) continue;  // waiting: its hello will have it
      if (!v1) v1 = text_frame(encode_v1_msg(m));
      send_member(r.id, v1);
    }
  }
  // A classic member gets one snapshot per room and batch, the latest: the
  // earlier ones of the batch would be superseded before it could show
  // them. One still behind on what it was sent (backlogged) gets nothing
  // now and the latest at on_drain, so what it is sent is bounded by what
  // it reads, not multiplied by the rate of messages.
  for (auto& [room, members] : receivers) {
    for (const Member& r : members) {
      if (r.format == WireFormat::Classic) send_snapshot(r.id, room);
    }
  }
}

}  // namespace chatws::chat
