/*
 * The upgrade hook through the C ABI (issue 12), with the library-independent
 * raw client of capi_test.h: the request view (decoded and raw path, query
 * and its parameters, headers by name and in order with duplicates,
 * cookies, remote address and port, offered and chosen subprotocols); accept
 * with an identity, user data and Set-Cookie, read back through
 * chatws_conn_get_info; a reject seen byte for byte (status, reason,
 * headers, body); answers with CR/LF or over a limit refused (500 from the
 * hook, CHATWS_EINVAL from resolve, nothing of them sent); a pending
 * request resolved from another thread; the handshake timeout's 503 on an
 * unresolved one; and (poll-driven server) a pending request whose client
 * left resolving into CHATWS_ENOCONN.
 *
 * test_c_upgrade_tls.c is this test over TLS (UPGRADE_OVER_TLS), without
 * the poll-driven part.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

#ifdef UPGRADE_OVER_TLS
#include "capi_tls.h"
#endif

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[4096];            /* what the /inspect hook saw, one fact a line */
static chatws_conn_id pending_id;  /* the last request left pending */
static test_counter pendings;      /* requests left pending so far */
static test_counter errors_logged; /* on_log lines at CHATWS_LOG_ERROR */
static char last_log[512];
static int user_tag = 42;

static void note(const char* fmt, const char* a, const char* b) {
  char line[512];
  snprintf(line, sizeof line, fmt, a, b);
  strncat(seen, line, sizeof seen - strlen(seen) - 1);
  strncat(seen, "\n", sizeof seen - strlen(seen) - 1);
}

static void on_log(chatws_server* s, int level, const char* message, void* user) {
  (void)s;
  (void)user;
  if (level != CHATWS_LOG_ERROR) return;
  pthread_mutex_lock(&mu);
  snprintf(last_log, sizeof last_log, "%s", message);
  pthread_mutex_unlock(&mu);
  counter_add(&errors_logged, 1);
}

static void hook(chatws_server* s, const chatws_upgrade_request* r, chatws_upgrade_answer* a,
                 void* user) {
  static chatws_header cookie = {"Set-Cookie", "sid=abc; Path=/; HttpOnly"};
  static chatws_header auth = {"WWW-Authenticate", "Bearer realm=\"chat\""};
  static chatws_header evil = {"X-Note", "fine\r\nX-Evil: injected"};
  (void)s;
  (void)user;
  if (strcmp(r->path, "/inspect me") == 0) {
    size_t i;
    char port[16];
    pthread_mutex_lock(&mu);
    seen[0] = '\0';
    note("method=%s%s", r->method, "");
    note("path=%s raw=%s", r->path, r->raw_path);
    note("query=%s%s", r->query, "");
    for (i = 0; i < r->query_param_count; i++)
      note("param %s=%s", r->query_params[i].name, r->query_params[i].value);
    for (i = 0; i < r->header_count; i++)
      if (strncmp(r->headers[i].name, "X-", 2) == 0 || strncmp(r->headers[i].name, "x-", 2) == 0)
        note("header %s=%s", r->headers[i].name, r->headers[i].value);
    note("lookup x-custom=%s%s", chatws_upgrade_header(r, "x-CUSTOM"), "");
    note("lookup absent=%s%s", chatws_upgrade_header(r, "x-absent") ? "found" : "null", "");
    for (i = 0; i < r->cookie_count; i++)
      note("cookie %s=%s", r->cookies[i].name, r->cookies[i].value);
    note("cookie lookup theme=%s%s", chatws_upgrade_cookie(r, "theme"), "");
    note("param lookup a=%s%s", chatws_upgrade_query_param(r, "a"), "");
    snprintf(port, sizeof port, "%u", (unsigned)r->remote_port);
    note("remote=%s:%s", r->remote_address, port);
    for (i = 0; i < r->subprotocol_count; i++) note("offered %s%s", r->subprotocols[i], "");
    note("chosen=%s%s", r->subprotocol, "");
    pthread_mutex_unlock(&mu);
    return; /* accept, nothing bound */
  }
  if (strcmp(r->path, "/accept") == 0) {
    a->identity = chatws_upgrade_query_param(r, "user");
    a->user_data = &user_tag;
    a->headers = &cookie;
    a->header_count = 1;
    return;
  }
  if (strcmp(r->path, "/reject") == 0) {
    a->action = CHATWS_UPGRADE_REJECT;
    a->status = 401;
    a->reason = "Who Are You";
    a->body = "token required";
    a->headers = &auth;
    a->header_count = 1;
    return;
  }
  if (strcmp(r->path, "/crlf") == 0) {
    a->headers = &evil;
    a->header_count = 1;
    return;
  }
  if (strcmp(r->path, "/status302") == 0) {
    a->action = CHATWS_UPGRADE_REJECT;
    a->status = 302;
    return;
  }
  if (strcmp(r->path, "/pending") == 0) {
    a->action = CHATWS_UPGRADE_PENDING;
    pthread_mutex_lock(&mu);
    pending_id = r->id;
    pthread_mutex_unlock(&mu);
    counter_add(&pendings, 1);
    return;
  }
}

/* Echoes "<identity>|<query>|<user data ok>" for any message. */
static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  chatws_conn_info info;
  char out[512];
  (void)data;
  (void)len;
  (void)is_binary;
  (void)user;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (chatws_conn_get_info(s, conn, &info) != CHATWS_OK) return;
  snprintf(out, sizeof out, "%s|%s|%s", info.identity ? info.identity : "(none)", info.query,
           chatws_conn_user_data(s, conn) == &user_tag ? "tagged" : "untagged");
  chatws_send(s, conn, out, strlen(out), CHATWS_TEXT);
}

static chatws_conn_id current_pending(void) {
  chatws_conn_id id;
  pthread_mutex_lock(&mu);
  id = pending_id;
  pthread_mutex_unlock(&mu);
  return id;
}

/* Sends a handshake for `target` with extra header lines. */
static int send_upgrade(int fd, const char* target, const char* extra) {
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_TEST_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n",
                   target, extra ? extra : "");
  return n > 0 && (size_t)n < sizeof req ? write_all(fd, req, (size_t)n) : -1;
}

/* Reads a whole non-101 response (head and Content-Length body) into buf. */
static int read_whole_response(int fd, char* buf, size_t cap) {
  const char* cl;
  size_t head, body;
  if (ws_read_response(fd, buf, cap) != 0) return -1;
  head = strlen(buf);
  cl = strstr(buf, "Content-Length: ");
  body = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
  if (head + body + 1 > cap || read_all(fd, buf + head, body) != 0) return -1;
  buf[head + body] = '\0';
  return 0;
}

/* Sends one text message and returns the reply (static buffer). */
static const char* ask(int fd) {
  static char reply[512];
  char* data = NULL;
  size_t len = 0;
  reply[0] = '\0';
  if (ws_send_frame(fd, 1, 1, "?", 1) != 0 || ws_read_message(fd, &data, &len) != 1) return "";
  snprintf(reply, sizeof reply, "%.*s", (int)len, data);
  free(data);
  return reply;
}

static void test_request_view(int port) {
  char head[2048];
  struct sockaddr_in local;
  socklen_t sl = sizeof local;
  char expect_remote[64];
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  getsockname(fd, (struct sockaddr*)&local, &sl);
  REQUIRE(send_upgrade(fd, "/inspect%20me?a=1&b=x+y%21&a=2&c",
                       "X-Custom: one\r\nx-custom: two\r\nCookie: sid=abc; theme=\"dark\"\r\n"
                       "Cookie: sid=second\r\nSec-WebSocket-Protocol: chat, json\r\n") == 0);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  CHECK(ws_has_header(head, "Sec-WebSocket-Protocol", "json"));
  snprintf(expect_remote, sizeof expect_remote, "remote=127.0.0.1:%u\n",
           (unsigned)ntohs(local.sin_port));
  pthread_mutex_lock(&mu);
  CHECK(strstr(seen, "method=GET\n") != NULL);
  CHECK(strstr(seen, "path=/inspect me raw=/inspect%20me\n") != NULL);
  CHECK(strstr(seen, "query=a=1&b=x+y%21&a=2&c\n") != NULL);
  CHECK(strstr(seen, "param a=1\nparam b=x y!\nparam a=2\nparam c=\n") != NULL);
  CHECK(strstr(seen, "header X-Custom=one\nheader x-custom=two\n") != NULL);
  CHECK(strstr(seen, "lookup x-custom=one\n") != NULL);
  CHECK(strstr(seen, "lookup absent=null\n") != NULL);
  CHECK(strstr(seen, "cookie sid=abc\ncookie theme=dark\ncookie sid=second\n") != NULL);
  CHECK(strstr(seen, "cookie lookup theme=dark\n") != NULL);
  CHECK(strstr(seen, "param lookup a=1\n") != NULL);
  CHECK(strstr(seen, expect_remote) != NULL);
  CHECK(strstr(seen, "offered chat\noffered json\nchosen=json\n") != NULL);
  if (test_failures) fprintf(stderr, "hook saw:\n%s", seen);
  pthread_mutex_unlock(&mu);
  CHECK(strcmp(ask(fd), "(none)|a=1&b=x+y%21&a=2&c|untagged") == 0);
  close(fd);
}

static void test_accept_with_identity(int port) {
  char head[2048];
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/accept?user=Zo%C3%AB", NULL) == 0);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  CHECK(ws_has_header(head, "Set-Cookie", "sid=abc; Path=/; HttpOnly"));
  CHECK(ws_has_header(head, "Sec-WebSocket-Accept", WS_TEST_ACCEPT));
  CHECK(strcmp(ask(fd), "Zo\xc3\xab|user=Zo%C3%AB|tagged") == 0);
  close(fd);
}

static void test_reject(int port) {
  char resp[2048];
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/reject", NULL) == 0);
  REQUIRE(read_whole_response(fd, resp, sizeof resp) == 0);
  CHECK(strcmp(resp,
               "HTTP/1.1 401 Who Are You\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: 14\r\n"
               "Connection: close\r\n"
               "WWW-Authenticate: Bearer realm=\"chat\"\r\n"
               "\r\n"
               "token required") == 0);
  if (test_failures) fprintf(stderr, "reject response:\n%s\n", resp);
  CHECK(wait_eof(fd, TEST_TIMEOUT_MS));
  close(fd);
}

/* An answer that breaks a rule: 500, nothing of it sent, on_log says why. */
static void test_bad_hook_answer(int port, const char* path, const char* why) {
  char resp[2048];
  int before = counter_get(&errors_logged);
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, path, NULL) == 0);
  REQUIRE(read_whole_response(fd, resp, sizeof resp) == 0);
  CHECK(strncmp(resp, "HTTP/1.1 500 ", 13) == 0);
  CHECK(strstr(resp, "X-Evil") == NULL && strstr(resp, "injected") == NULL);
  CHECK(counter_wait(&errors_logged, before + 1, TEST_TIMEOUT_MS));
  pthread_mutex_lock(&mu);
  if (!strstr(last_log, why)) {
    fprintf(stderr, "'%s' not in the log line: %s\n", why, last_log);
    CHECK(0);
  }
  pthread_mutex_unlock(&mu);
  close(fd);
}

/* resolve() with `a` is refused with CHATWS_EINVAL naming `why`. */
static void expect_resolve_refused(chatws_server* s, chatws_conn_id id,
                                   const chatws_upgrade_answer* a, const char* why) {
  CHECK_EQ_INT(chatws_upgrade_resolve(s, id, a), CHATWS_EINVAL);
  if (!strstr(chatws_last_error(), why)) {
    fprintf(stderr, "'%s' not in: %s\n", why, chatws_last_error());
    CHECK(0);
  }
}

static void test_pending_resolved_from_another_thread(chatws_server* s, int port) {
  static char big[5000];
  chatws_header headers[33];
  chatws_upgrade_answer a;
  chatws_conn_id id;
  char head[2048];
  size_t i;
  int before = counter_get(&pendings);
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/pending?room=x", NULL) == 0);
  REQUIRE(counter_wait(&pendings, before + 1, TEST_TIMEOUT_MS));
  id = current_pending();

  /* Every rule of an answer, from this (non-loop) thread: refused, the
   * request keeps waiting. */
  chatws_upgrade_answer_init(&a);
  a.action = CHATWS_UPGRADE_PENDING;
  expect_resolve_refused(s, id, &a, "ACCEPT or CHATWS_UPGRADE_REJECT");
  CHECK_EQ_INT(chatws_upgrade_resolve(s, id, NULL), CHATWS_EINVAL);
  chatws_upgrade_answer_init(&a);
  a.action = CHATWS_UPGRADE_REJECT;
  a.status = 399;
  expect_resolve_refused(s, id, &a, "between 400 and 599");
  a.status = 600;
  expect_resolve_refused(s, id, &a, "between 400 and 599");
  a.status = 403;
  a.reason = "bad\r\nX-Evil: 1";
  expect_resolve_refused(s, id, &a, "reason holds CR, LF");
  memset(big, 'r', 129);
  big[129] = '\0';
  a.reason = big;
  expect_resolve_refused(s, id, &a, "longer than 128");
  a.reason = NULL;
  memset(big, 'b', 4097);
  big[4097] = '\0';
  a.body = big;
  expect_resolve_refused(s, id, &a, "longer than 4096");
  chatws_upgrade_answer_init(&a);
  memset(big, 'i', 1025);
  big[1025] = '\0';
  a.identity = big;
  expect_resolve_refused(s, id, &a, "identity is longer than 1024");
  a.identity = "";
  expect_resolve_refused(s, id, &a, "identity is empty");
  a.identity = "bad\xff";
  expect_resolve_refused(s, id, &a, "not valid UTF-8");
  a.identity = "tab\there";
  expect_resolve_refused(s, id, &a, "control character");
  a.identity = "alice";
  for (i = 0; i < 33; i++) {
    headers[i].name = "X-N";
    headers[i].value = "v";
  }
  a.headers = headers;
  a.header_count = 33;
  expect_resolve_refused(s, id, &a, "more than 32");
  a.header_count = 1;
  headers[0].value = "a\nb";
  expect_resolve_refused(s, id, &a, "CR, LF");
  headers[0].name = "Bad Name";
  headers[0].value = "v";
  expect_resolve_refused(s, id, &a, "not an HTTP token");
  headers[0].name = "Content-Length";
  expect_resolve_refused(s, id, &a, "written by chatws");
  headers[0].name = "Sec-WebSocket-Accept";
  expect_resolve_refused(s, id, &a, "written by chatws");
  headers[0].name = "X-Big";
  memset(big, 'h', 4095);
  big[4095] = '\0';
  headers[0].value = big;
  expect_resolve_refused(s, id, &a, "longer than 4096");

  /* The good answer, then a second resolve of the same request: a no-op. */
  headers[0].name = "Set-Cookie";
  headers[0].value = "session=later";
  CHECK_EQ_INT(chatws_upgrade_resolve(s, id, &a), CHATWS_OK);
  CHECK_EQ_INT(chatws_upgrade_resolve(s, id, &a), CHATWS_ENOCONN);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  CHECK(ws_has_header(head, "Set-Cookie", "session=later"));
  CHECK(strstr(head, "X-Big") == NULL);
  CHECK(strcmp(ask(fd), "alice|room=x|untagged") == 0);
  close(fd);

  /* A pending request rejected later, seen by the client byte for byte. */
  before = counter_get(&pendings);
  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/pending", NULL) == 0);
  REQUIRE(counter_wait(&pendings, before + 1, TEST_TIMEOUT_MS));
  chatws_upgrade_answer_init(&a);
  a.action = CHATWS_UPGRADE_REJECT;
  a.status = 403;
  a.body = "not in this room";
  CHECK_EQ_INT(chatws_upgrade_resolve(s, current_pending(), &a), CHATWS_OK);
  REQUIRE(read_whole_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
  CHECK(strstr(head, "\r\n\r\nnot in this room") != NULL);
  close(fd);
}

static chatws_server* start_server(int handshake_timeout_ms, loop_thread* lt) {
  chatws_options o;
  chatws_server* s = NULL;
#ifdef UPGRADE_OVER_TLS
  static char cert[300], key[300];
#endif
  chatws_options_init(&o);
  o.subprotocols = "json,chat";
  o.on_upgrade = hook;
  o.on_message = on_message;
  o.on_log = on_log;
  o.handshake_timeout_ms = handshake_timeout_ms;
#ifdef UPGRADE_OVER_TLS
  o.tls_cert_file = tls_path(cert, sizeof cert, "a.pem");
  o.tls_key_file = tls_path(key, sizeof key, "a.key");
#endif
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(lt, s);
  return s;
}

static void stop_server(chatws_server* s, loop_thread* lt) {
  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  CHECK(loop_thread_join(lt, TEST_TIMEOUT_MS));
  chatws_server_destroy(s);
}

/* A server of its own, with a 300 ms handshake timeout (the main one keeps
 * the default, so that a loaded machine does not time its requests out). */
static void test_pending_times_out(void) {
  char resp[2048];
  chatws_upgrade_answer a;
  loop_thread lt;
  chatws_server* s = start_server(300, &lt);
  int before = counter_get(&pendings);
  int64_t start = now_ms();
  int fd = tcp_connect(chatws_server_port(s));
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/pending", NULL) == 0);
  REQUIRE(counter_wait(&pendings, before + 1, TEST_TIMEOUT_MS));
  REQUIRE(read_whole_response(fd, resp, sizeof resp) == 0);
  CHECK(strncmp(resp, "HTTP/1.1 503 ", 13) == 0);
  CHECK(ws_has_header(resp, "Retry-After", "1"));
  CHECK(now_ms() - start >= 250); /* the server's 300 ms, on its 250 ms tick */
  chatws_upgrade_answer_init(&a);
  CHECK_EQ_INT(chatws_upgrade_resolve(s, current_pending(), &a), CHATWS_ENOCONN);
  close(fd);
  stop_server(s, &lt);
}

#ifndef UPGRADE_OVER_TLS
/* Poll-driven, so that the test knows when the loop has seen the EOF. */
static void test_pending_client_left(void) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_upgrade_answer a;
  int fd, i, before = counter_get(&pendings);
  chatws_options_init(&o);
  o.on_upgrade = hook;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  fd = tcp_connect(chatws_server_port(s));
  REQUIRE(fd >= 0);
  REQUIRE(send_upgrade(fd, "/pending", NULL) == 0);
  for (i = 0; i < 100 && counter_get(&pendings) == before; i++) chatws_server_poll(s, 100);
  REQUIRE(counter_get(&pendings) == before + 1);
  close(fd);
  /* The EOF is the only event left: this poll returns once it is handled. */
  CHECK(chatws_server_poll(s, TEST_TIMEOUT_MS) >= 1);
  chatws_upgrade_answer_init(&a);
  CHECK_EQ_INT(chatws_upgrade_resolve(s, current_pending(), &a), CHATWS_ENOCONN);
  CHECK(strstr(chatws_last_error(), "client left") != NULL);
  chatws_server_destroy(s);
}
#endif

int main(void) {
  chatws_server* s;
  loop_thread lt;
  int port;
#ifdef UPGRADE_OVER_TLS
  REQUIRE(tls_test_init() == 0);
#endif
  counter_init(&pendings);
  counter_init(&errors_logged);
  s = start_server(0, &lt);
  port = chatws_server_port(s);
#ifdef UPGRADE_OVER_TLS
  tls_use_hooks();
#endif

  test_request_view(port);
  test_accept_with_identity(port);
  test_reject(port);
  test_bad_hook_answer(port, "/crlf", "CR, LF");
  test_bad_hook_answer(port, "/status302", "between 400 and 599");
  test_pending_resolved_from_another_thread(s, port);
  stop_server(s, &lt);
  test_pending_times_out();
#ifdef UPGRADE_OVER_TLS
  tls_thread_done();
  tls_test_cleanup();
  return test_finish("test_c_upgrade_tls");
#else
  test_pending_client_left();
  return test_finish("test_c_upgrade");
#endif
}
