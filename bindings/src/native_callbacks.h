// The C callbacks of chatws_options: each takes the GIL, finds the Python
// Server through its weak reference and calls the matching dispatcher.
// Nothing raised in Python ever propagates into C.
#pragma once

#include <chatws.h>

namespace chatws_py {

class NativeServer;

// Point every callback of *opts at the forwarding functions, with `server`
// as their user pointer.
void install_callbacks(chatws_options* opts, NativeServer* server);

// chatws_options.on_upgrade of a Python server (native_upgrade.cpp).
void on_upgrade(chatws_server* server, const chatws_upgrade_request* req,
                chatws_upgrade_answer* answer, void* user);

}  // namespace chatws_py
