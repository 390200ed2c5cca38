#include "net/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace chatws::net {

std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    std::string item = r ? r : ("error " + std::to_string(ERR_GET_REASON(e)));
    if (out.find(item) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += item;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

bool kernel_tls_available(std::string* why) {
  static const std::string reason = [] {
    auto fail = [](int* fds, int n) {
      std::string r = std::strerror(errno);
      for (int i = 0; i < n; ++i)
        if (fds[i] >= 0) ::close(fds[i]);
      return r;
    };
    int fds[3] = {-1, -1, -1};  // listener, client, accepted
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    fds[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[0] < 0 || ::bind(fds[0], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fds[0], 1) != 0 || ::getsockname(fds[0], reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return fail(fds, 1);
    fds[1] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[1] < 0 || ::connect(fds[1], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      return fail(fds, 2);
    fds[2] = ::accept4(fds[0], nullptr, nullptr, SOCK_CLOEXEC);
    if (fds[2] < 0) return fail(fds, 2);
    if (::setsockopt(fds[2], IPPROTO_TCP, TCP_ULP, "tls", 3) != 0) return fail(fds, 3);
    for (int fd : fds) ::close(fd);
    return std::string();
  }();
  if (why) *why = reason;
  return reason.empty();
}

// ------------------------------------------------------------ ticket keys

// Session-ticket keys (RFC 5077 style, AES-256-CBC + HMAC-SHA256 as in
// OpenSSL's own): a current key that seals new tickets and the previous one,
// still accepted (and the ticket renewed), so a ticket lives between one and
// two rotation periods. Kept outside the SSL_CTX so that a certificate
// reload does not invalidate the tickets clients hold.
class TicketKeys {
 public:
  static constexpr int64_t kRotateSeconds = 12 * 3600;

  TicketKeys() { rotate(); }

  void rotate() {
    std::lock_guard<std::mutex> lock(mu_);
    rotate_locked();
  }

  // OpenSSL's SSL_CTX_set_tlsext_ticket_key_evp_cb contract.
  int seal_or_open(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                   EVP_MAC_CTX* mac, int enc) {
    std::lock_guard<std::mutex> lock(mu_);  // per handshake, never per message
    if (enc && now() - keys_[0].born >= kRotateSeconds) rotate_locked();
    const Key* k = nullptr;
    int rc = 1;
    if (enc) {
      k = &keys_[0];
      if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1) return -1;
      std::memcpy(name, k->name, 16);
      if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1) return -1;
    } else {
      for (int i = 0; i < 2 && !k; ++i)
        if (keys_[i].valid && std::memcmp(name, keys_[i].name, 16) == 0) k = &keys_[i];
      if (!k) return 0;  // unknown or expired: a full handshake
      if (k == &keys_[1]) rc = 2;  // valid, but issue a ticket under the current key
      if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1) return -1;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k->hmac), 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("sha256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    return rc;
  }

  static int ex_index() {
    static int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
  }
  static int callback(SSL* s, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int enc) {
    auto* keys = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_index()));
    return keys ? keys->seal_or_open(name, iv, cipher, mac, enc) : 0;
  }

 private:
  void rotate_locked() {
    keys_[1] = keys_[0];
    RAND_bytes(keys_[0].name, sizeof keys_[0].name);
    RAND_bytes(keys_[0].aes, sizeof keys_[0].aes);
    RAND_bytes(keys_[0].hmac, sizeof keys_[0].hmac);
    keys_[0].born = now();
    keys_[0].valid = true;
  }

  struct Key {
    unsigned char name[16] = {};
    unsigned char aes[32] = {};
    unsigned char hmac[32] = {};
    int64_t born = 0;
    bool valid = false;
  };
  static int64_t now() {
    using namespace std::chrono;
    return duration_cast<seconds>(steady_clock::now().time_since_epoch()).count();
  }
  std::mutex mu_;
  Key keys_[2];
};

// ------------------------------------------------------------------ build

namespace {

// The passphrase from its source, as openssl(1) -passin reads it.
bool resolve_passphrase(const std::string& source, std::string* out, std::string* error) {
  out->clear();
  if (source.empty()) return true;
  if (source.rfind("pass:", 0) == 0) {
    *out = source.substr(5);
    return true;
  }
  if (source.rfind("env:", 0) == 0) {
    const char* v = std::getenv(source.c_str() + 4);
    if (!v) {
      *error = "TLS key passphrase: environment variable '" + source.substr(4) + "' is not set";
      return false;
    }
    *out = v;
    return true;
  }
  if (source.rfind("file:", 0) == 0) {
    std::ifstream f(source.substr(5));
    if (!f) {
      *error = "TLS key passphrase file '" + source.substr(5) + "': " + std::strerror(errno);
      return false;
    }
    std::getline(f, *out);  // the first line, as openssl(1) does
    return true;
  }
  *error = "TLS key passphrase must be 'pass:TEXT', 'env:VAR' or 'file:PATH'";
  return false;
}

// What the passphrase callback gets; `asked` says the key was encrypted.
struct PassphraseUse {
  const std::string* pass = nullptr;
  bool asked = false;
};

int password_cb(char* buf, int size, int, void* user) {
  // Never prompt on a terminal: no passphrase given means none.
  auto* use = static_cast<PassphraseUse*>(user);
  if (!use) return 0;
  use->asked = true;
  const std::string* pass = use->pass;
  if (!pass || pass->empty() || int(pass->size()) > size) return 0;
  std::memcpy(buf, pass->data(), pass->size());
  return int(pass->size());
}

// A clear errno message for a file OpenSSL would only call "system lib".
bool readable(const std::string& path, const char* what, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  char byte;
  if (!f || (std::fread(&byte, 1, 1, f) == 0 && std::ferror(f))) {  // EACCES, EISDIR...
    *error = std::string(what) + " '" + path + "': " + std::strerror(errno);
    if (f) std::fclose(f);
    return false;
  }
  std::fclose(f);
  return true;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  // HTTP/1.1 only: the upgrade and the static files both need it. A client
  // that offers only something else (h2) proceeds without ALPN.
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

SSL_CTX* TlsContext::build(const TlsConfig& cfg, std::string* error) const {
  ERR_clear_error();
  if (cfg.cert_file.empty() || cfg.key_file.empty()) {
    *error = "TLS needs both a certificate file and a key file";
    return nullptr;
  }
  if (cfg.min_version != 12 && cfg.min_version != 13) {
    *error = "TLS minimum version must be 1.2 or 1.3";
    return nullptr;
  }
  std::string pass;
  if (!resolve_passphrase(cfg.key_passphrase, &pass, error)) return nullptr;
  if (!readable(cfg.cert_file, "TLS certificate file", error) ||
      !readable(cfg.key_file, "TLS key file", error))
    return nullptr;

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = "TLS: cannot create a context: " + openssl_reason();
    return nullptr;
  }
  auto fail = [&](std::string msg) -> SSL_CTX* {
    *error = std::move(msg) + ": " + openssl_reason();
    SSL_CTX_free(ctx);
    return nullptr;
  };
  SSL_CTX_set_min_proto_version(ctx, cfg.min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // The server's order (AES-GCM first: hardware on every server CPU), except
  // for a client that puts ChaCha20 first: a phone without AES instructions
  // says so that way, and AES in software would cost it far more.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                               SSL_OP_NO_COMPRESSION | (cfg.session_tickets ? 0 : SSL_OP_NO_TICKET) |
                               (ktls_ ? SSL_OP_ENABLE_KTLS : 0));
  // No record buffers between records (idle memory); reading ahead takes a
  // whole burst of records in one recv().
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(ctx, 1);
  // Tickets are stateless: no server-side session cache to grow with clients.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, cfg.session_tickets ? 1 : 0);
  if (cfg.session_tickets) {
    SSL_CTX_set_ex_data(ctx, TicketKeys::ex_index(), tickets_.get());
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketKeys::callback);
    SSL_CTX_set_timeout(ctx, long(2 * TicketKeys::kRotateSeconds));
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);

  const std::string& ciphers = cfg.ciphers.empty() ? kDefaultTls12Ciphers : cfg.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
    return fail("TLS 1.2 cipher list '" + ciphers + "'");
  const std::string& suites = cfg.ciphersuites.empty() ? kDefaultTls13Suites : cfg.ciphersuites;
  if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1)
    return fail("TLS 1.3 cipher suites '" + suites + "'");

  PassphraseUse use{&pass};
  SSL_CTX_set_default_passwd_cb(ctx, password_cb);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &use);
  bool ok = SSL_CTX_use_certificate_chain_file(ctx, cfg.cert_file.c_str()) == 1;
  if (!ok) {
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    return fail("TLS certificate file '" + cfg.cert_file + "'");
  }
  use.asked = false;  // the certificate file may have asked too
  ok = SSL_CTX_use_PrivateKey_file(ctx, cfg.key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  // The passphrase is not kept past loading.
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  // An encrypted key that did not load: the passphrase is missing or wrong.
  // Said in words, since OpenSSL's reason depends on the bytes a wrong key
  // happens to decrypt to ("bad decrypt" mostly, an ASN.1 error sometimes).
  if (!ok && use.asked) {
    return fail("TLS key file '" + cfg.key_file + "' is encrypted and " +
                (pass.empty() ? "no passphrase was given" : "the passphrase does not decrypt it"));
  }
  // A key that does not match the certificate fails here already.
  if (!ok && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
    return fail("TLS key file '" + cfg.key_file + "'");
  if (!ok || SSL_CTX_check_private_key(ctx) != 1)
    return fail("TLS key file '" + cfg.key_file + "' does not match certificate '" + cfg.cert_file + "'");
  return ctx;
}

std::unique_ptr<TlsContext> TlsContext::create(const TlsConfig& cfg, std::string* error) {
  std::unique_ptr<TlsContext> t(new TlsContext());
  t->tickets_ = std::make_unique<TicketKeys>();
  t->cfg_ = cfg;
  t->ktls_ = cfg.ktls == KernelTls::On || (cfg.ktls == KernelTls::Auto && kernel_tls_available());
  t->ctx_ = t->build(cfg, error);
  if (!t->ctx_) return nullptr;
  return t;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

bool TlsContext::reload(const std::string& cert_file, const std::string& key_file,
                        const std::string& key_passphrase, std::string* error) {
  TlsConfig next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    next = cfg_;
  }
  if (!cert_file.empty()) next.cert_file = cert_file;
  if (!key_file.empty()) next.key_file = key_file;
  if (!cert_file.empty() || !key_file.empty() || !key_passphrase.empty())
    next.key_passphrase = key_passphrase;
  // Built outside the lock: loading files must not stall accepts.
  SSL_CTX* fresh = build(next, error);
  if (!fresh) return false;
  SSL_CTX* old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = ctx_;
    ctx_ = fresh;
    cfg_ = std::move(next);
  }
  SSL_CTX_free(old);  // connections that use it hold their own reference
  return true;
}

SSL* TlsContext::new_ssl() {
  std::lock_guard<std::mutex> lock(mu_);
  return SSL_new(ctx_);
}

void TlsContext::rotate_ticket_keys() { tickets_->rotate(); }

}  // namespace chatws::net
