// The server's TLS configuration as an OpenSSL SSL_CTX: the certificate
// chain and key (PEM files), protocol versions, cipher lists, ALPN and
// session tickets with rotating keys. Reloadable from any thread: new
// connections take the current context, existing ones keep the context
// (and certificate) they started with (SSL_new holds a reference).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace chatws::net {

// Kernel TLS (SSL_OP_ENABLE_KTLS): once the handshake is done, OpenSSL hands
// the record keys to the kernel (setsockopt TCP_ULP "tls", TLS_TX/TLS_RX),
// which then encrypts what is sent and decrypts what is read.
enum class KernelTls : int8_t {
  Off,
  Auto,  // asked of OpenSSL where this kernel offers the "tls" ULP
  On,    // asked regardless: where the kernel refuses, OpenSSL keeps the
         // records in user space (the fallback; tests use it)
};

struct TlsConfig {
  std::string cert_file;       // PEM: the certificate, then its chain
  std::string key_file;        // PEM private key
  std::string key_passphrase;  // as openssl(1) -passin: "pass:TEXT", "env:VAR", "file:PATH"; "" none
  int min_version = 12;        // 12: TLS 1.2, 13: TLS 1.3 (1.0 and 1.1 are never accepted)
  std::string ciphers;         // TLS 1.2 cipher list; "" the safe default below
  std::string ciphersuites;    // TLS 1.3 suites; "" the safe default below
  bool session_tickets = true; // stateless resumption, keys rotated (see TicketKeys)
  KernelTls ktls = KernelTls::Auto;

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// ECDHE with AEAD only (forward secrecy, no CBC), AES-GCM first: it has
// hardware support on every server CPU this runs on.
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kDefaultTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

class TicketKeys;

// Whether this kernel offers kernel TLS: setsockopt(TCP_ULP, "tls") on a
// loopback TCP connection, tried once per process (the module loads on
// first use, so /proc/sys/net/ipv4/tcp_available_ulp is not the answer).
// When not, *why (if given) has the reason, e.g. "No such file or directory".
bool kernel_tls_available(std::string* why = nullptr);

class TlsContext {
 public:
  // Builds the context; nullptr with *error naming the file at fault and
  // OpenSSL's reason (missing, unreadable, not PEM, wrong passphrase, key
  // not matching the certificate, bad cipher list...).
  static std::unique_ptr<TlsContext> create(const TlsConfig& cfg, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Any thread. Loads a new certificate and key (the other settings stay):
  // on success new connections use them; on failure nothing changes and
  // *error says why. Empty cert/key: the current files, read again (the
  // renewal case: the files were replaced in place).
  bool reload(const std::string& cert_file, const std::string& key_file,
              const std::string& key_passphrase, std::string* error);

  // A new server-side session object on the current context (nullptr when
  // out of memory). Any thread; one lock per call (per accepted connection).
  SSL* new_ssl();

  // Rotates the session-ticket keys now (tests; normally by age).
  void rotate_ticket_keys();

  // SSL_OP_ENABLE_KTLS is set on the sessions (TlsConfig::ktls).
  bool ktls() const { return ktls_; }

 private:
  TlsContext() = default;
  SSL_CTX* build(const TlsConfig& cfg, std::string* error) const;

  std::mutex mu_;
  TlsConfig cfg_;          // under mu_ (reload replaces the files)
  SSL_CTX* ctx_ = nullptr; // under mu_; an SSL keeps its own reference
  std::unique_ptr<TicketKeys> tickets_;  // shared by every generation of ctx_
  bool ktls_ = false;
};

// Why the last OpenSSL call on this thread failed, as text (and the error
// queue cleared), e.g. "error:0A000086:SSL routines::certificate verify failed".
std::string openssl_reason();

}  // namespace chatws::net
