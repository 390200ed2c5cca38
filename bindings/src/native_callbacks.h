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

}  // namespace chatws_py
