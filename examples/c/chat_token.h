/*
 * Token mode of chat_server (--auth-secret FILE), the same tokens as
 * `python -m chatws --auth-secret FILE` (python/chatws/_token.py), so that
 * `python -m chatws token --auth-secret FILE --user NAME --ttl 3600` makes
 * tokens for either server.
 *
 * A token is "<user>.<expiry>.<mac>": expiry in Unix seconds (ASCII digits),
 * mac the lowercase hex HMAC-SHA256 (OpenSSL) of "<user>.<expiry>" under the
 * secret (the file's bytes without surrounding whitespace, at least 16).
 * The upgrade hook admits a request carrying a valid, unexpired token in the
 * `token` query parameter or else the `chatws_token` cookie, and binds <user>
 * as the connection's identity (the chat posts under it); anything else gets
 * 401 with WWW-Authenticate. The MAC is compared in constant time.
 */
#ifndef CHAT_TOKEN_H
#define CHAT_TOKEN_H

#include <chatws.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TOKEN_SECRET_MAX 4096
#define TOKEN_USER_MAX 1024 /* the longest identity chatws binds */
#define TOKEN_COOKIE "chatws_token"

struct token_secret {
  unsigned char bytes[TOKEN_SECRET_MAX];
  size_t len;
};

/* Reads the secret from `path`. 0, or -1 with a message in err. */
static int token_load_secret(const char* path, struct token_secret* s, char* err, size_t errlen) {
  unsigned char buf[TOKEN_SECRET_MAX + 1];
  size_t n, start = 0;
  FILE* f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  n = fread(buf, 1, sizeof buf, f);
  if (ferror(f)) {
    snprintf(err, errlen, "%s: read error", path);
    fclose(f);
    return -1;
  }
  fclose(f);
  if (n > TOKEN_SECRET_MAX) {
    snprintf(err, errlen, "%s: the secret must be at most %d bytes", path, TOKEN_SECRET_MAX);
    return -1;
  }
  /* The whitespace Python's bytes.strip() removes. */
  while (start < n && isspace(buf[start])) start++;
  while (n > start && isspace(buf[n - 1])) n--;
  if (n - start < 16) {
    snprintf(err, errlen, "%s: the secret must be at least 16 bytes", path);
    return -1;
  }
  memcpy(s->bytes, buf + start, n - start);
  s->len = n - start;
  return 0;
}

/* The token's user (copied into user, at most TOKEN_USER_MAX bytes + NUL) if
 * the token is well formed, its MAC right and its expiry after `now`:
 * returns 1; else 0. */
static int token_check(const struct token_secret* s, const char* token, time_t now,
                       char user[TOKEN_USER_MAX + 1]) {
  const char* mac_dot = strrchr(token, '.');
  const char* exp_dot;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  size_t payload_len, user_len, i;
  uint64_t expiry = 0;
  int ok;
  if (!mac_dot || mac_dot == token) return 0;
  for (exp_dot = mac_dot - 1; exp_dot > token && *exp_dot != '.'; exp_dot--) {}
  if (*exp_dot != '.' || exp_dot == token || exp_dot + 1 == mac_dot) return 0;
  user_len = (size_t)(exp_dot - token);
  payload_len = (size_t)(mac_dot - token);
  if (user_len > TOKEN_USER_MAX) return 0;
  for (i = 1; exp_dot + i < mac_dot; i++) {
    char c = exp_dot[i];
    if (c < '0' || c > '9') return 0;
    /* Saturating: a far expiry is far whatever its digits. */
    expiry = expiry > (UINT64_MAX - 9) / 10 ? UINT64_MAX : expiry * 10 + (uint64_t)(c - '0');
  }
  if (!HMAC(EVP_sha256(), s->bytes, (int)s->len, (const unsigned char*)token, payload_len, mac,
            &mac_len))
    return 0;
  for (i = 0; i < mac_len; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  /* Constant time over the MAC's length: a wrong MAC costs the same whatever
   * its prefix. A MAC of another length is wrong whatever it holds. */
  ok = strlen(mac_dot + 1) == 2 * (size_t)mac_len &&
       CRYPTO_memcmp(hex, mac_dot + 1, 2 * (size_t)mac_len) == 0;
  if (!ok || now < 0 || expiry <= (uint64_t)now) return 0;
  memcpy(user, token, user_len);
  user[user_len] = '\0';
  return 1;
}

/* chatws_options.on_upgrade with chatws_options.user = the token_secret. */
static void token_upgrade(chatws_server* server, const chatws_upgrade_request* req,
                          chatws_upgrade_answer* answer, void* user) {
  /* The identity is read when the hook returns (the loop thread's). */
  static _Thread_local char name[TOKEN_USER_MAX + 1];
  static const chatws_header challenge = {"WWW-Authenticate", "Bearer realm=\"chatws\""};
  const struct token_secret* secret = user;
  const char* token = chatws_upgrade_query_param(req, "token");
  (void)server;
  if (!token || !token[0]) token = chatws_upgrade_cookie(req, TOKEN_COOKIE);
  if (token && token[0] && token_check(secret, token, time(NULL), name)) {
    answer->action = CHATWS_UPGRADE_ACCEPT;
    answer->identity = name;
    return;
  }
  answer->action = CHATWS_UPGRADE_REJECT;
  answer->status = 401;
  answer->body = "a valid token is required";
  answer->headers = &challenge;
  answer->header_count = 1;
}

#endif
