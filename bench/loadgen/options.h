// Command-line options of chatws-loadgen.
#pragma once

#include <cstdint>
#include <string>

namespace chatws::bench {

enum class Mode { Echo, Broadcast, Idle };

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/";
  Mode mode = Mode::Echo;
  int connections = 100;
  size_t size = 32;          // payload bytes of every message
  int window = 16;           // messages in flight per connection (echo) / publisher (broadcast)
  int publishers = 1;        // broadcast: how many of the connections publish
  double duration_s = 5;     // measured interval
  double warmup_s = 1;       // traffic before the measured interval, not counted
  int server_pid = 0;        // 0: no server CPU / RSS figures
  bool binary = false;       // binary frames instead of (ASCII) text
  bool tls = false;          // wss:// (OpenSSL client; the server's certificate is not verified)
  bool json = false;         // also print one machine-readable JSON line
  bool chat = false;         // broadcast through the built-in chat (chatws.v1) instead
  bool deflate = false;      // offer permessage-deflate; compressed messages are inflated
  int source_addresses = 1;  // bind to 127.0.0.1 .. 127.0.0.N (idle mode, many conns)
  bool batch_writes = false; // write replies at the end of each epoll batch, not per connection
  int connect_batch = 256;   // handshakes in progress at once
  double connect_timeout_s = 30;  // all connections must be open within this
  int threads = 1;           // shards, one thread and epoll each (connections dealt round-robin)
  std::string label;         // free text copied to the output (e.g. the server's name)
};

// Parses argv; on --help prints usage and exits 0, on a bad option prints
// the reason and usage and exits 2.
Options parse_options(int argc, char** argv);

const char* mode_name(Mode m);

}  // namespace chatws::bench
