/*
 * TLS through the C ABI: the tls_* options, wss:// echo with OpenSSL's
 * client, every bad-certificate case failing create with a message naming
 * the file, chatws_server_reload_tls() from another thread while the loop
 * runs (live connections keep working, new ones see the new serial), and
 * the on_log line for plain HTTP on the TLS port.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

#include "capi_tls.h"

static int log_lines = 0;
static int log_level = -1;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_log(chatws_server* s, int level, const char* message, void* user) {
  (void)s;
  (void)user;
  if (strstr(message, "plain HTTP")) {
    pthread_mutex_lock(&log_mu);
    log_lines++;
    log_level = level;
    pthread_mutex_unlock(&log_mu);
  }
}

static void on_echo(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                    int is_binary, void* user) {
  (void)user;
  chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
}

static void tls_opts(chatws_options* o, const char* cert, const char* key) {
  static char c[300], k[300];
  chatws_options_init(o);
  o->tls_cert_file = tls_path(c, sizeof c, cert);
  o->tls_key_file = tls_path(k, sizeof k, key);
}

/* create() fails with CHATWS_EINVAL and a message containing `part`. */
static void expect_create_fails(chatws_options* o, const char* part) {
  chatws_server* s = NULL;
  CHECK_EQ_INT(chatws_server_create(o, &s), CHATWS_EINVAL);
  CHECK(s == NULL);
  if (!strstr(chatws_last_error(), part)) {
    fprintf(stderr, "  '%s' not in: %s\n", part, chatws_last_error());
    CHECK(0);
  }
}

static int echo_once(int fd, const char* text) {
  char* data = NULL;
  size_t len = 0;
  int ok;
  if (ws_send_frame(fd, 1, 1, text, strlen(text)) != 0) return 0;
  ok = ws_read_message(fd, &data, &len) == 1 && len == strlen(text) && memcmp(data, text, len) == 0;
  free(data);
  return ok;
}

typedef struct reload_arg {
  chatws_server* server;
  int rc;
} reload_arg;

static void* reload_main(void* p) {
  reload_arg* a = (reload_arg*)p;
  char c[300], k[300];
  a->rc = chatws_server_reload_tls(a->server, tls_path(c, sizeof c, "b.pem"), tls_path(k, sizeof k, "b.key"), NULL);
  return NULL;
}

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  char path[300];
  int fd, old_fd;

  REQUIRE(tls_test_init() == 0);
  signal(SIGPIPE, SIG_IGN); /* the client's socket BIO (see capi_tls.h) */

  /* Bad certificates and options: each fails create, naming what is wrong. */
  tls_opts(&o, "missing.pem", "a.key");
  expect_create_fails(&o, "missing.pem");
  tls_opts(&o, "a.pem", "missing.key");
  expect_create_fails(&o, "missing.key");
  tls_opts(&o, "a.pem", "b.key");
  expect_create_fails(&o, "key values mismatch");
  tls_opts(&o, "a.key", "a.key");
  expect_create_fails(&o, "no start line");
  tls_opts(&o, "a.pem", "a.key");
  o.tls_key_file = NULL;
  expect_create_fails(&o, "both tls_cert_file and tls_key_file");
  tls_opts(&o, "a.pem", "a.key");
  o.tls_min_version = 11;
  expect_create_fails(&o, "tls_min_version");
  tls_opts(&o, "a.pem", "a.key");
  o.tls_session_tickets = 5;
  expect_create_fails(&o, "tls_session_tickets");
  tls_opts(&o, "a.pem", "a.key");
  o.tls_ciphers = "NOT-A-CIPHER";
  expect_create_fails(&o, "NOT-A-CIPHER");

  /* No TLS: reload is a state error. */
  chatws_options_init(&o);
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  CHECK_EQ_INT(chatws_server_reload_tls(s, NULL, NULL, NULL), CHATWS_ESTATE);
  chatws_server_destroy(s);

  /* A TLS echo server. */
  tls_opts(&o, "a.pem", "a.key");
  o.on_message = on_echo;
  o.on_log = on_log;
  o.tls_min_version = CHATWS_TLS_1_2;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);

  /* Plain HTTP to the TLS port: a readable 400, one debug line. */
  fd = tcp_connect(chatws_server_port(s));
  REQUIRE(fd >= 0);
  {
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char head[512];
    REQUIRE(write_all(fd, req, sizeof req - 1) == 0);
    REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
    CHECK(strncmp(head, "HTTP/1.1 400", 12) == 0);
    CHECK(wait_eof(fd, TEST_TIMEOUT_MS));
    close(fd);
  }

  tls_use_hooks();
  old_fd = ws_connect(chatws_server_port(s), "/", NULL);
  REQUIRE(old_fd >= 0);
  CHECK(tls_peer_serial(old_fd) == 0xA1);
  CHECK(echo_once(old_fd, "hello over wss"));

  /* Reload from another thread while the loop runs. */
  {
    reload_arg a = {s, 99};
    pthread_t t;
    char c[300], k[300];
    CHECK_EQ_INT(chatws_server_reload_tls(s, tls_path(c, sizeof c, "a.pem"), tls_path(k, sizeof k, "b.key"), NULL),
                 CHATWS_EINVAL);
    CHECK(strstr(chatws_last_error(), "key values mismatch") != NULL);
    REQUIRE(pthread_create(&t, NULL, reload_main, &a) == 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(a.rc, CHATWS_OK);
  }
  fd = ws_connect(chatws_server_port(s), "/", NULL);
  REQUIRE(fd >= 0);
  CHECK(tls_peer_serial(fd) == 0xB2);
  CHECK(echo_once(fd, "new certificate"));
  CHECK(echo_once(old_fd, "old connection still served"));
  CHECK(tls_peer_serial(old_fd) == 0xA1);
  close(fd);
  close(old_fd);

  pthread_mutex_lock(&log_mu);
  CHECK_EQ_INT(log_lines, 1);
  CHECK_EQ_INT(log_level, CHATWS_LOG_DEBUG);
  pthread_mutex_unlock(&log_mu);

  chatws_server_stop(s);
  CHECK(loop_thread_join(&lt, TEST_TIMEOUT_MS) == 1);
  chatws_server_destroy(s);
  (void)path;
  tls_test_cleanup();
  return test_finish("test_c_tls");
}
