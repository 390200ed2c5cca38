// chatws_options.on_upgrade for Python: the request as a dict for
// chatws._access._dispatch_upgrade, its answer back into C.
#include "native_upgrade.h"

#include "native_callbacks.h"
#include "native_server.h"

namespace chatws_py {

namespace {

PyObject* str_of(const char* s) {
  // From the network: never fail on bytes that are not UTF-8.
  return PyUnicode_DecodeUTF8(s, static_cast<Py_ssize_t>(std::char_traits<char>::length(s)),
                              "surrogateescape");
}

py::list pairs(const chatws_header* list, size_t n) {
  py::list out;
  for (size_t i = 0; i < n; ++i) {
    out.append(py::make_tuple(py::reinterpret_steal<py::object>(str_of(list[i].name)),
                              py::reinterpret_steal<py::object>(str_of(list[i].value))));
  }
  return out;
}

}  // namespace

bool read_answer(PyObject* obj, AnswerStore* out, std::string* why) {
  chatws_upgrade_answer_init(&out->answer);
  if (obj == Py_None) return true;
  if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 6) {
    *why = "upgrade answer must be None or a 6-tuple";
    return false;
  }
  chatws_upgrade_answer& a = out->answer;
  a.action = static_cast<int>(PyLong_AsLong(PyTuple_GET_ITEM(obj, 0)));
  a.status = static_cast<int>(PyLong_AsLong(PyTuple_GET_ITEM(obj, 2)));
  if (PyErr_Occurred()) {
    PyErr_Clear();
    *why = "upgrade answer: action and status must be ints";
    return false;
  }
  PyObject* identity = PyTuple_GET_ITEM(obj, 1);
  if (identity != Py_None) {
    if (!utf8_of(identity, &out->identity)) {
      *why = "identity must be a str (valid UTF-8) or None";
      return false;
    }
    a.identity = out->identity.c_str();
  }
  if (!utf8_of(PyTuple_GET_ITEM(obj, 3), &out->reason) || !utf8_of(PyTuple_GET_ITEM(obj, 4), &out->body)) {
    *why = "reason and body must be str";
    return false;
  }
  a.reason = out->reason.c_str();
  a.body = out->body.c_str();
  py::sequence hs = py::reinterpret_borrow<py::sequence>(PyTuple_GET_ITEM(obj, 5));
  out->strings.clear();
  out->strings.reserve(2 * hs.size());  // no reallocation: the pointers below stay valid
  out->headers.clear();
  for (py::handle h : hs) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(h);
    std::string name, value;
    if (t.size() != 2 || !utf8_of(t[0].ptr(), &name) || !utf8_of(t[1].ptr(), &value)) {
      *why = "headers must be (name, value) pairs of str";
      return false;
    }
    out->strings.push_back(std::move(name));
    const char* n = out->strings.back().c_str();
    out->strings.push_back(std::move(value));
    out->headers.push_back({n, out->strings.back().c_str()});
  }
  a.headers = out->headers.data();
  a.header_count = out->headers.size();
  return true;
}

void on_upgrade(chatws_server*, const chatws_upgrade_request* req, chatws_upgrade_answer* answer,
                void* user) {
  auto* self = static_cast<NativeServer*>(user);
  if (!self->upgrade_enabled()) return;  // no Python hook set: accept without the GIL
  PyGILState_STATE gil = PyGILState_Ensure();
  NativeServer::InCallback in(self);
  // The strings of the answer must outlive this call only until the
  // library has copied them (right after it returns).
  static thread_local AnswerStore store;
  try {
    py::object owner = py::reinterpret_steal<py::object>(self->owner());
    if (owner) {
      py::dict r;
      r["id"] = req->id;
      r["method"] = py::reinterpret_steal<py::object>(str_of(req->method));
      r["path"] = py::reinterpret_steal<py::object>(str_of(req->path));
      r["raw_path"] = py::reinterpret_steal<py::object>(str_of(req->raw_path));
      r["query"] = py::reinterpret_steal<py::object>(str_of(req->query));
      r["params"] = pairs(req->query_params, req->query_param_count);
      r["headers"] = pairs(req->headers, req->header_count);
      r["cookies"] = pairs(req->cookies, req->cookie_count);
      r["remote_address"] = py::reinterpret_steal<py::object>(str_of(req->remote_address));
      r["remote_port"] = req->remote_port;
      py::list offered;
      for (size_t i = 0; i < req->subprotocol_count; ++i)
        offered.append(py::reinterpret_steal<py::object>(str_of(req->subprotocols[i])));
      r["subprotocols"] = offered;
      r["subprotocol"] = py::reinterpret_steal<py::object>(str_of(req->subprotocol));
      // The dispatcher never raises: a hook failure becomes a 500 answer.
      py::object result = self->dispatch().upgrade(owner, r);
      std::string why;
      if (read_answer(result.ptr(), &store, &why)) {
        *answer = store.answer;
      } else {
        answer->action = CHATWS_UPGRADE_REJECT;
        answer->status = 500;
      }
    }
  } catch (py::error_already_set&) {
    self->callback_failed();
    answer->action = CHATWS_UPGRADE_REJECT;
    answer->status = 500;
  } catch (...) {
    answer->action = CHATWS_UPGRADE_REJECT;
    answer->status = 500;
  }
  PyGILState_Release(gil);
}

}  // namespace chatws_py
