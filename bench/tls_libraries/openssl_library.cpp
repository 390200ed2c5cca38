// OpenSSL 3, set up as core/net/tls_context.cpp sets it up.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "library.h"

namespace tlslibs {
namespace {

class OpenSsl : public Library {
 public:
  const char* name() const override { return "openssl " OPENSSL_VERSION_STR; }
  bool setup(const char* cert, const char* key) override {
    sctx_ = SSL_CTX_new(TLS_server_method());
    cctx_ = SSL_CTX_new(TLS_client_method());
    for (SSL_CTX* c : {sctx_, cctx_}) {
      SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
      SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256");
    }
    // As core/net/tls_context.cpp does.
    SSL_CTX_set_mode(sctx_, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(sctx_, 1);
    SSL_CTX_set_session_cache_mode(sctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(sctx_, 1);
    return SSL_CTX_use_certificate_chain_file(sctx_, cert) == 1 &&
           SSL_CTX_use_PrivateKey_file(sctx_, key, SSL_FILETYPE_PEM) == 1;
  }
  void* server(Link* l) override { return make(sctx_, &l->server_end, true); }
  void* client(Link* l) override { return make(cctx_, &l->client_end, false); }
  int step(void* s, bool) override {
    int r = SSL_do_handshake(static_cast<SSL*>(s));
    if (r == 1) return 1;
    int e = SSL_get_error(static_cast<SSL*>(s), r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
  }
  bool write(void* s, const char* p, size_t n) override {
    size_t w = 0;
    return SSL_write_ex(static_cast<SSL*>(s), p, n, &w) == 1 && w == n;
  }
  long read(void* s, char* p, size_t n) override {
    size_t got = 0;
    if (SSL_read_ex(static_cast<SSL*>(s), p, n, &got) == 1) return long(got);
    int e = SSL_get_error(static_cast<SSL*>(s), 0);
    return e == SSL_ERROR_WANT_READ ? 0 : -1;
  }
  void release(void* s) override { SSL_free(static_cast<SSL*>(s)); }

 private:
  // A BIO pair per direction would allocate its own buffers; a small custom
  // BIO over the Link keeps the measurement to the SSL object's own state.
  static int bio_write(BIO* b, const char* d, size_t n, size_t* w) {
    static_cast<End*>(BIO_get_data(b))->out->bytes.append(d, n);
    *w = n;
    return 1;
  }
  static int bio_read(BIO* b, char* d, size_t n, size_t* got) {
    BIO_clear_retry_flags(b);
    *got = static_cast<End*>(BIO_get_data(b))->in->take(d, n);
    if (*got) return 1;
    BIO_set_retry_read(b);
    return -1;
  }
  static long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "link");
      BIO_meth_set_write_ex(bm, bio_write);
      BIO_meth_set_read_ex(bm, bio_read);
      BIO_meth_set_ctrl(bm, bio_ctrl);
      BIO_meth_set_create(bm, [](BIO* b) {
        BIO_set_init(b, 1);
        return 1;
      });
      return bm;
    }();
    return m;
  }
  SSL* make(SSL_CTX* ctx, End* end, bool server) {
    SSL* s = SSL_new(ctx);
    BIO* b = BIO_new(method());
    BIO_set_data(b, end);
    SSL_set_bio(s, b, b);
    if (server)
      SSL_set_accept_state(s);
    else
      SSL_set_connect_state(s);
    return s;
  }
  SSL_CTX* sctx_ = nullptr;
  SSL_CTX* cctx_ = nullptr;
};

}  // namespace

std::unique_ptr<Library> make_openssl() { return std::make_unique<OpenSsl>(); }

}  // namespace tlslibs
