/*
 * Several event loops through the C ABI (chatws_options.threads = 2), over
 * 127.0.0.1 with the raw-socket client of capi_test.h: the option's checks,
 * chatws_server_poll()/chatws_server_fd() refused with CHATWS_ESTATE and a
 * message, connections on both loops with unique ids, a broadcast from a
 * callback reaching every client once, sends from a foreign thread, a
 * loop-thread call from a foreign thread refused, stats summed over the
 * loops, and a stop that closes every loop's clients with 1001 and returns
 * from chatws_server_run() with every thread joined; all of it with each
 * accept_mode, and with CHATWS_ACCEPT_HANDOFF the connections (opened one
 * after another) split evenly between the loops.
 */
#include "capi_test.h"

#define CONNS 16

typedef struct host_state {
  pthread_mutex_t mu; /* callbacks of the two loops run at the same time */
  chatws_conn_id ids[CONNS];
  int opened;
  test_counter opens;
  test_counter closes;
  int close_1001;
} host_state;

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host_state* st = (host_state*)user;
  (void)s;
  pthread_mutex_lock(&st->mu);
  if (st->opened < CONNS) st->ids[st->opened++] = conn;
  pthread_mutex_unlock(&st->mu);
  counter_add(&st->opens, 1);
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  (void)conn;
  (void)is_binary;
  (void)user;
  chatws_broadcast(s, data, len, CHATWS_TEXT, 0);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host_state* st = (host_state*)user;
  (void)s;
  (void)conn;
  (void)reason;
  pthread_mutex_lock(&st->mu);
  st->close_1001 += code == 1001;
  pthread_mutex_unlock(&st->mu);
  counter_add(&st->closes, 1);
}

static void expect_text(int fd, const char* want) {
  char* data = NULL;
  size_t len = 0;
  int op = ws_read_message(fd, &data, &len);
  CHECK_EQ_INT(op, 0x1);
  if (op == 0x1) CHECK(len == strlen(want) && memcmp(data, want, len) == 0);
  free(data);
}

static void option_checks(void) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.threads = 257;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);
  CHECK(strstr(chatws_last_error(), "threads") != NULL);
  o.threads = -2;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);
  CHECK(s == NULL);
  o.threads = 2;
  o.accept_mode = 2;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);
  CHECK(strstr(chatws_last_error(), "accept_mode") != NULL);
  CHECK(s == NULL);
}

static void scenario(int accept_mode) {
  host_state st;
  chatws_options opts;
  chatws_server* server = NULL;
  loop_thread lt;
  int fds[CONNS];
  int i, port, loops_seen = 0;
  int on_loop[2] = {0, 0};
  chatws_stats stats;

  memset(&st, 0, sizeof st);
  pthread_mutex_init(&st.mu, NULL);
  counter_init(&st.opens);
  counter_init(&st.closes);
  chatws_options_init(&opts);
  opts.threads = 2;
  opts.accept_mode = accept_mode;
  opts.on_open = on_open;
  opts.on_message = on_message;
  opts.on_close = on_close;
  opts.user = &st;
  REQUIRE(chatws_server_create(&opts, &server) == CHATWS_OK);
  port = chatws_server_port(server);

  /* No single descriptor or iteration to drive. */
  CHECK_EQ_INT(chatws_server_poll(server, 0), CHATWS_ESTATE);
  CHECK(strstr(chatws_last_error(), "threads > 1") != NULL);
  CHECK_EQ_INT(chatws_server_fd(server), CHATWS_ESTATE);
  CHECK(strstr(chatws_last_error(), "chatws_server_run") != NULL);

  loop_thread_start(&lt, server);
  for (i = 0; i < CONNS; ++i) {
    fds[i] = ws_connect(port, "/", NULL);
    REQUIRE(fds[i] >= 0);
  }
  REQUIRE(counter_wait(&st.opens, CONNS, TEST_TIMEOUT_MS));
  pthread_mutex_lock(&st.mu);
  for (i = 0; i < CONNS; ++i) {
    int j;
    for (j = 0; j < i; ++j) CHECK(st.ids[i] != st.ids[j]);
    loops_seen |= 1 << (int)(st.ids[i] % 2);
    ++on_loop[st.ids[i] % 2];
  }
  pthread_mutex_unlock(&st.mu);
  CHECK_EQ_INT(loops_seen, 3); /* both loops have connections (reuseport: 1 in 2^15 otherwise) */
  /* Handoff: each connection (the previous one upgraded) went to the loop
   * with fewer. */
  if (accept_mode == CHATWS_ACCEPT_HANDOFF) CHECK_EQ_INT(on_loop[0], on_loop[1]);
  CHECK(chatws_connection_count(server) == CONNS);

  /* A broadcast from a callback on one loop reaches both loops' clients. */
  REQUIRE(ws_send_frame(fds[0], 0x1, 1, "hello all", 9) == 0);
  for (i = 0; i < CONNS; ++i) expect_text(fds[i], "hello all");

  /* From this (foreign) thread: sends are queued to the owning loop;
   * loop-thread calls are refused. */
  for (i = 0; i < CONNS; ++i) {
    chatws_conn_info info;
    char text[32];
    snprintf(text, sizeof text, "to %d", i);
    CHECK_EQ_INT(chatws_send(server, st.ids[i], text, strlen(text), CHATWS_TEXT), CHATWS_OK);
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_EQ_INT(chatws_conn_get_info(server, st.ids[i], &info), CHATWS_ETHREAD);
  }
  /* ids[i] is the i-th opened, not the i-th connected: each client gets
   * exactly one "to N" message. */
  for (i = 0; i < CONNS; ++i) {
    char* data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ws_read_message(fds[i], &data, &len), 0x1);
    CHECK(len >= 4 && memcmp(data, "to ", 3) == 0);
    free(data);
  }

  /* Stats of both loops, summed (each loop publishes at its iteration's end). */
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  REQUIRE(chatws_server_get_stats(server, &stats) == CHATWS_OK);
  CHECK(stats.websocket_connections == CONNS);

  CHECK_EQ_INT(chatws_server_stop(server), CHATWS_OK);
  for (i = 0; i < CONNS; ++i) {
    CHECK_EQ_INT(ws_read_close(fds[i]), 1001);
    ws_send_close(fds[i], 1001);
  }
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(lt.rc, CHATWS_OK);
  CHECK(chatws_server_stopped(server));
  CHECK(counter_wait(&st.closes, CONNS, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(st.close_1001, CONNS);
  for (i = 0; i < CONNS; ++i) close(fds[i]);
  chatws_server_destroy(server);
  pthread_mutex_destroy(&st.mu);
}

int main(void) {
  option_checks();
  scenario(CHATWS_ACCEPT_REUSEPORT);
  scenario(CHATWS_ACCEPT_HANDOFF);
  return test_finish("test_c_threads");
}
