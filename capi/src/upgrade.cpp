// The C ABI of the upgrade hook (issue 12): the request view handed to
// chatws_options.on_upgrade, its answer, and chatws_upgrade_resolve().
#include <cstddef>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "chatws.h"
#include "protocol/http_request.h"
#include "upgrade_bridge.h"

namespace chatws::capi {

namespace {

// The C view of one request, with the NUL-terminated copies it points into
// (the engine's views are not NUL-terminated). A deque: pointers into it
// stay valid as it grows.
struct RequestView {
  chatws_upgrade_request c{};
  std::deque<std::string> store;
  std::vector<chatws_header> params, headers, cookies;
  std::vector<const char*> offered;

  const char* keep(std::string_view s) { return store.emplace_back(s).c_str(); }

  explicit RequestView(const UpgradeRequest& r) {
    c.struct_size = sizeof c;
    c.id = r.id;
    c.method = keep(r.method);
    c.path = r.path.c_str();
    c.raw_path = keep(r.raw_path);
    c.query = keep(r.query);
    for (const auto& [n, v] : r.params) params.push_back({n.c_str(), v.c_str()});
    for (const auto& [n, v] : *r.headers) headers.push_back({keep(n), keep(v)});
    for (const auto& [n, v] : r.cookies) cookies.push_back({n.c_str(), v.c_str()});
    for (const auto& p : r.offered) offered.push_back(p.c_str());
    c.query_params = params.data();
    c.query_param_count = params.size();
    c.headers = headers.data();
    c.header_count = headers.size();
    c.cookies = cookies.data();
    c.cookie_count = cookies.size();
    c.remote_address = r.remote_address.c_str();
    c.remote_port = r.remote_port;
    c.subprotocols = offered.data();
    c.subprotocol_count = offered.size();
    c.subprotocol = keep(r.subprotocol);
  }
};

// Reads the host's answer into *v; false (and *why) if it cannot be read.
// The rules on its content are the engine's (validate_verdict).
bool to_verdict(const chatws_upgrade_answer* a, bool may_pend, UpgradeVerdict* v,
                std::string* why) {
  if (!a || a->struct_size < offsetof(chatws_upgrade_answer, header_count) + sizeof(size_t)) {
    *why = "answer is NULL or its struct_size is too small: use chatws_upgrade_answer_init()";
    return false;
  }
  switch (a->action) {
    case CHATWS_UPGRADE_ACCEPT:
      v->kind = UpgradeVerdict::Accept;
      break;
    case CHATWS_UPGRADE_REJECT:
      v->kind = UpgradeVerdict::Reject;
      break;
    case CHATWS_UPGRADE_PENDING:
      if (!may_pend) {
        *why = "a resolve answer must be CHATWS_UPGRADE_ACCEPT or CHATWS_UPGRADE_REJECT";
        return false;
      }
      v->kind = UpgradeVerdict::Pending;
      return true;
    default:
      *why = "answer.action must be CHATWS_UPGRADE_ACCEPT, _REJECT or _PENDING";
      return false;
  }
  if (a->header_count && !a->headers) {
    *why = "answer.headers is NULL but header_count is not 0";
    return false;
  }
  for (size_t i = 0; i < a->header_count; ++i) {
    if (!a->headers[i].name || !a->headers[i].value) {
      *why = "answer.headers[" + std::to_string(i) + "] has a NULL name or value";
      return false;
    }
    v->headers.emplace_back(a->headers[i].name, a->headers[i].value);
  }
  if (v->kind == UpgradeVerdict::Accept) {
    v->has_identity = a->identity != nullptr;
    if (a->identity) v->identity = a->identity;
    v->user_data = a->user_data;
  } else {
    v->status = a->status;
    if (a->reason) v->reason = a->reason;
    if (a->body) v->body = a->body;
  }
  return true;
}

}  // namespace

void call_upgrade_hook(chatws_server* s, chatws_upgrade_cb cb, void* user,
                       const UpgradeRequest& r, UpgradeVerdict* v) {
  try {
    RequestView view(r);
    chatws_upgrade_answer a;
    chatws_upgrade_answer_init(&a);
    cb(s, &view.c, &a, user);
    std::string why;
    if (!to_verdict(&a, true, v, &why)) {
      // Refused as the engine refuses a bad verdict: a 500, and why in on_log.
      *v = UpgradeVerdict{};
      v->invalid = why;
    }
  } catch (...) {
    *v = UpgradeVerdict{};
    v->kind = UpgradeVerdict::Reject;
    v->status = 500;
  }
}

}  // namespace chatws::capi

extern "C" {

namespace {
const char* find_in(const chatws_header* list, size_t n, const char* name, bool ci) {
  if (!list || !name) return nullptr;
  for (size_t i = 0; i < n; ++i) {
    if (ci ? chatws::protocol::ascii_iequals(list[i].name, name)
           : std::strcmp(list[i].name, name) == 0)
      return list[i].value;
  }
  return nullptr;
}
}  // namespace

const char* chatws_upgrade_header(const chatws_upgrade_request* req, const char* name) {
  return req ? find_in(req->headers, req->header_count, name, true) : nullptr;
}

const char* chatws_upgrade_query_param(const chatws_upgrade_request* req, const char* name) {
  return req ? find_in(req->query_params, req->query_param_count, name, false) : nullptr;
}

const char* chatws_upgrade_cookie(const chatws_upgrade_request* req, const char* name) {
  return req ? find_in(req->cookies, req->cookie_count, name, false) : nullptr;
}

void chatws_upgrade_answer_init(chatws_upgrade_answer* a) {
  if (!a) return;
  std::memset(a, 0, sizeof *a);
  a->struct_size = sizeof *a;
}

int chatws_upgrade_resolve(chatws_server* s, chatws_conn_id request,
                           const chatws_upgrade_answer* answer) {
  using namespace chatws::capi;
  try {
    if (!s) return set_error(CHATWS_EINVAL, "server is NULL");
    chatws::UpgradeVerdict v;
    std::string why;
    if (!to_verdict(answer, false, &v, &why)) return set_error(CHATWS_EINVAL, why);
    int rc = engine(s)->resolve_upgrade(request, std::move(v), &why);
    return rc == CHATWS_OK ? set_error(rc, "") : set_error(rc, why);
  } catch (const std::bad_alloc&) {
    return set_error(CHATWS_ENOMEM, "out of memory");
  } catch (...) {
    return set_error(CHATWS_EINTERNAL, "internal error");
  }
}

}  // extern "C"
