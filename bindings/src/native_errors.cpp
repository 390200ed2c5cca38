#include "native_errors.h"

#include <chatws.h>

namespace py = pybind11;

namespace chatws_py {

std::string failure_text(int code) {
  std::string text = chatws_last_error();
  if (text.empty()) text = chatws_strerror(code);
  return text;
}

void raise_error(int code, const std::string& message) {
  // The hierarchy lives in Python so that the public API owns it; the
  // factory maps a code to its class.
  py::object factory = py::module_::import("chatws._errors").attr("_from_native");
  py::object exc = factory(code, message);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

void raise_last_error(int code) { raise_error(code, failure_text(code)); }

}  // namespace chatws_py
