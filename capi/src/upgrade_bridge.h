// Between the C ABI's handle (chatws.cpp) and its upgrade-hook part
// (upgrade.cpp): the hook call and the error slot, so that the hook's code
// stays out of chatws.cpp.
#pragma once

#include <string>

#include "chatws.h"
#include "server/server.h"

namespace chatws::capi {

// Sets chatws_last_error() on this thread; returns code. (chatws.cpp)
int set_error(int code, std::string msg);
// The engine of a handle (never NULL for a created server). (chatws.cpp)
chatws::Server* engine(chatws_server* s);

// Shows `r` to the host's hook and turns its answer into *v (an answer that
// cannot be read becomes a 500 with `why` logged by the engine). Exceptions
// do not escape. (upgrade.cpp)
void call_upgrade_hook(chatws_server* s, chatws_upgrade_cb cb, void* user,
                       const chatws::UpgradeRequest& r, chatws::UpgradeVerdict* v);

}  // namespace chatws::capi
