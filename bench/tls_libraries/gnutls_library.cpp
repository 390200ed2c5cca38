// GnuTLS as Debian builds it (libgnutls28-dev).
#include <gnutls/gnutls.h>

#include <cerrno>

#include "library.h"

namespace tlslibs {
namespace {

class GnuTls : public Library {
 public:
  const char* name() const override { return "gnutls " GNUTLS_VERSION; }
  bool setup(const char* cert, const char* key) override {
    gnutls_global_init();
    gnutls_certificate_allocate_credentials(&scred_);
    gnutls_certificate_allocate_credentials(&ccred_);
    if (gnutls_session_ticket_key_generate(&ticket_key_) < 0) return false;
    return gnutls_certificate_set_x509_key_file(scred_, cert, key, GNUTLS_X509_FMT_PEM) >= 0;
  }
  void* server(Link* l) override {
    gnutls_session_t s = make(GNUTLS_SERVER, scred_, &l->server_end);
    gnutls_session_ticket_enable_server(s, &ticket_key_);
    return s;
  }
  void* client(Link* l) override { return make(GNUTLS_CLIENT, ccred_, &l->client_end); }
  int step(void* s, bool) override {
    int r = gnutls_handshake(static_cast<gnutls_session_t>(s));
    if (r == GNUTLS_E_SUCCESS) return 1;
    return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r) ? 0 : -1;
  }
  bool write(void* s, const char* p, size_t n) override {
    return gnutls_record_send(static_cast<gnutls_session_t>(s), p, n) == ssize_t(n);
  }
  long read(void* s, char* p, size_t n) override {
    ssize_t r = gnutls_record_recv(static_cast<gnutls_session_t>(s), p, n);
    if (r > 0) return long(r);
    return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ? 0 : -1;
  }
  void release(void* s) override { gnutls_deinit(static_cast<gnutls_session_t>(s)); }

 private:
  static ssize_t pull(gnutls_transport_ptr_t p, void* buf, size_t n) {
    size_t got = static_cast<End*>(p)->in->take(static_cast<char*>(buf), n);
    if (got) return ssize_t(got);
    errno = EAGAIN;  // GnuTLS reads errno unless told otherwise
    return -1;
  }
  static ssize_t push(gnutls_transport_ptr_t p, const void* buf, size_t n) {
    static_cast<End*>(p)->out->bytes.append(static_cast<const char*>(buf), n);
    return ssize_t(n);
  }
  static int pull_timeout(gnutls_transport_ptr_t p, unsigned) {
    const Wire* in = static_cast<End*>(p)->in;
    return in->bytes.size() > in->pos ? 1 : 0;
  }
  gnutls_session_t make(unsigned flags, gnutls_certificate_credentials_t cred, End* end) {
    gnutls_session_t s;
    gnutls_init(&s, flags | GNUTLS_NONBLOCK);
    gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-SECP256R1",
                               nullptr);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_ptr(s, end);
    gnutls_transport_set_push_function(s, push);
    gnutls_transport_set_pull_function(s, pull);
    gnutls_transport_set_pull_timeout_function(s, pull_timeout);
    return s;
  }
  gnutls_certificate_credentials_t scred_ = nullptr, ccred_ = nullptr;
  gnutls_datum_t ticket_key_{};
};

}  // namespace

std::unique_ptr<Library> make_gnutls() { return std::make_unique<GnuTls>(); }

}  // namespace tlslibs
