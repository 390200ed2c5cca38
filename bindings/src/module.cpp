// chatws._native: the Python extension over the C ABI (chatws.h only).
// The public API is the pure-Python package around it; see chatws/_native.pyi.
#include <chatws.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "native_server.h"

namespace py = pybind11;
using chatws_py::Dispatch;
using chatws_py::NativeServer;

PYBIND11_MODULE(_native, m) {
  m.doc() = "Thin binding of libchatws's C ABI (internal; use the chatws package).";

  // Compile-time version of the header this module was built against, and
  // the run-time version of the library linked in (checked equal at import).
  m.attr("HEADER_VERSION") = CHATWS_VERSION_STRING;
  m.def("version", [] { return std::string(chatws_version()); },
        "chatws_version(): the version of the linked library.");
  m.def("version_number", &chatws_version_number);
  m.def("strerror", [](int code) { return std::string(chatws_strerror(code)); });

  py::module_ codes = m.def_submodule("codes", "CHATWS_* constants of chatws.h");
  codes.attr("OK") = static_cast<int>(CHATWS_OK);
  codes.attr("EINVAL") = static_cast<int>(CHATWS_EINVAL);
  codes.attr("ENOMEM") = static_cast<int>(CHATWS_ENOMEM);
  codes.attr("ENOCONN") = static_cast<int>(CHATWS_ENOCONN);
  codes.attr("ETHREAD") = static_cast<int>(CHATWS_ETHREAD);
  codes.attr("ESTATE") = static_cast<int>(CHATWS_ESTATE);
  codes.attr("ESYSTEM") = static_cast<int>(CHATWS_ESYSTEM);
  codes.attr("ETOOBIG") = static_cast<int>(CHATWS_ETOOBIG);
  codes.attr("EFULL") = static_cast<int>(CHATWS_EFULL);
  codes.attr("ESTOPPED") = static_cast<int>(CHATWS_ESTOPPED);
  codes.attr("ESTORAGE") = static_cast<int>(CHATWS_ESTORAGE);
  codes.attr("EINTERNAL") = static_cast<int>(CHATWS_EINTERNAL);
  codes.attr("QUEUED_OVER_LIMIT") = CHATWS_QUEUED_OVER_LIMIT;
  codes.attr("SLOW_CLOSE") = CHATWS_SLOW_CLOSE;
  codes.attr("SLOW_DROP") = CHATWS_SLOW_DROP;
  codes.attr("TLS_1_2") = CHATWS_TLS_1_2;
  codes.attr("TLS_1_3") = CHATWS_TLS_1_3;
  codes.attr("UPGRADE_ACCEPT") = CHATWS_UPGRADE_ACCEPT;
  codes.attr("UPGRADE_REJECT") = CHATWS_UPGRADE_REJECT;
  codes.attr("UPGRADE_PENDING") = CHATWS_UPGRADE_PENDING;

  py::class_<NativeServer>(m, "Server")
      .def(py::init([](const py::dict& options, py::object owner_ref, py::object on_open,
                       py::object on_message, py::object on_close, py::object on_drain,
                       py::object on_chat, py::object on_log, py::object on_upgrade) {
             Dispatch d{std::move(on_open), std::move(on_message), std::move(on_close),
                        std::move(on_drain), std::move(on_chat),
                        on_log.is_none() ? py::object() : std::move(on_log),
                        on_upgrade.is_none() ? py::object() : std::move(on_upgrade)};
             return new NativeServer(options, std::move(owner_ref), std::move(d));
           }),
           py::arg("options"), py::arg("owner_ref"), py::arg("on_open"), py::arg("on_message"),
           py::arg("on_close"), py::arg("on_drain"), py::arg("on_chat"),
           py::arg("on_log") = py::none(), py::arg("on_upgrade") = py::none())
      .def_property_readonly("port", &NativeServer::port)
      .def_property_readonly("fd", &NativeServer::fd)
      .def_property_readonly("closed", &NativeServer::closed)
      .def("run", &NativeServer::run, py::arg("slice_ms"))
      .def("poll", &NativeServer::poll, py::arg("timeout_ms"))
      .def("stop", &NativeServer::stop)
      .def("stopped", &NativeServer::stopped)
      .def("running", &NativeServer::running)
      .def("on_loop_thread", &NativeServer::on_loop_thread)
      .def("send", &NativeServer::send, py::arg("conn_id"), py::arg("data"))
      .def("broadcast", &NativeServer::broadcast, py::arg("data"), py::arg("exclude"))
      .def("close_connection", &NativeServer::close_connection, py::arg("conn_id"),
           py::arg("code"), py::arg("reason"))
      .def("connection_count", &NativeServer::connection_count)
      .def("stats", &NativeServer::stats)
      .def("metrics_port", &NativeServer::metrics_port)
      .def("chat_post", &NativeServer::chat_post, py::arg("room"), py::arg("user"),
           py::arg("text"))
      .def("reload_tls", &NativeServer::reload_tls, py::arg("cert_file"), py::arg("key_file"),
           py::arg("key_passphrase"))
      .def("resolve_upgrade", &NativeServer::resolve_upgrade, py::arg("request_id"),
           py::arg("answer"))
      .def("set_upgrade_enabled", &NativeServer::set_upgrade_enabled, py::arg("on"))
      .def("close", &NativeServer::close);
}
