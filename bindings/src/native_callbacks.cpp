#include "native_callbacks.h"

#include <string>

#include "native_server.h"

namespace chatws_py {

bool utf8_of(PyObject* s, std::string* buf) {
  if (!PyUnicode_Check(s)) return false;
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (!p) {
    PyErr_Clear();
    return false;
  }
  buf->assign(p, static_cast<size_t>(n));
  return true;
}

namespace {

// The callbacks run on the loop thread, which released the GIL around the
// loop; the raw GILState calls are the cheapest way back in (this is the
// per-message path).
// Also marks the thread as one of self's loop threads for the callback's
// duration (several loops: the callbacks come from threads of the library).
class Gil {
 public:
  explicit Gil(NativeServer* self) : state_(PyGILState_Ensure()), in_(self) {}
  ~Gil() { PyGILState_Release(state_); }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  PyGILState_STATE state_;
  NativeServer::InCallback in_;
};

// An owned PyObject* (the raw C API keeps this path allocation-light).
class Ref {
 public:
  explicit Ref(PyObject* p = nullptr) : p_(p) {}
  ~Ref() { Py_XDECREF(p_); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  PyObject* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  PyObject* p_;
};

PyObject* text(const char* s) {
  // Paths come from the network: never fail on bytes that are not UTF-8.
  return s ? PyUnicode_DecodeUTF8(s, static_cast<Py_ssize_t>(std::char_traits<char>::length(s)),
                                  "surrogateescape")
           : PyUnicode_FromStringAndSize("", 0);
}

// Calls fn(args...) and returns the result (nullptr after reporting a failure).
template <size_t N>
PyObject* call(NativeServer* self, const py::object& fn, PyObject* const (&args)[N]) {
  for (PyObject* a : args) {
    if (!a) {
      self->callback_failed();
      return nullptr;
    }
  }
  if (!fn) return nullptr;  // the server is closing: dispatchers were dropped
  PyObject* r = PyObject_Vectorcall(fn.ptr(), args, N, nullptr);
  if (!r) self->callback_failed();
  return r;
}

void on_open(chatws_server* server, chatws_conn_id id, void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return;
  chatws_conn_info info{};
  info.struct_size = sizeof info;
  if (chatws_conn_get_info(server, id, &info) != CHATWS_OK) info = chatws_conn_info{};
  Ref cid(PyLong_FromUnsignedLongLong(id));
  Ref address(text(info.remote_address));
  Ref port(PyLong_FromLong(info.remote_port));
  Ref path(text(info.path));
  Ref subprotocol(text(info.subprotocol));
  // Bound by the upgrade hook (None: none), and the upgrade's query string.
  Ref identity(info.identity ? text(info.identity) : (Py_INCREF(Py_None), Py_None));
  Ref query(text(info.query));
  Ref r(call(self, self->dispatch().open,
             {owner.get(), cid.get(), address.get(), port.get(), path.get(), subprotocol.get(),
              identity.get(), query.get()}));
}

void on_message(chatws_server*, chatws_conn_id id, const char* data, size_t len, int is_binary,
                void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return;
  const auto n = static_cast<Py_ssize_t>(len);
  // Text was validated as UTF-8 by the engine.
  Ref payload(is_binary ? PyBytes_FromStringAndSize(data, n) : PyUnicode_DecodeUTF8(data, n, nullptr));
  Ref cid(PyLong_FromUnsignedLongLong(id));
  Ref r(call(self, self->dispatch().message, {owner.get(), cid.get(), payload.get()}));
}

void on_close(chatws_server*, chatws_conn_id id, int code, const char* reason, void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return;
  Ref cid(PyLong_FromUnsignedLongLong(id));
  Ref pycode(PyLong_FromLong(code));
  Ref pyreason(text(reason));
  Ref r(call(self, self->dispatch().close, {owner.get(), cid.get(), pycode.get(), pyreason.get()}));
}

void on_drain(chatws_server*, chatws_conn_id id, void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return;
  Ref cid(PyLong_FromUnsignedLongLong(id));
  Ref r(call(self, self->dispatch().drain, {owner.get(), cid.get()}));
}

int on_chat(chatws_server*, chatws_conn_id id, chatws_chat_message* msg, void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return CHATWS_CHAT_ACCEPT;  // no host hook any more: as if none was set
  Ref cid(PyLong_FromUnsignedLongLong(id));
  Ref room(text(msg->room));
  Ref name(PyUnicode_DecodeUTF8(msg->user, static_cast<Py_ssize_t>(msg->user_len), "replace"));
  Ref body(PyUnicode_DecodeUTF8(msg->text, static_cast<Py_ssize_t>(msg->text_len), "replace"));
  Ref time(PyLong_FromLongLong(msg->time_ms));
  Ref r(call(self, self->dispatch().chat,
             {owner.get(), cid.get(), room.get(), name.get(), body.get(), time.get()}));
  // The Python dispatcher normalises the hook's answer to None (accept),
  // False (reject) or a (user, text) tuple (rewrite); a failure rejects.
  if (!r) return CHATWS_CHAT_REJECT;
  if (r.get() == Py_None) return CHATWS_CHAT_ACCEPT;
  if (PyTuple_Check(r.get()) && PyTuple_GET_SIZE(r.get()) == 2) {
    // The engine copies and re-validates the rewrite before we return, so
    // these buffers only need to outlive the callback.
    static thread_local std::string user_buf, text_buf;
    if (utf8_of(PyTuple_GET_ITEM(r.get(), 0), &user_buf) &&
        utf8_of(PyTuple_GET_ITEM(r.get(), 1), &text_buf)) {
      msg->user = user_buf.data();
      msg->user_len = user_buf.size();
      msg->text = text_buf.data();
      msg->text_len = text_buf.size();
      return CHATWS_CHAT_ACCEPT;
    }
  }
  return CHATWS_CHAT_REJECT;
}

void on_log(chatws_server*, int level, const char* message, void* user) {
  auto* self = static_cast<NativeServer*>(user);
  Gil gil(self);
  Ref owner(self->owner());
  if (!owner) return;
  Ref pylevel(PyLong_FromLong(level));
  Ref pymessage(text(message));
  Ref r(call(self, self->dispatch().log, {owner.get(), pylevel.get(), pymessage.get()}));
}

}  // namespace

void install_callbacks(chatws_options* opts, NativeServer* server) {
  opts->on_open = on_open;
  opts->on_message = on_message;
  opts->on_close = on_close;
  opts->on_drain = on_drain;
  opts->on_chat = on_chat;
  if (server->dispatch().log) opts->on_log = on_log;
  if (server->dispatch().upgrade) opts->on_upgrade = on_upgrade;
  opts->user = server;
}

}  // namespace chatws_py
