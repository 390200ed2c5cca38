/*
 * Every public chatws_* function from every callback (reentrancy_matrix.h),
 * including the on_close calls that chatws_server_stop() and
 * chatws_server_destroy() cause; and the nested poll of issue 19 item 2: a
 * callback that polls again is refused (CHATWS_ESTATE), and the message it
 * is handling stays what it was even though more input waits in the socket.
 */
#include "capi_test.h"
#include "reentrancy_matrix.h"

typedef struct host {
  matrix_server m;
  test_counter opens, closes, got_a, b_sent;
  pthread_mutex_t mu;
  int stopping;   /* chatws_server_stop() was called from on_message */
  int destroying; /* the main thread is inside chatws_server_destroy() */
  int a_intact;   /* on_message("A") still had "A" after the nested calls */
} host;

static void host_init(host* h, chatws_server* s) {
  memset(h, 0, sizeof *h);
  matrix_server_init(&h->m, s, 1, 0);
  counter_init(&h->opens);
  counter_init(&h->closes);
  counter_init(&h->got_a);
  counter_init(&h->b_sent);
  pthread_mutex_init(&h->mu, NULL);
}

static int host_flag(host* h, int* flag) {
  int v;
  pthread_mutex_lock(&h->mu);
  v = *flag;
  pthread_mutex_unlock(&h->mu);
  return v;
}

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host* h = (host*)user;
  matrix_conn* mc = (matrix_conn*)malloc(sizeof *mc);
  REQUIRE(mc != NULL);
  mc->id = conn;
  CHECK_EQ_INT(chatws_conn_set_user_data(s, conn, mc), CHATWS_OK);
  matrix_run(s, &h->m, CTX_OPEN, conn);
  counter_add(&h->opens, 1);
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  host* h = (host*)user;
  (void)is_binary;
  if (len == 1 && data[0] == 'A') {
    /* Item 2: "B" is in the socket before the nested poll: a poll let in
     * here would read it into the buffer that `data` points into. */
    counter_add(&h->got_a, 1);
    REQUIRE(counter_wait(&h->b_sent, 1, TEST_TIMEOUT_MS));
    matrix_run(s, &h->m, CTX_MESSAGE, conn);
    pthread_mutex_lock(&h->mu);
    h->a_intact = len == 1 && data[0] == 'A';
    pthread_mutex_unlock(&h->mu);
    CHECK(chatws_send(s, conn, data, len, CHATWS_TEXT) >= 0);
  } else if (len == 1 && data[0] == 'B') {
    CHECK(chatws_send(s, conn, data, len, CHATWS_TEXT) >= 0);
  } else if (len == 5 && memcmp(data, "drain", 5) == 0) {
    /* Above half of max_output_buffer: on_drain follows once written. */
    static char big[40000];
    memset(big, 'd', sizeof big);
    CHECK_EQ_INT(chatws_send(s, conn, big, sizeof big, CHATWS_BINARY), CHATWS_QUEUED_OVER_LIMIT);
  } else if (len == 4 && memcmp(data, "stop", 4) == 0) {
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  }
}

static void on_drain(chatws_server* s, chatws_conn_id conn, void* user) {
  matrix_run(s, &((host*)user)->m, CTX_DRAIN, conn);
}

static int on_chat(chatws_server* s, chatws_conn_id conn, chatws_chat_message* msg, void* user) {
  (void)msg;
  matrix_run(s, &((host*)user)->m, CTX_CHAT, conn);
  return CHATWS_CHAT_ACCEPT;
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host* h = (host*)user;
  matrix_ctx ctx = host_flag(h, &h->destroying) ? CTX_CLOSE_DESTROY
                   : host_flag(h, &h->stopping) ? CTX_CLOSE_STOP
                                                : CTX_CLOSE;
  (void)code;
  (void)reason;
  matrix_run(s, &h->m, ctx, conn);
  free(chatws_conn_user_data(s, conn));
  counter_add(&h->closes, 1);
}

static chatws_server* make_server(host* h) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.chat = 1;
  o.max_output_buffer = 64 * 1024;
  o.on_open = on_open;
  o.on_message = on_message;
  o.on_drain = on_drain;
  o.on_chat = on_chat;
  o.on_close = on_close;
  o.user = h;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  host_init(h, s);
  return s;
}

/* Reads data messages until one equal to `want` (of `len` bytes) arrives;
 * the matrix's own sends ("m", "b") come in between. */
static int read_until(int fd, const char* want, size_t len) {
  int i;
  for (i = 0; i < 10000; i++) {
    char* got = NULL;
    size_t n = 0;
    int match;
    if (ws_read_message(fd, &got, &n) < 0) return 0;
    match = n == len && memcmp(got, want, len) == 0;
    if (!match && n == 1 && (got[0] == 'A' || got[0] == 'B') && len == 1) {
      fprintf(stderr, "read_until: got \"%c\" while waiting for \"%.*s\"\n", got[0], (int)len, want);
      free(got);
      return 0;
    }
    free(got);
    if (match) return 1;
  }
  return 0;
}

static const char kChatLine[] = "{\"user\":\"u\",\"text\":\"t\"}";

static void test_matrix_while_running_and_stopping(void) {
  host h;
  chatws_server* s = make_server(&h);
  poll_thread pt;
  int a, chat, d, i;

  poll_thread_start(&pt, s);
  REQUIRE((a = ws_connect(h.m.port, "/m", NULL)) >= 0);
  REQUIRE(counter_wait(&h.opens, 1, TEST_TIMEOUT_MS));

  /* Item 2: "A", then "B" once on_message("A") is running. */
  REQUIRE(ws_send_frame(a, 0x1, 1, "A", 1) == 0);
  REQUIRE(counter_wait(&h.got_a, 1, TEST_TIMEOUT_MS));
  REQUIRE(ws_send_frame(a, 0x1, 1, "B", 1) == 0);
  counter_add(&h.b_sent, 1);
  CHECK(read_until(a, "A", 1)); /* "A" first (before the fix: "B" twice) */
  CHECK(read_until(a, "B", 1));
  CHECK(host_flag(&h, &h.a_intact));

  /* on_drain. */
  REQUIRE(ws_send_frame(a, 0x1, 1, "drain", 5) == 0);
  for (i = 0; i < 100 && matrix_seen(&h.m, CTX_DRAIN) == 0; i++) {
    char* got = NULL;
    size_t n = 0;
    if (ws_read_message(a, &got, &n) < 0) break; /* the 40000 bytes, then the drain's sends */
    free(got);
  }
  CHECK(matrix_seen(&h.m, CTX_DRAIN) > 0);

  /* on_chat: a classic chat client posts. */
  REQUIRE((chat = ws_connect(h.m.port, "/", "json")) >= 0);
  REQUIRE(ws_send_frame(chat, 0x1, 1, kChatLine, sizeof kChatLine - 1) == 0);
  CHECK(ws_send_frame(a, 0x1, 1, "B", 1) == 0); /* on a's echo, on_chat has run (one loop) */
  CHECK(read_until(a, "B", 1));
  CHECK(matrix_seen(&h.m, CTX_CHAT) > 0);

  /* on_close after the peer's close. */
  REQUIRE((d = ws_connect(h.m.port, "/d", NULL)) >= 0);
  CHECK(ws_send_close(d, CHATWS_CLOSE_NORMAL) == 0);
  CHECK_EQ_INT(ws_read_close(d), CHATWS_CLOSE_NORMAL);
  REQUIRE(counter_wait(&h.closes, 1, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE), 1);
  close(d);

  /* on_close during a graceful stop, asked for from on_message. */
  CHECK(ws_send_frame(a, 0x1, 1, "stop", 4) == 0);
  CHECK_EQ_INT(ws_read_close(a), CHATWS_CLOSE_GOING_AWAY);
  CHECK(ws_send_close(a, CHATWS_CLOSE_GOING_AWAY) == 0);
  CHECK_EQ_INT(ws_read_close(chat), CHATWS_CLOSE_GOING_AWAY);
  CHECK(ws_send_close(chat, CHATWS_CLOSE_GOING_AWAY) == 0);
  CHECK(wait_eof(a, TEST_TIMEOUT_MS));
  CHECK(wait_eof(chat, TEST_TIMEOUT_MS));
  close(a);
  close(chat);
  /* The thread ends when poll says the server stopped. */
  REQUIRE(poll_thread_wait_end(&pt, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(pt.rc, 0);
  CHECK(chatws_server_stopped(s));
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE_STOP), 2);
  CHECK_EQ_INT(counter_get(&h.closes), 3);
  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&h.closes), 3);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE_DESTROY), 0);
  for (i = 0; i < CTX_COUNT; i++)
    if (i != CTX_CLOSE_DESTROY && i != CTX_LOG && matrix_seen(&h.m, (matrix_ctx)i) == 0) {
      fprintf(stderr, "the matrix never ran in %s\n", matrix_ctx_names[i]);
      CHECK(0);
    }
}

/* on_close from chatws_server_destroy(), here on the main thread (not the
 * one that polled), with a plain and a chat client open. */
static void test_matrix_during_destroy(void) {
  host h;
  chatws_server* s = make_server(&h);
  poll_thread pt;
  int a, chat;

  poll_thread_start(&pt, s);
  REQUIRE((a = ws_connect(h.m.port, "/m", NULL)) >= 0);
  REQUIRE((chat = ws_connect(h.m.port, "/", "json")) >= 0);
  REQUIRE(counter_wait(&h.opens, 2, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(poll_thread_quit(&pt), 0);
  pthread_mutex_lock(&h.mu);
  h.destroying = 1;
  pthread_mutex_unlock(&h.mu);
  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&h.closes), 2);
  CHECK_EQ_INT(matrix_seen(&h.m, CTX_CLOSE_DESTROY), 2);
  CHECK_EQ_INT(ws_read_close(a), CHATWS_CLOSE_GOING_AWAY);
  CHECK_EQ_INT(ws_read_close(chat), CHATWS_CLOSE_GOING_AWAY);
  close(a);
  close(chat);
}

int main(void) {
  test_matrix_while_running_and_stopping();
  test_matrix_during_destroy();
  return test_finish("test_c_reentrancy");
}
