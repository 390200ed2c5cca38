/*
 * The re-entrancy matrix (reentrancy_matrix.h) on a TLS chat server: from
 * on_log (plain HTTP on the TLS port), and from on_open / on_close of wss://
 * connections, the last ones during chatws_server_destroy(). Here
 * chatws_server_reload_tls() is allowed from every callback.
 */
#include "capi_test.h"
#include "capi_tls.h"
#include "reentrancy_matrix.h"

typedef struct host {
  matrix_server m;
  test_counter opens, closes;
  pthread_mutex_t mu;
  int destroying;
} host;

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host* h = (host*)user;
  matrix_conn* mc = (matrix_conn*)malloc(sizeof *mc);
  REQUIRE(mc != NULL);
  mc->id = conn;
  CHECK_EQ_INT(chatws_conn_set_user_data(s, conn, mc), CHATWS_OK);
  matrix_run(s, &h->m, CTX_OPEN, conn);
  counter_add(&h->opens, 1);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host* h = (host*)user;
  int destroying;
  (void)code;
  (void)reason;
  pthread_mutex_lock(&h->mu);
  destroying = h->destroying;
  pthread_mutex_unlock(&h->mu);
  matrix_run(s, &h->m, destroying ? CTX_CLOSE_DESTROY : CTX_CLOSE, conn);
  free(chatws_conn_user_data(s, conn));
  counter_add(&h->closes, 1);
}

static void on_log(chatws_server* s, int level, const char* message, void* user) {
  (void)level;
  (void)message;
  matrix_run(s, &((host*)user)->m, CTX_LOG, 0);
}

int main(void) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  char c[300], k[300], head[512];
  chatws_options o;
  chatws_server* s = NULL;
  poll_thread pt;
  host h;
  int fd, kept;

  REQUIRE(tls_test_init() == 0);
  chatws_options_init(&o);
  o.tls_cert_file = tls_path(c, sizeof c, "a.pem");
  o.tls_key_file = tls_path(k, sizeof k, "a.key");
  o.chat = 1;
  o.on_open = on_open;
  o.on_close = on_close;
  o.on_log = on_log;
  o.user = &h;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  memset(&h, 0, sizeof h);
  matrix_server_init(&h.m, s, 1, 1);
  counter_init(&h.opens);
  counter_init(&h.closes);
  pthread_mutex_init(&h.mu, NULL);
  poll_thread_start(&pt, s);

  /* on_log: plain HTTP to the TLS port (the line comes before the 400). */
  REQUIRE((fd = tcp_connect(h.m.port)) >= 0);
  REQUIRE(write_all(fd, req, sizeof req - 1) == 0);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 400", 12) == 0);
  close(fd);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_LOG), 1);

  /* on_open and on_close over wss://. */
  tls_use_hooks();
  REQUIRE((fd = ws_connect(h.m.port, "/t", NULL)) >= 0);
  CHECK(ws_send_close(fd, CHATWS_CLOSE_NORMAL) == 0);
  CHECK_EQ_INT(ws_read_close(fd), CHATWS_CLOSE_NORMAL);
  CHECK(counter_wait(&h.closes, 1, TEST_TIMEOUT_MS));
  close(fd);

  /* on_close from destroy, on this thread, with a wss:// client open. */
  REQUIRE((kept = ws_connect(h.m.port, "/t", NULL)) >= 0);
  REQUIRE(counter_wait(&h.opens, 2, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(poll_thread_quit(&pt), 0);
  pthread_mutex_lock(&h.mu);
  h.destroying = 1;
  pthread_mutex_unlock(&h.mu);
  chatws_server_destroy(s);
  close(kept);

  CHECK_EQ_INT(counter_get(&h.closes), 2);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_OPEN), 2);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE), 1);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE_DESTROY), 1);
  tls_test_cleanup();
  return test_finish("test_c_reentrancy_tls");
}
