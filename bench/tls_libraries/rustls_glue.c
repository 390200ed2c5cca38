/* rustls 0.23 through rustls-ffi; see rustls_glue.h. */
#include "rustls_glue.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <rustls.h>

struct rl_config {
  const struct rustls_crypto_provider* provider;
  const struct rustls_server_config* server;
  const struct rustls_client_config* client;
  rl_read_fn rd;
  rl_write_fn wr;
};
struct rl_session {
  struct rustls_connection* conn;
  struct rl_config* cfg;
  void* end;
};

static uint32_t trust_any(void* u, const struct rustls_verify_server_cert_params* p) {
  (void)u;
  (void)p;
  return RUSTLS_RESULT_OK;
}

struct rl_config* rl_config_new(enum rl_provider which, const char* cert_pem, size_t cert_len, const char* key_pem,
                                size_t key_len, rl_read_fn rd, rl_write_fn wr) {
  const struct rustls_crypto_provider* base =
      which == RL_RING ? rustls_ring_crypto_provider() : rustls_aws_lc_rs_crypto_provider();
  if (!base) return NULL;
  const struct rustls_supported_ciphersuite* suite = NULL;
  for (size_t i = 0; i < rustls_crypto_provider_ciphersuites_len(base); ++i) {
    const struct rustls_supported_ciphersuite* s = rustls_crypto_provider_ciphersuites_get(base, i);
    if (rustls_supported_ciphersuite_get_suite(s) == 0x1301) suite = s; /* TLS_AES_128_GCM_SHA256 */
  }
  struct rl_config* c = suite ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    rustls_crypto_provider_free(base);
    return NULL;
  }
  c->rd = rd;
  c->wr = wr;
  struct rustls_crypto_provider_builder* pb = rustls_crypto_provider_builder_new_with_base(base);
  rustls_result r = rustls_crypto_provider_builder_set_cipher_suites(pb, &suite, 1);
  if (r == RUSTLS_RESULT_OK) r = rustls_crypto_provider_builder_build(pb, &c->provider);
  rustls_crypto_provider_builder_free(pb);
  rustls_crypto_provider_free(base); /* ours; the builder took its own reference */
  const struct rustls_certified_key* ck = NULL;
  struct rustls_signing_key* sk = NULL;
  if (r == RUSTLS_RESULT_OK) r = rustls_crypto_provider_load_key(c->provider, (const uint8_t*)key_pem, key_len, &sk);
  /* takes the signing key, even on error */
  if (r == RUSTLS_RESULT_OK) r = rustls_certified_key_build_with_signing_key((const uint8_t*)cert_pem, cert_len, sk, &ck);
  const uint16_t versions[] = {RUSTLS_TLS_VERSION_TLSV1_3};
  struct rustls_server_config_builder* sb = NULL;
  if (r == RUSTLS_RESULT_OK) r = rustls_server_config_builder_new_custom(c->provider, versions, 1, &sb);
  if (r == RUSTLS_RESULT_OK) {
    r = rustls_server_config_builder_set_certified_keys(sb, &ck, 1);
    /* rustls-ffi sets no ticketer: the ticket names a session kept in the
     * server's cache (256 entries for all connections). */
    if (r == RUSTLS_RESULT_OK) r = rustls_server_config_builder_set_send_tls13_tickets(sb, 1);
    rustls_result b = rustls_server_config_builder_build(sb, &c->server); /* frees the builder */
    if (r == RUSTLS_RESULT_OK) r = b;
  }
  rustls_certified_key_free(ck); /* the config holds its own reference */
  struct rustls_client_config_builder* cb = NULL;
  if (r == RUSTLS_RESULT_OK) r = rustls_client_config_builder_new_custom(c->provider, versions, 1, &cb);
  if (r == RUSTLS_RESULT_OK) {
    r = rustls_client_config_builder_dangerous_set_certificate_verifier(cb, trust_any);
    rustls_result b = rustls_client_config_builder_build(cb, &c->client);
    if (r == RUSTLS_RESULT_OK) r = b;
  }
  if (r != RUSTLS_RESULT_OK) {
    char msg[256];
    size_t len = 0;
    rustls_error(r, msg, sizeof msg, &len);
    fprintf(stderr, "rustls: %.*s\n", (int)len, msg);
    rl_config_free(c);
    return NULL;
  }
  return c;
}

void rl_config_free(struct rl_config* c) {
  if (!c) return;
  rustls_server_config_free(c->server);
  rustls_client_config_free(c->client);
  rustls_crypto_provider_free(c->provider);
  free(c);
}

struct rl_session* rl_session_new(struct rl_config* c, bool server, void* end) {
  struct rustls_connection* conn = NULL;
  rustls_result r = server ? rustls_server_connection_new(c->server, &conn)
                           : rustls_client_connection_new(c->client, "localhost", &conn);
  if (r != RUSTLS_RESULT_OK) return NULL;
  struct rl_session* s = malloc(sizeof *s);
  if (!s) {
    rustls_connection_free(conn);
    return NULL;
  }
  s->conn = conn;
  s->cfg = c;
  s->end = end;
  return s;
}

void rl_session_free(struct rl_session* s) {
  if (!s) return;
  rustls_connection_free(s->conn);
  free(s);
}

static rustls_io_result on_read(void* u, uint8_t* buf, size_t n, size_t* out) {
  struct rl_session* s = u;
  *out = s->cfg->rd(s->end, buf, n);
  return *out ? 0 : EAGAIN;
}
static rustls_io_result on_write(void* u, const uint8_t* buf, size_t n, size_t* out) {
  struct rl_session* s = u;
  s->cfg->wr(s->end, buf, n);
  *out = n;
  return 0;
}
static bool flush(struct rl_session* s) {
  while (rustls_connection_wants_write(s->conn)) {
    size_t n = 0;
    if (rustls_connection_write_tls(s->conn, on_write, s, &n) != 0) return false;
  }
  return true;
}
/* Everything the wire holds, processed; whatever that produced, sent. */
static bool pump(struct rl_session* s) {
  for (;;) {
    size_t n = 0;
    if (rustls_connection_read_tls(s->conn, on_read, s, &n) != 0 || n == 0) break;
    if (rustls_connection_process_new_packets(s->conn) != RUSTLS_RESULT_OK) return false;
  }
  return flush(s);
}

int rl_step(struct rl_session* s) {
  if (!pump(s)) return -1;
  return rustls_connection_is_handshaking(s->conn) ? 0 : 1;
}

bool rl_write(struct rl_session* s, const char* p, size_t n) {
  size_t w = 0;
  if (rustls_connection_write(s->conn, (const uint8_t*)p, n, &w) != RUSTLS_RESULT_OK || w != n) return false;
  return flush(s);
}

long rl_read(struct rl_session* s, char* p, size_t n) {
  if (!pump(s)) return -1;
  size_t got = 0;
  rustls_result r = rustls_connection_read(s->conn, (uint8_t*)p, n, &got);
  if (r == RUSTLS_RESULT_OK) return (long)got;
  return r == RUSTLS_RESULT_PLAINTEXT_EMPTY ? 0 : -1;
}
