// chatws-tls-memory: where an idle TLS connection's heap goes, by OpenSSL
// allocation site. N server-side TlsTransports (the server's own TlsContext
// settings) each finish a handshake with an OpenSSL client over a
// socketpair and exchange one message each way; then the clients are freed
// and what OpenSSL still holds for the servers is listed per file:line,
// divided by N. OpenSSL's allocations are counted through
// CRYPTO_set_mem_functions; mallinfo2 gives the whole heap for comparison.
//
//   build/bench/chatws-tls-memory --cert cert.pem --key key.pem [--conns 200]
//
// See BENCHMARKS.md (TLS, idle memory) for a reading of the output.
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/tls_context.h"
#include "net/tls_transport.h"

namespace {

using chatws::net::TlsConfig;
using chatws::net::TlsContext;
using chatws::net::TlsHandshake;
using chatws::net::TlsStaging;
using chatws::net::TlsTransport;

// Each block carries its size and site ahead of the caller's bytes.
struct alignas(16) Header {
  size_t size;
  const char* file;  // nullptr: not counted (allocated while not counting)
  int line;
};
struct Site {
  long bytes = 0;
  long blocks = 0;
};
bool counting = false;  // only the servers' side is counted (single thread)
std::map<std::pair<const char*, int>, Site>* sites;

void account(const Header* h, long sign) {
  bool was = counting;
  counting = false;  // the map's own nodes are not OpenSSL's
  Site& s = (*sites)[{h->file, h->line}];
  s.bytes += sign * long(h->size);
  s.blocks += sign;
  counting = was;
}
void* count_malloc(size_t n, const char* file, int line) {
  auto* h = static_cast<Header*>(std::malloc(n + sizeof(Header)));
  if (!h) return nullptr;
  *h = {n, counting ? file : nullptr, line};
  if (h->file) account(h, +1);
  return h + 1;
}
void count_free(void* p, const char*, int) {
  if (!p) return;
  Header* h = static_cast<Header*>(p) - 1;
  if (h->file) account(h, -1);
  std::free(h);
}
void* count_realloc(void* p, size_t n, const char* file, int line) {
  if (!p) return count_malloc(n, file, line);
  void* q = count_malloc(n, file, line);
  if (!q) return nullptr;
  std::memcpy(q, p, std::min(n, (static_cast<Header*>(p) - 1)->size));
  count_free(p, file, line);
  return q;
}

// The client's calls are not counted.
template <class F>
auto uncounted(F f) {
  bool was = counting;
  counting = false;
  auto r = f();
  counting = was;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free)) {
    std::fprintf(stderr, "OpenSSL allocated before main: cannot count\n");
    return 1;
  }
  sites = new std::map<std::pair<const char*, int>, Site>;
  TlsConfig cfg;
  int conns = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cert")) cfg.cert_file = argv[i + 1];
    else if (!std::strcmp(argv[i], "--key")) cfg.key_file = argv[i + 1];
    else if (!std::strcmp(argv[i], "--conns")) conns = std::max(1, std::atoi(argv[i + 1]));
  }
  std::string err;
  auto ctx = TlsContext::create(cfg, &err);
  if (!ctx) {
    std::fprintf(stderr, "%s\nusage: %s --cert FILE --key FILE [--conns N]\n", err.c_str(), argv[0]);
    return 2;
  }
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  TlsStaging staging;
  static uint8_t scratch[16384];
  std::vector<std::unique_ptr<TlsTransport>> servers;
  std::vector<SSL*> clients;
  std::vector<int> fds;
  size_t heap_before = 0;
  // Connection 0 first, uncounted: OpenSSL's one-time allocations.
  for (int i = 0; i <= conns; ++i) {
    if (i == 1) {
      heap_before = mallinfo2().uordblks;
      counting = true;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 1;
    fds.insert(fds.end(), {sv[0], sv[1]});
    servers.emplace_back(TlsTransport::create(ctx->new_ssl(), sv[0], &staging));
    SSL* c = uncounted([&] {
      SSL* s = SSL_new(client_ctx);
      SSL_set_fd(s, sv[1]);
      SSL_set_connect_state(s);
      return s;
    });
    clients.push_back(c);
    bool done = false;
    for (int k = 0; k < 50 && !done; ++k) {
      uncounted([&] { return SSL_do_handshake(c); });
      done = servers.back()->handshake(nullptr) == TlsHandshake::Done && SSL_is_init_finished(c);
    }
    if (!done) {
      std::fprintf(stderr, "handshake %d did not finish\n", i);
      return 1;
    }
    char buf[64];
    uncounted([&] { return SSL_write(c, "ping", 4); });
    ssize_t n = chatws::net::kAgain;
    for (int k = 0; k < 10 && n == chatws::net::kAgain; ++k) n = servers.back()->read(buf, sizeof buf);
    iovec v{const_cast<char*>("pong"), 4};
    servers.back()->write_gathered(&v, 1, scratch);
    uncounted([&] { return SSL_read(c, buf, sizeof buf); });  // (and the ticket)
  }
  counting = false;
  for (SSL* c : clients) SSL_free(c);
  const size_t heap_after = mallinfo2().uordblks;

  long bytes = 0, blocks = 0;
  std::vector<std::pair<long, std::string>> rows;
  for (const auto& [where, s] : *sites) {
    if (s.blocks == 0) continue;
    bytes += s.bytes;
    blocks += s.blocks;
    char line[256];
    std::snprintf(line, sizeof line, "%8.1f  %5.2f  %s:%d", double(s.bytes) / conns,
                  double(s.blocks) / conns, where.first, where.second);
    rows.emplace_back(s.bytes, line);
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("%d idle TLS connections (server side, %s, %s)\n", conns,
              SSL_get_version(servers.back()->ssl()),
              SSL_CIPHER_get_name(SSL_get_current_cipher(servers.back()->ssl())));
  std::printf("OpenSSL heap per connection: %.0f bytes in %.1f blocks\n", double(bytes) / conns,
              double(blocks) / conns);
  std::printf("whole heap per connection (mallinfo2, incl. malloc overhead and this tool's\n"
              "%zu-byte header per OpenSSL block): %.0f bytes\n",
              sizeof(Header), double(heap_after - heap_before) / conns);
  std::printf("   bytes  blocks  site (per connection)\n");
  for (const auto& [b, text] : rows)
    if (b >= conns * 8L) std::printf("%s\n", text.c_str());
  servers.clear();
  for (int fd : fds) ::close(fd);
  SSL_CTX_free(client_ctx);
  return 0;
}
