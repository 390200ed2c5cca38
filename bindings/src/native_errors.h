// Turning C ABI failures into Python exceptions of the chatws.Error
// hierarchy (defined in Python, chatws/_errors.py).
#pragma once

#include <string>

#include <pybind11/pybind11.h>

namespace chatws_py {

// The details of a failure, captured right after the failing chatws_* call
// on the same thread (chatws_last_error() is thread-local and is overwritten
// by the next call): chatws_last_error() text, or chatws_strerror() if empty.
std::string failure_text(int code);

// Raise the chatws.Error subclass for `code` with `message`. The GIL must be
// held. Throws pybind11::error_already_set.
[[noreturn]] void raise_error(int code, const std::string& message);

// Raise with a message built from failure_text(code).
[[noreturn]] void raise_last_error(int code);

}  // namespace chatws_py
