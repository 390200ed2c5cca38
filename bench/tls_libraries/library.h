// The interface each TLS library is measured through (tls_libraries.cpp),
// and the in-memory transport its sessions talk over. Each library sits in
// a file of its own: wolfSSL's OpenSSL-compatible headers and OpenSSL's
// cannot be in one translation unit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

namespace tlslibs {

// One direction of a connection: bytes written by one side, read by the other.
struct Wire {
  std::string bytes;
  size_t pos = 0;
  size_t take(char* out, size_t n) {
    n = std::min(n, bytes.size() - pos);
    std::memcpy(out, bytes.data() + pos, n);
    pos += n;
    if (pos == bytes.size()) {
      bytes.clear();
      pos = 0;
    }
    return n;
  }
};
// One side's view of a Link: the wire it reads and the one it writes.
struct End {
  Wire* in;
  Wire* out;
};
struct Link {
  Link() = default;
  Link(const Link&) = delete;  // the Ends point into it
  Link& operator=(const Link&) = delete;
  Wire to_server, to_client;
  End server_end{&to_server, &to_client}, client_end{&to_client, &to_server};
};

// A library's server and client sessions over a Link, non-blocking.
class Library {
 public:
  virtual ~Library() = default;
  virtual const char* name() const = 0;
  virtual bool setup(const char* cert, const char* key) = 0;
  virtual void* server(Link* l) = 0;
  virtual void* client(Link* l) = 0;
  virtual int step(void* s, bool is_server) = 0;  // handshake: 1 done, 0 again, -1 failed
  virtual bool write(void* s, const char* p, size_t n) = 0;
  virtual long read(void* s, char* p, size_t n) = 0;  // > 0 bytes, 0 nothing yet, -1 failed
  virtual void release(void* s) = 0;
};

std::unique_ptr<Library> make_openssl();
std::unique_ptr<Library> make_wolfssl();
std::unique_ptr<Library> make_gnutls();
#ifdef CHATWS_HAVE_RUSTLS
std::unique_ptr<Library> make_rustls_ring();
std::unique_ptr<Library> make_rustls_aws_lc();
#endif

}  // namespace tlslibs
