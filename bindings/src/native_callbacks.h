// The C callbacks of chatws_options: each takes the GIL, finds the Python
// Server through its weak reference and calls the matching dispatcher.
// Nothing raised in Python ever propagates into C.
#pragma once

#include <Python.h>
#include <chatws.h>

#include <string>

namespace chatws_py {

class NativeServer;

// Point every callback of *opts at the forwarding functions, with `server`
// as their user pointer.
void install_callbacks(chatws_options* opts, NativeServer* server);
// Reads a str into *buf as UTF-8; false (no Python error left set) if it is
// not a str or cannot be encoded.
bool utf8_of(PyObject* s, std::string* buf);

// chatws_options.on_upgrade of a Python server (native_upgrade.cpp).
void on_upgrade(chatws_server* server, const chatws_upgrade_request* req,
                chatws_upgrade_answer* answer, void* user);

}  // namespace chatws_py
