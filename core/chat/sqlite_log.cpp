#include "chat/sqlite_log.h"

#include <utility>

namespace chatws::chat {

std::unique_ptr<SqliteLog> SqliteLog::open(const std::string& path, size_t retention, std::string* error) {
  auto store = HistoryStore::open(path, error, retention);
  if (!store) return nullptr;
  return std::unique_ptr<SqliteLog>(new SqliteLog(std::move(store)));
}

void SqliteLog::append(const std::string& room, std::vector<ChatMessage> msgs, std::vector<std::string>,
                       AppendDone done) {
  queued_.push_back({room, std::move(msgs), std::move(done)});
}

void SqliteLog::flush() {
  if (queued_.empty()) return;
  std::vector<Queued> batch;
  batch.swap(queued_);
  std::vector<HistoryStore::Row> rows;
  for (const Queued& q : batch)
    for (const ChatMessage& m : q.msgs) rows.push_back({q.room, &m});
  // Every room of the iteration in one transaction: all stored or none.
  std::string err;
  const bool written = store_->write(rows, &err);
  if (!written) ++failures_;
  for (Queued& q : batch) {
    std::vector<int64_t> ids;
    if (written) {
      ids.reserve(q.msgs.size());
      for (const ChatMessage& m : q.msgs) ids.push_back(m.id);
    }
    q.done(written ? Outcome::Stored : Outcome::Refused, std::move(ids), err);
  }
}

void SqliteLog::read_last(const std::string& room, size_t n, ReadDone done) {
  std::vector<ChatMessage> msgs;
  int64_t max_id = 0;
  std::string err;
  const bool ok = store_->load(room, n, &msgs, &max_id, &err);
  std::vector<std::string> keys(msgs.size());
  done(ok, std::move(msgs), std::move(keys), err);
}

void SqliteLog::read_after(const std::string& room, int64_t after, size_t max, ReadDone done) {
  std::vector<ChatMessage> msgs;
  std::string err;
  const bool ok = store_->load_after(room, after, max, &msgs, &err);
  std::vector<std::string> keys(msgs.size());
  done(ok, std::move(msgs), std::move(keys), err);
}

}  // namespace chatws::chat
