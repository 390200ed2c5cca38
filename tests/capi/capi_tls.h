/*
 * TLS for the plain-C tests: certificates made with the openssl CLI in a
 * fresh directory (no key is committed), and the capi_test.h client run over
 * TLS by its I/O hooks (OpenSSL's client, verifying against the test CA).
 * Include after capi_test.h; link OpenSSL::SSL.
 *
 * OpenSSL's socket BIO writes with write(): a thread that writes to a
 * server that reset may get SIGPIPE. tls_client_threads_block_sigpipe()
 * blocks it in the calling thread (and the threads it creates later), so a
 * test can keep SIGPIPE deadly for the server's loop thread only.
 */
#ifndef CHATWS_CAPI_TLS_H
#define CHATWS_CAPI_TLS_H

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>

#define TLS_MAX_FD 4096

static struct {
  char dir[256];
  char ca[300];
  SSL* by_fd[TLS_MAX_FD];
  pthread_mutex_t mu;
} tls_test;

static inline int tls_run(const char* cmd) {
  char full[2048];
  snprintf(full, sizeof full, "(%s) >/dev/null 2>&1", cmd);
  return system(full) == 0 ? 0 : -1;
}

/* dir/<name>: a path in the certificate directory. */
static inline const char* tls_path(char* buf, size_t cap, const char* name) {
  snprintf(buf, cap, "%s/%s", tls_test.dir, name);
  return buf;
}

/* <name>.pem (leaf + CA) and <name>.key, signed by the test CA, serial `serial`. */
static inline int tls_make_leaf(const char* name, int serial) {
  char cmd[2048];
  const char* d = tls_test.dir;
  snprintf(cmd, sizeof cmd,
           "cd '%s' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > %s.ext && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s.key "
           "-out %s.csr -subj /CN=localhost && "
           "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -set_serial 0x%X -days 2 "
           "-extfile %s.ext -out %s.leaf && cat %s.leaf ca.pem > %s.pem",
           d, name, name, name, name, serial, name, name, name, name);
  return tls_run(cmd);
}

/* Makes the CA and leaves "a" (serial 0xA1) and "b" (0xB2); sets the hooks. */
static inline int tls_test_init(void) {
  char cmd[1024], ca[300];
  const char* base = getenv("TMPDIR");
  snprintf(tls_test.dir, sizeof tls_test.dir, "%s/chatws-ctls-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tls_test.dir)) return -1;
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout ca.key -out ca.pem -days 2 -subj /CN=chatws-c-test-ca", tls_test.dir);
  if (tls_run(cmd) != 0 || tls_make_leaf("a", 0xA1) != 0 || tls_make_leaf("b", 0xB2) != 0) return -1;
  pthread_mutex_init(&tls_test.mu, NULL);
  snprintf(tls_test.ca, sizeof tls_test.ca, "%s", tls_path(ca, sizeof ca, "ca.pem"));
  return 0;
}

/* One client context per thread: OpenSSL shares state between the threads
 * of one context with atomics that TSan does not see (uninstrumented). */
static _Thread_local SSL_CTX* tls_thread_ctx;

static inline SSL_CTX* tls_client_ctx(void) {
  if (!tls_thread_ctx) {
    tls_thread_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(tls_thread_ctx, tls_test.ca, NULL);
    SSL_CTX_set_verify(tls_thread_ctx, SSL_VERIFY_PEER, NULL);
  }
  return tls_thread_ctx;
}

/* A thread that made TLS connections frees its context before it ends. */
static inline void tls_thread_done(void) {
  SSL_CTX_free(tls_thread_ctx); /* the SSLs made from it hold references */
  tls_thread_ctx = NULL;
}

static inline void tls_test_cleanup(void) {
  char cmd[512];
  int i;
  for (i = 0; i < TLS_MAX_FD; i++)
    if (tls_test.by_fd[i]) SSL_free(tls_test.by_fd[i]);
  tls_thread_done();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_test.dir);
  tls_run(cmd);
}

static inline SSL* tls_of(int fd) {
  SSL* s;
  if (fd < 0 || fd >= TLS_MAX_FD) return NULL;
  pthread_mutex_lock(&tls_test.mu);
  s = tls_test.by_fd[fd];
  pthread_mutex_unlock(&tls_test.mu);
  return s;
}

static inline int tls_hook_connected(int fd) {
  SSL* s;
  if (fd >= TLS_MAX_FD) return -1;
  s = SSL_new(tls_client_ctx());
  SSL_set_fd(s, fd);
  SSL_set1_host(s, "localhost");
  if (SSL_connect(s) != 1) {
    ERR_print_errors_fp(stderr);
    SSL_free(s);
    return -1;
  }
  pthread_mutex_lock(&tls_test.mu);
  if (tls_test.by_fd[fd]) SSL_free(tls_test.by_fd[fd]); /* the fd number was reused */
  tls_test.by_fd[fd] = s;
  pthread_mutex_unlock(&tls_test.mu);
  return 0;
}

static inline ssize_t tls_hook_send(int fd, const void* data, size_t len) {
  size_t n = 0;
  SSL* s = tls_of(fd);
  if (!s) return -1;
  return SSL_write_ex(s, data, len, &n) == 1 ? (ssize_t)n : -1;
}

static inline ssize_t tls_hook_recv(int fd, void* data, size_t len) {
  size_t n = 0;
  SSL* s = tls_of(fd);
  if (!s) return -1;
  if (SSL_read_ex(s, data, len, &n) == 1) return (ssize_t)n;
  return SSL_get_error(s, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static inline void tls_use_hooks(void) {
  test_io_hooks.connected = tls_hook_connected;
  test_io_hooks.send = tls_hook_send;
  test_io_hooks.recv = tls_hook_recv;
}

static inline void tls_client_threads_block_sigpipe(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The serial (hex) of the certificate the server showed on `fd`'s connection. */
static inline long tls_peer_serial(int fd) {
  SSL* s = tls_of(fd);
  X509* cert = s ? SSL_get1_peer_certificate(s) : NULL;
  long serial = -1;
  if (cert) {
    serial = ASN1_INTEGER_get(X509_get_serialNumber(cert));
    X509_free(cert);
  }
  return serial;
}

#endif /* CHATWS_CAPI_TLS_H */
