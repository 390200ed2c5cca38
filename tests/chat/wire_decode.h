// Decoding of the server's chat payloads in tests, with simdjson, strictly:
// a payload that does not have exactly the documented shape fails to decode.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chatws::test {

struct Entry {
  int64_t id = 0;  // v1 only
  std::string user, text;
  int64_t time = 0;
};

inline bool decode_entry(simdjson::dom::element e, bool with_id, Entry* out) {
  simdjson::dom::object o;
  if (e.get_object().get(o)) return false;
  if (o.size() != (with_id ? 4u : 3u)) return false;
  std::string_view u, t;
  if (o["user"].get_string().get(u) || o["text"].get_string().get(t) || o["time"].get_int64().get(out->time)) {
    return false;
  }
  if (with_id && o["id"].get_int64().get(out->id)) return false;
  out->user.assign(u);
  out->text.assign(t);
  return true;
}

// {"msg":[{"user","text","time"}...]}
inline bool decode_snapshot(const std::string& payload, std::vector<Entry>* out) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  simdjson::dom::array a;
  out->clear();
  if (p.parse(payload).get_object().get(o) || o.size() != 1 || o["msg"].get_array().get(a)) return false;
  for (auto e : a) {
    Entry en;
    if (!decode_entry(e, false, &en)) return false;
    out->push_back(std::move(en));
  }
  return true;
}

// The texts of a classic snapshot, newest first; {"<bad snapshot: ...>"}
// if it is malformed.
inline std::vector<std::string> snapshot_texts(const std::string& payload) {
  std::vector<Entry> entries;
  if (!decode_snapshot(payload, &entries)) return {"<bad snapshot: " + payload + ">"};
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(e.text);
  return out;
}

struct V1 {
  std::string type;
  std::string room;            // hello
  int64_t you = 0;             // hello
  int64_t members = -1;        // hello, join, leave
  std::vector<Entry> history;  // hello
  Entry msg;                   // msg
  std::string error;           // error
};

inline bool decode_v1(const std::string& payload, V1* out) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  std::string_view type;
  *out = V1{};
  if (p.parse(payload).get_object().get(o) || o["type"].get_string().get(type)) return false;
  out->type.assign(type);
  if (type == "hello") {
    std::string_view room;
    simdjson::dom::array h;
    if (o.size() != 5 || o["room"].get_string().get(room) || o["you"].get_int64().get(out->you) ||
        o["members"].get_int64().get(out->members) || o["history"].get_array().get(h)) {
      return false;
    }
    out->room.assign(room);
    for (auto e : h) {
      Entry en;
      if (!decode_entry(e, true, &en)) return false;
      out->history.push_back(std::move(en));
    }
    return true;
  }
  if (type == "msg") {
    // Same fields as a history entry, plus "type".
    std::string_view u, t;
    if (o.size() != 5 || o["id"].get_int64().get(out->msg.id) || o["user"].get_string().get(u) ||
        o["text"].get_string().get(t) || o["time"].get_int64().get(out->msg.time)) {
      return false;
    }
    out->msg.user.assign(u);
    out->msg.text.assign(t);
    return true;
  }
  if (type == "join" || type == "leave") return o.size() == 2 && !o["members"].get_int64().get(out->members);
  if (type == "error") {
    std::string_view e;
    if (o.size() != 2 || o["error"].get_string().get(e)) return false;
    out->error.assign(e);
    return true;
  }
  return false;
}

// {"error":"..."} -> the reason, or "<not an error: ...>".
inline std::string decode_classic_error(const std::string& payload) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  std::string_view e;
  if (p.parse(payload).get_object().get(o) || o.size() != 1 || o["error"].get_string().get(e)) {
    return "<not an error: " + payload + ">";
  }
  return std::string(e);
}

}  // namespace chatws::test
