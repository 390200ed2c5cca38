// What another TLS library would change for chatws (issue 13's targets):
// the heap an idle TLS 1.3 server session holds, and the server's cost of
// one record in and one record out, for OpenSSL 3 (what chatws uses),
// wolfSSL and GnuTLS as Debian ships them, and (CHATWS_BENCH_TLS_RUSTLS)
// rustls with each of its crypto providers, from crates.io. In one process over an
// in-memory transport, so only the libraries differ: every server session
// is set up the way chatws sets up OpenSSL's (TLS 1.3, AES-128-GCM, P-256
// certificate, one stateless ticket, no session cache, record buffers
// released when idle where the library can).
//
//   chatws-tls-libraries CERT KEY [sessions] [records]
//
// Prints one line per library: heap bytes per idle server session (glibc's
// in-use count, so fragmentation is not in it), and the server's CPU
// nanoseconds per record pair. Under callgrind (--collect-atstart=no) only
// the server's record calls are counted, which gives instructions per pair.
#include <malloc.h>
#include <time.h>
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "library.h"

namespace tlslibs {
namespace {

// ------------------------------------------------------------- measuring
size_t heap_in_use() { return mallinfo2().uordblks; }

bool handshake(Library& lib, void* server, void* client) {
  bool sd = false, cd = false;
  for (int i = 0; i < 100 && !(sd && cd); ++i) {
    if (!cd) {
      int r = lib.step(client, false);
      if (r < 0) return false;
      cd = r == 1;
    }
    if (!sd) {
      int r = lib.step(server, true);
      if (r < 0) return false;
      sd = r == 1;
    }
  }
  return sd && cd;
}

// One record each way, read to the end: tickets and the like are taken.
bool exchange(Library& lib, void* server, void* client, const std::string& up, const std::string& down,
              bool count_server, long* server_ns) {
  char buf[32768];
  if (!lib.write(client, up.data(), up.size())) return false;
  timespec a, b;
  size_t got = 0;
  if (count_server) {
    CALLGRIND_TOGGLE_COLLECT;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  }
  // A read may return nothing after a record that was not data (GnuTLS
  // after a post-handshake message): bounded retries.
  for (int tries = 0; got < up.size() && tries < 16; ++tries) {
    long r = lib.read(server, buf, sizeof buf);
    if (r < 0) break;
    got += size_t(r);
  }
  const bool wrote = got == up.size() && lib.write(server, down.data(), down.size());
  if (count_server) {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    CALLGRIND_TOGGLE_COLLECT;
    *server_ns += (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
  }
  if (!wrote) return false;
  got = 0;
  for (int tries = 0; got < down.size() && tries < 16; ++tries) {
    long r = lib.read(client, buf, sizeof buf);
    if (r < 0) return false;
    got += size_t(r);
  }
  if (got != down.size()) return false;
  // The client may answer nothing; drain whatever the server left unread.
  while (lib.read(server, buf, sizeof buf) > 0) {
  }
  return true;
}

int measure(Library& lib, const char* cert, const char* key, int sessions, int records) {
  if (!lib.setup(cert, key)) {
    std::fprintf(stderr, "%s: cannot load %s / %s\n", lib.name(), cert, key);
    return 1;
  }
  // Sixteen 32-byte echo frames per record, as in bench/run.py's tls-echo-32.
  const std::string up(16 * 38, 'u'), down(16 * 34, 'd');
  long unused = 0;
  // A warm-up pair: the library's one-time allocations are not per session.
  {
    Link l;
    void* s = lib.server(&l);
    void* c = lib.client(&l);
    if (!handshake(lib, s, c) || !exchange(lib, s, c, up, down, false, &unused)) {
      std::fprintf(stderr, "%s: warm-up handshake failed\n", lib.name());
      return 1;
    }
    lib.release(c);
    lib.release(s);
  }
  malloc_trim(0);
  const size_t before = heap_in_use();
  std::vector<std::unique_ptr<Link>> links;
  std::vector<void*> servers;
  for (int i = 0; i < sessions; ++i) {
    links.push_back(std::make_unique<Link>());
    void* s = lib.server(links.back().get());
    void* c = lib.client(links.back().get());
    if (!handshake(lib, s, c) || !exchange(lib, s, c, std::string(38, 'u'), std::string(34, 'd'), false, &unused)) {
      std::fprintf(stderr, "%s: handshake %d failed\n", lib.name(), i);
      return 1;
    }
    lib.release(c);
    servers.push_back(s);
  }
  size_t link_bytes = 0;
  for (auto& l : links) {
    l->to_server.bytes.shrink_to_fit();
    l->to_client.bytes.shrink_to_fit();
    link_bytes += sizeof(Link) + l->to_server.bytes.capacity() + l->to_client.bytes.capacity();
  }
  const size_t after = heap_in_use();
  const double per_session = (double(after) - double(before) - double(link_bytes)) / sessions;
  for (void* s : servers) lib.release(s);

  // Records: one pair of sessions, `records` exchanges, the server's calls timed.
  Link l;
  void* s = lib.server(&l);
  void* c = lib.client(&l);
  if (!handshake(lib, s, c)) return 1;
  long ns = 0;
  for (int i = 0; i < records; ++i) {
    if (!exchange(lib, s, c, up, down, true, &ns)) {
      std::fprintf(stderr, "%s: exchange %d failed\n", lib.name(), i);
      return 1;
    }
  }
  lib.release(c);
  lib.release(s);
  std::printf("%-16s idle server session: %6.0f heap bytes   record pair (16 x 32 B each way): %6.0f ns of server CPU\n",
              lib.name(), per_session, double(ns) / records);
  return 0;
}

}  // namespace
}  // namespace tlslibs

int main(int argc, char** argv) {
  using namespace tlslibs;
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CERT KEY [sessions] [records] [library]\n", argv[0]);
    return 2;
  }
  const int sessions = argc > 3 ? std::atoi(argv[3]) : 1000;
  const int records = argc > 4 ? std::atoi(argv[4]) : 20000;
  const std::string only = argc > 5 ? argv[5] : "";
  std::vector<std::unique_ptr<Library>> libs;
  libs.push_back(make_openssl());
  libs.push_back(make_wolfssl());
  libs.push_back(make_gnutls());
#ifdef CHATWS_HAVE_RUSTLS
  libs.push_back(make_rustls_ring());
  libs.push_back(make_rustls_aws_lc());
#endif
  int rc = 0;
  for (auto& lib : libs) {
    if (!only.empty() && std::string(lib->name()).rfind(only, 0) != 0) continue;
    rc |= measure(*lib, argv[1], argv[2], sessions, records);
  }
  return rc;
}
