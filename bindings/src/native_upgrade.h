// The upgrade hook's Python answer in C form. An answer is None (accept as
// is) or a tuple (action, identity, status, reason, body, headers): action
// a CHATWS_UPGRADE_* value, identity str or None, status int, reason and
// body str, headers a sequence of (name, value) str pairs. The Python side
// (chatws._access) builds it from Accept/Reject/coroutines.
#pragma once

#include <string>
#include <vector>

#include <chatws.h>
#include <pybind11/pybind11.h>

namespace chatws_py {

struct AnswerStore {
  chatws_upgrade_answer answer{};
  std::string identity, reason, body;
  std::vector<std::string> strings;  // header names and values
  std::vector<chatws_header> headers;
};

// Fills *out from `obj` (GIL held). False, with *why, if it is malformed.
bool read_answer(PyObject* obj, AnswerStore* out, std::string* why);

}  // namespace chatws_py
