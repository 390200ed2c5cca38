/*
 * on_close on every close path (issue 19, items 1 and 9). The host does what
 * chatws.h invites: it attaches malloc'ed state to each connection in
 * on_open and frees it in on_close, finding it with chatws_conn_user_data().
 * Every path must hand the state back (a NULL is counted as missing, and
 * ASan reports the leak): the close handshake, a FIN, a reset, the idle
 * timeout, the close timeout, a write error, a graceful stop (a client that
 * answers and one that does not), and chatws_server_destroy() with clients
 * still open, from the thread that polled and from another one. A
 * connection that never finished its handshake gets neither callback.
 */
#include "capi_test.h"

#define MAGIC 0x5eed

typedef struct conn_state {
  chatws_conn_id id;
  int magic;
} conn_state;

typedef struct host {
  test_counter opens, closes;
  pthread_mutex_t mu;
  chatws_conn_id last_open;
  int freed;    /* on_close found the state and freed it */
  int missing;  /* on_close found NULL (the host would leak it) */
  int info_ok;  /* chatws_conn_get_info() answered in on_close */
  int last_code;
} host;

static void host_init(host* h) {
  memset(h, 0, sizeof *h);
  counter_init(&h->opens);
  counter_init(&h->closes);
  pthread_mutex_init(&h->mu, NULL);
}

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host* h = (host*)user;
  conn_state* st = (conn_state*)malloc(sizeof *st);
  REQUIRE(st != NULL);
  st->id = conn;
  st->magic = MAGIC;
  CHECK_EQ_INT(chatws_conn_set_user_data(s, conn, st), CHATWS_OK);
  pthread_mutex_lock(&h->mu);
  h->last_open = conn;
  pthread_mutex_unlock(&h->mu);
  counter_add(&h->opens, 1);
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  (void)is_binary;
  (void)user;
  /* "close-me": the server starts the close handshake (the client may not answer). */
  if (len == 8 && memcmp(data, "close-me", 8) == 0)
    CHECK_EQ_INT(chatws_close(s, conn, CHATWS_CLOSE_NORMAL, "bye"), CHATWS_OK);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host* h = (host*)user;
  conn_state* st = (conn_state*)chatws_conn_user_data(s, conn);
  chatws_conn_info info;
  int info_rc;
  (void)reason;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info_rc = chatws_conn_get_info(s, conn, &info);
  pthread_mutex_lock(&h->mu);
  if (st && st->id == conn && st->magic == MAGIC) {
    h->freed++;
  } else {
    h->missing++;
    fprintf(stderr, "on_close(%llu, %d): user data %s\n", (unsigned long long)conn, code,
            st ? "is wrong" : "is NULL");
  }
  if (info_rc == CHATWS_OK && info.path && strcmp(info.path, "/p") == 0) h->info_ok++;
  h->last_code = code;
  pthread_mutex_unlock(&h->mu);
  if (st) {
    st->magic = 0;
    free(st);
  }
  counter_add(&h->closes, 1);
}

static chatws_server* make_server(host* h, chatws_options* o) {
  chatws_server* s = NULL;
  o->on_open = on_open;
  o->on_message = on_message;
  o->on_close = on_close;
  o->user = h;
  REQUIRE(chatws_server_create(o, &s) == CHATWS_OK);
  return s;
}

/* Every close so far found its state; `n` closes happened. */
static void check_all_freed(host* h, int n, const char* what) {
  pthread_mutex_lock(&h->mu);
  if (h->freed != n || h->missing != 0 || h->info_ok != n)
    fprintf(stderr, "%s: %d closes, %d freed, %d missing, %d with info\n", what, n, h->freed,
            h->missing, h->info_ok);
  CHECK_EQ_INT(h->freed, n);
  CHECK_EQ_INT(h->missing, 0);
  CHECK_EQ_INT(h->info_ok, n);
  pthread_mutex_unlock(&h->mu);
}

static int last_code(host* h) {
  int c;
  pthread_mutex_lock(&h->mu);
  c = h->last_code;
  pthread_mutex_unlock(&h->mu);
  return c;
}

/* Waits for the n-th close and checks its code and that its state came back. */
static void expect_close(host* h, int n, int code, const char* what) {
  if (!counter_wait(&h->closes, n, TEST_TIMEOUT_MS)) {
    fprintf(stderr, "%s: no on_close\n", what);
    CHECK(0);
    return;
  }
  if (last_code(h) != code) fprintf(stderr, "%s: code %d, expected %d\n", what, last_code(h), code);
  CHECK_EQ_INT(last_code(h), code);
  check_all_freed(h, n, what);
}

static void reset_close(int fd) {
  struct linger l = {1, 0}; /* close() sends RST */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

/* Item 9: the paths of a running server, each on its own client. */
static void test_paths_while_running(void) {
  host h;
  chatws_options o;
  chatws_server* s;
  loop_thread lt;
  int port, fd, answers, silent, hs, n = 0;
  char head[512];

  host_init(&h);
  chatws_options_init(&o);
  o.idle_timeout_ms = 300;      /* ping after 300 ms, 1006 after another 300 */
  o.close_timeout_ms = 200;     /* the wait for a close reply */
  o.handshake_timeout_ms = 300; /* the HTTP request head */
  o.drain_timeout_ms = 2000;
  s = make_server(&h, &o);
  port = chatws_server_port(s);
  loop_thread_start(&lt, s);

  /* The close handshake, started by the client (the case that always worked). */
  REQUIRE((fd = ws_connect(port, "/p", NULL)) >= 0);
  CHECK(ws_send_close(fd, CHATWS_CLOSE_NORMAL) == 0);
  CHECK_EQ_INT(ws_read_close(fd), CHATWS_CLOSE_NORMAL);
  CHECK(wait_eof(fd, TEST_TIMEOUT_MS));
  close(fd);
  expect_close(&h, ++n, CHATWS_CLOSE_NORMAL, "close handshake");

  /* TCP FIN without a close frame. */
  REQUIRE((fd = ws_connect(port, "/p", NULL)) >= 0);
  REQUIRE(counter_wait(&h.opens, n + 1, TEST_TIMEOUT_MS));
  close(fd);
  expect_close(&h, ++n, CHATWS_CLOSE_ABNORMAL, "FIN");

  /* TCP reset. */
  REQUIRE((fd = ws_connect(port, "/p", NULL)) >= 0);
  REQUIRE(counter_wait(&h.opens, n + 1, TEST_TIMEOUT_MS));
  reset_close(fd);
  expect_close(&h, ++n, CHATWS_CLOSE_ABNORMAL, "RST");

  /* Idle: the client never answers the server's ping. */
  REQUIRE((fd = ws_connect(port, "/p", NULL)) >= 0);
  expect_close(&h, ++n, CHATWS_CLOSE_ABNORMAL, "idle timeout");
  close(fd);

  /* Close timeout: the server closes, the client never replies. */
  REQUIRE((fd = ws_connect(port, "/p", NULL)) >= 0);
  CHECK(ws_send_frame(fd, 0x1, 1, "close-me", 8) == 0);
  CHECK_EQ_INT(ws_read_close(fd), CHATWS_CLOSE_NORMAL);
  expect_close(&h, ++n, CHATWS_CLOSE_NORMAL, "close timeout");
  CHECK(wait_eof(fd, TEST_TIMEOUT_MS));
  close(fd);

  /* A handshake that never completes: 408, and no open nor close to report. */
  REQUIRE((hs = tcp_connect(port)) >= 0);
  CHECK(ws_read_response(hs, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 408", 12) == 0);
  close(hs);

  /* Graceful stop: one client answers the 1001, the other never does (the
   * close timeout ends it; the Dead path, not the linger one). */
  REQUIRE((answers = ws_connect(port, "/p", NULL)) >= 0);
  REQUIRE((silent = ws_connect(port, "/p", NULL)) >= 0);
  REQUIRE(counter_wait(&h.opens, n + 2, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  CHECK_EQ_INT(ws_read_close(answers), CHATWS_CLOSE_GOING_AWAY);
  CHECK(ws_send_close(answers, CHATWS_CLOSE_GOING_AWAY) == 0);
  CHECK_EQ_INT(ws_read_close(silent), CHATWS_CLOSE_GOING_AWAY);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(lt.rc, CHATWS_OK);
  n += 2;
  CHECK_EQ_INT(counter_get(&h.closes), n);
  check_all_freed(&h, n, "graceful stop");
  CHECK_EQ_INT(counter_get(&h.opens), n); /* the 408 connection never opened */
  close(answers);
  close(silent);
  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&h.closes), n);
}

/* Polls on this thread until `c` reaches `target` (this thread is the owner). */
static int pump_until(chatws_server* s, test_counter* c, int target) {
  int64_t end = now_ms() + TEST_TIMEOUT_MS;
  while (counter_get(c) < target && now_ms() < end)
    if (chatws_server_poll(s, 20) < 0) return 0;
  return counter_get(c) >= target;
}

/* Item 9, a write error: the client resets, and the owner thread's send
 * between polls meets the reset socket (EPIPE/ECONNRESET from the write). */
static void test_write_error(void) {
  host h;
  chatws_options o;
  chatws_server* s;
  char head[512], big[800];
  chatws_conn_id conn;
  int fd;
  struct pollfd p;

  host_init(&h);
  chatws_options_init(&o);
  o.max_output_buffer = 1024; /* the second 800-byte message writes at once */
  s = make_server(&h, &o);
  REQUIRE((fd = tcp_connect(chatws_server_port(s))) >= 0);
  REQUIRE(ws_send_request(fd, "/p", NULL) == 0);
  REQUIRE(pump_until(s, &h.opens, 1));
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  pthread_mutex_lock(&h.mu);
  conn = h.last_open;
  pthread_mutex_unlock(&h.mu);
  reset_close(fd);
  /* The reset has reached the server's socket once its epoll fd reports it. */
  p.fd = chatws_server_fd(s);
  p.events = POLLIN;
  p.revents = 0;
  CHECK(poll(&p, 1, TEST_TIMEOUT_MS) == 1);
  memset(big, 'x', sizeof big);
  CHECK(chatws_send(s, conn, big, sizeof big, CHATWS_TEXT) >= 0); /* queued */
  CHECK_EQ_INT(chatws_send(s, conn, big, sizeof big, CHATWS_TEXT), CHATWS_ENOCONN); /* write failed */
  REQUIRE(pump_until(s, &h.closes, 1));
  CHECK_EQ_INT(last_code(&h), CHATWS_CLOSE_ABNORMAL);
  check_all_freed(&h, 1, "write error");
  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&h.closes), 1);
}

/* Item 1: destroy with clients open. `other_thread`: the loop ran on a
 * thread of its own that has ended, and this thread (not the owner) destroys;
 * else this thread polled and destroys. */
static void test_destroy_with_clients(int other_thread) {
  enum { N = 3 };
  host h;
  chatws_options o;
  chatws_server* s;
  poll_thread pt;
  char head[512];
  int fds[N], i, port;

  host_init(&h);
  chatws_options_init(&o);
  s = make_server(&h, &o);
  port = chatws_server_port(s);
  if (other_thread) {
    poll_thread_start(&pt, s);
    for (i = 0; i < N; i++) REQUIRE((fds[i] = ws_connect(port, "/p", NULL)) >= 0);
    REQUIRE(counter_wait(&h.opens, N, TEST_TIMEOUT_MS));
    CHECK_EQ_INT(poll_thread_quit(&pt), 0);
  } else {
    for (i = 0; i < N; i++) {
      REQUIRE((fds[i] = tcp_connect(port)) >= 0);
      REQUIRE(ws_send_request(fds[i], "/p", NULL) == 0);
    }
    REQUIRE(pump_until(s, &h.opens, N));
    for (i = 0; i < N; i++) REQUIRE(ws_read_response(fds[i], head, sizeof head) == 0);
  }
  chatws_server_destroy(s); /* on_close runs N times, here, and frees each state */
  CHECK_EQ_INT(counter_get(&h.closes), N);
  check_all_freed(&h, N, other_thread ? "destroy (another thread)" : "destroy (the owner)");
  CHECK_EQ_INT(last_code(&h), CHATWS_CLOSE_GOING_AWAY);
  for (i = 0; i < N; i++) {
    CHECK_EQ_INT(ws_read_close(fds[i]), CHATWS_CLOSE_GOING_AWAY);
    close(fds[i]);
  }
}

int main(void) {
  test_paths_while_running();
  test_write_error();
  test_destroy_with_clients(0);
  test_destroy_with_clients(1);
  return test_finish("test_c_close_paths");
}
