// A blocking TLS client for tests (OpenSSL, the socket BIO over a connected
// fd), trusting the test CA. Every operation is bounded by the socket's
// receive/send timeouts, so a broken server fails a test instead of hanging it.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <string>

namespace chatws::test {

class TlsClient {
 public:
  struct Options {
    std::string ca_file;       // "" : no verification
    int max_version = 0;       // e.g. TLS1_1_VERSION to test refusal
    int min_version = 0;
    std::string alpn;          // e.g. "http/1.1"
    std::string ciphersuites;  // TLS 1.3 suites offered, in this order ("": OpenSSL's)
    std::string ciphers;       // TLS 1.2 cipher list offered ("": OpenSSL's)
    SSL_SESSION* session = nullptr;  // resume this one
  };

  TlsClient() {
    // The socket BIO writes with write(): a server reset must fail a test, not kill it.
    signal(SIGPIPE, SIG_IGN);
  }
  ~TlsClient() { reset(); }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // The handshake over the connected fd, which it takes over (closed by
  // reset()) unless own_fd is false. True when the handshake succeeds.
  bool connect(int fd, const Options& o, int timeout_ms = 5000, bool own_fd = true) {
    reset();
    fd_ = fd;
    own_fd_ = own_fd;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (o.max_version) {
      // Old versions need the lowest security level to be offered at all.
      SSL_CTX_set_security_level(ctx_, 0);
      SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
      SSL_CTX_set_max_proto_version(ctx_, o.max_version);
    }
    if (o.min_version) SSL_CTX_set_min_proto_version(ctx_, o.min_version);
    if (!o.ciphersuites.empty()) SSL_CTX_set_ciphersuites(ctx_, o.ciphersuites.c_str());
    if (!o.ciphers.empty()) SSL_CTX_set_cipher_list(ctx_, o.ciphers.c_str());
    if (!o.ca_file.empty()) {
      SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    if (!o.ca_file.empty()) SSL_set1_host(ssl_, "localhost");
    if (!o.alpn.empty()) {
      std::string wire(1, char(o.alpn.size()));
      wire += o.alpn;
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), unsigned(wire.size()));
    }
    if (o.session) SSL_set_session(ssl_, o.session);
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) {
      error_ = reason();
      return false;
    }
    return true;
  }

  bool write_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      size_t w = 0;
      if (SSL_write_ex(ssl_, data.data() + off, data.size() - off, &w) != 1) {
        error_ = reason();
        return false;
      }
      off += w;
    }
    return true;
  }
  // Reads until `n` bytes are buffered; false on close, error or timeout.
  bool fill(size_t n) {
    while (buf_.size() < n) {
      char tmp[16384];
      size_t got = 0;
      if (SSL_read_ex(ssl_, tmp, sizeof tmp, &got) != 1) {
        int e = SSL_get_error(ssl_, 0);
        closed_notify_ = e == SSL_ERROR_ZERO_RETURN;
        error_ = closed_notify_ ? "close_notify" : reason();
        return false;
      }
      buf_.append(tmp, got);
    }
    return true;
  }
  // Reads to the end of the stream; true if it ended with close_notify.
  bool read_to_close_notify() {
    while (fill(buf_.size() + 1)) {
    }
    return closed_notify_;
  }

  std::string& buffer() { return buf_; }
  const std::string& error() const { return error_; }
  SSL* ssl() const { return ssl_; }
  int fd() const { return fd_; }

  // The serial number of the certificate the server presented (hex).
  std::string peer_serial() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (!cert) return "";
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
    char* hex = BN_bn2hex(bn);
    std::string out = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(cert);
    return out;
  }
  // The negotiated cipher suite's OpenSSL name, e.g. "TLS_AES_128_GCM_SHA256".
  std::string cipher() const { return SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)); }
  // A new reference to the session (for resumption), or nullptr.
  SSL_SESSION* session() const { return SSL_get1_session(ssl_); }
  bool reused() const { return SSL_session_reused(ssl_) == 1; }

  void reset() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0 && own_fd_) ::close(fd_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    fd_ = -1;
    buf_.clear();
    closed_notify_ = false;
  }

  static std::string reason() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
      char b[256];
      ERR_error_string_n(e, b, sizeof b);
      if (!out.empty()) out += "; ";
      out += b;
    }
    return out.empty() ? "no OpenSSL error (EOF or timeout)" : out;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool own_fd_ = true;
  std::string buf_;
  std::string error_;
  bool closed_notify_ = false;
};

}  // namespace chatws::test
