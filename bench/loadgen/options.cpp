#include "options.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "chat_codec.h"

namespace chatws::bench {
namespace {

void usage(FILE* out) {
  std::fputs(
      "usage: chatws-loadgen --port N [options]\n"
      "  --host ADDR          server address (default 127.0.0.1)\n"
      "  --port N             server port (required)\n"
      "  --path P             request path of the upgrade (default /)\n"
      "  --mode M             echo | broadcast | idle (default echo)\n"
      "  --connections N      WebSocket connections (default 100)\n"
      "  --size B             payload bytes per message, >= 24 (default 32)\n"
      "  --window W           messages in flight per connection / publisher (default 16)\n"
      "  --publishers P       broadcast: publishing connections (default 1)\n"
      "  --duration S         measured seconds (default 5)\n"
      "  --warmup S           unmeasured seconds before (default 1)\n"
      "  --server-pid PID     read the server's CPU time and RSS from /proc\n"
      "  --binary             send binary frames (default: ASCII text)\n"
      "  --tls                wss:// instead of ws:// (TLS 1.3 by OpenSSL; certificate not verified)\n"
      "  --deflate            offer permessage-deflate (client_no_context_takeover; sends\n"
      "                       uncompressed, inflates what comes compressed; broadcast:\n"
      "                       only the publishers inflate, the others count, so the\n"
      "                       latency figures are the publishers' own copies)\n"
      "  --chat               with --mode broadcast: talk to the built-in chat\n"
      "                       (subprotocol chatws.v1, path /rooms/bench unless --path)\n"
      "  --batch-writes       write replies once per epoll batch instead of right after\n"
      "                       each connection's input (the default)\n"
      "  --source-addresses K bind connections to 127.0.0.1 .. 127.0.0.K (default 1)\n"
      "  --connect-batch N    handshakes in progress at once (default 256)\n"
      "  --connect-timeout S  seconds to open all connections (default 30)\n"
      "  --threads N          N threads, each with its own epoll and every Nth\n"
      "                       connection (default 1); figures are summed\n"
      "  --label TEXT         copied to the output\n"
      "  --json               also print one JSON line\n",
      out);
}

[[noreturn]] void bad(const char* what, const char* value) {
  std::fprintf(stderr, "chatws-loadgen: %s: %s\n", what, value ? value : "(missing)");
  usage(stderr);
  std::exit(2);
}

long to_long(const char* opt, const char* v, long lo, long hi) {
  if (!v) bad(opt, v);
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n < lo || n > hi) bad(opt, v);
  return n;
}

double to_double(const char* opt, const char* v, double lo, double hi) {
  if (!v) bad(opt, v);
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (*v == '\0' || *end != '\0' || !(d >= lo && d <= hi)) bad(opt, v);
  return d;
}

}  // namespace

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Echo: return "echo";
    case Mode::Broadcast: return "broadcast";
    case Mode::Idle: return "idle";
  }
  return "?";
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool path_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto take = [&] { ++i; return v; };
    if (a == "--help" || a == "-h") { usage(stdout); std::exit(0); }
    else if (a == "--host") { if (!v) bad("--host", v); o.host = take(); }
    else if (a == "--port") o.port = int(to_long("--port", take(), 1, 65535));
    else if (a == "--path") { if (!v || v[0] != '/') bad("--path", v); o.path = take(); path_given = true; }
    else if (a == "--mode") {
      std::string_view m = v ? v : "";
      take();
      if (m == "echo") o.mode = Mode::Echo;
      else if (m == "broadcast") o.mode = Mode::Broadcast;
      else if (m == "idle") o.mode = Mode::Idle;
      else bad("--mode", v);
    }
    else if (a == "--connections") o.connections = int(to_long("--connections", take(), 1, 1000000));
    else if (a == "--size") o.size = size_t(to_long("--size", take(), 24, 64L << 20));
    else if (a == "--window") o.window = int(to_long("--window", take(), 1, 100000));
    else if (a == "--publishers") o.publishers = int(to_long("--publishers", take(), 1, 1000000));
    else if (a == "--duration") o.duration_s = to_double("--duration", take(), 0.1, 3600);
    else if (a == "--warmup") o.warmup_s = to_double("--warmup", take(), 0, 3600);
    else if (a == "--server-pid") o.server_pid = int(to_long("--server-pid", take(), 1, 1L << 30));
    else if (a == "--binary") o.binary = true;
    else if (a == "--tls") o.tls = true;
    else if (a == "--chat") o.chat = true;
    else if (a == "--deflate") o.deflate = true;
    else if (a == "--json") o.json = true;
    else if (a == "--batch-writes") o.batch_writes = true;
    else if (a == "--source-addresses") o.source_addresses = int(to_long("--source-addresses", take(), 1, 254));
    else if (a == "--connect-batch") o.connect_batch = int(to_long("--connect-batch", take(), 1, 100000));
    else if (a == "--connect-timeout") o.connect_timeout_s = to_double("--connect-timeout", take(), 0.1, 3600);
    else if (a == "--threads") o.threads = int(to_long("--threads", take(), 1, 64));
    else if (a == "--label") { if (!v) bad("--label", v); o.label = take(); }
    else bad("unknown option", argv[i]);
  }
  if (o.port == 0) bad("--port", nullptr);
  if (o.chat) {
    // The chat relays a message to every room member, the sender included:
    // exactly the broadcast workload. Chat messages are text by definition.
    if (o.mode != Mode::Broadcast) bad("--chat needs --mode broadcast", mode_name(o.mode));
    if (o.binary) bad("--chat", "chat messages are text; drop --binary");
    if (!path_given) o.path = std::string(kChatDefaultPath);
  }
  if (o.threads > o.connections)
    bad("--threads exceeds --connections", std::to_string(o.threads).c_str());
  if (o.mode == Mode::Broadcast && o.publishers > o.connections)
    bad("--publishers exceeds --connections", std::to_string(o.publishers).c_str());
  return o;
}

}  // namespace chatws::bench
