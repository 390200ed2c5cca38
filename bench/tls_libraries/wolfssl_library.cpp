// wolfSSL as Debian builds it (libwolfssl-dev).
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "library.h"

namespace tlslibs {
namespace {

class WolfSsl : public Library {
 public:
  const char* name() const override { return "wolfssl " LIBWOLFSSL_VERSION_STRING; }
  bool setup(const char* cert, const char* key) override {
    wolfSSL_Init();
    sctx_ = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    cctx_ = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    for (WOLFSSL_CTX* c : {sctx_, cctx_}) {
      wolfSSL_CTX_set_cipher_list(c, "TLS13-AES128-GCM-SHA256");
      wolfSSL_CTX_SetIORecv(c, recv_cb);
      wolfSSL_CTX_SetIOSend(c, send_cb);
    }
    wolfSSL_CTX_set_verify(cctx_, WOLFSSL_VERIFY_NONE, nullptr);
    return wolfSSL_CTX_use_certificate_chain_file(sctx_, cert) == WOLFSSL_SUCCESS &&
           wolfSSL_CTX_use_PrivateKey_file(sctx_, key, WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS;
  }
  void* server(Link* l) override { return make(sctx_, &l->server_end); }
  void* client(Link* l) override {
    WOLFSSL* s = make(cctx_, &l->client_end);
    wolfSSL_UseSupportedCurve(s, WOLFSSL_ECC_SECP256R1);
    return s;
  }
  int step(void* s, bool is_server) override {
    auto* w = static_cast<WOLFSSL*>(s);
    int r = is_server ? wolfSSL_accept(w) : wolfSSL_connect(w);
    if (r == WOLFSSL_SUCCESS) return 1;
    int e = wolfSSL_get_error(w, r);
    return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE ? 0 : -1;
  }
  bool write(void* s, const char* p, size_t n) override {
    return wolfSSL_write(static_cast<WOLFSSL*>(s), p, int(n)) == int(n);
  }
  long read(void* s, char* p, size_t n) override {
    auto* w = static_cast<WOLFSSL*>(s);
    int r = wolfSSL_read(w, p, int(n));
    if (r > 0) return r;
    return wolfSSL_get_error(w, r) == WOLFSSL_ERROR_WANT_READ ? 0 : -1;
  }
  void release(void* s) override { wolfSSL_free(static_cast<WOLFSSL*>(s)); }

 private:
  static int recv_cb(WOLFSSL*, char* buf, int n, void* ctx) {
    size_t got = static_cast<End*>(ctx)->in->take(buf, size_t(n));
    return got ? int(got) : WOLFSSL_CBIO_ERR_WANT_READ;
  }
  static int send_cb(WOLFSSL*, char* buf, int n, void* ctx) {
    static_cast<End*>(ctx)->out->bytes.append(buf, size_t(n));
    return n;
  }
  WOLFSSL* make(WOLFSSL_CTX* ctx, End* end) {
    WOLFSSL* s = wolfSSL_new(ctx);
    wolfSSL_SetIOReadCtx(s, end);
    wolfSSL_SetIOWriteCtx(s, end);
    return s;
  }
  WOLFSSL_CTX* sctx_ = nullptr;
  WOLFSSL_CTX* cctx_ = nullptr;
};

}  // namespace

std::unique_ptr<Library> make_wolfssl() { return std::make_unique<WolfSsl>(); }

}  // namespace tlslibs
