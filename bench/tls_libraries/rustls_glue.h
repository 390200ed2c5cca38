/* rustls-ffi's header is C only (an enum and a typedef share a name), so
 * the rustls calls live in rustls_glue.c behind these few functions, which
 * rustls_library.cpp wraps as a Library. */
#ifndef CHATWS_BENCH_RUSTLS_GLUE_H
#define CHATWS_BENCH_RUSTLS_GLUE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The transport: `end` is the caller's, handed back to these. read returns
 * the bytes taken (0: nothing there yet); write takes all of them. */
typedef size_t (*rl_read_fn)(void* end, unsigned char* buf, size_t n);
typedef void (*rl_write_fn)(void* end, const unsigned char* buf, size_t n);

enum rl_provider { RL_RING, RL_AWS_LC_RS };
struct rl_config;
struct rl_session;

/* Server and client configs over one crypto provider: TLS 1.3,
 * TLS_AES_128_GCM_SHA256 only, one ticket, the client trusting any
 * certificate. NULL, with rustls's reason on stderr, if the provider is not
 * built in or a PEM does not load. */
struct rl_config* rl_config_new(enum rl_provider p, const char* cert_pem, size_t cert_len, const char* key_pem,
                                size_t key_len, rl_read_fn rd, rl_write_fn wr);
void rl_config_free(struct rl_config* c);

struct rl_session* rl_session_new(struct rl_config* c, bool server, void* end);
void rl_session_free(struct rl_session* s);
/* Handshake: 1 done, 0 again, -1 failed. */
int rl_step(struct rl_session* s);
bool rl_write(struct rl_session* s, const char* p, size_t n);
/* > 0 bytes, 0 nothing yet, -1 failed. */
long rl_read(struct rl_session* s, char* p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
