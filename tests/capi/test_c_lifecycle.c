/*
 * Server lifecycle through the C ABI: binding (port 0, conflicts), stale ids,
 * and a graceful stop requested from another thread while run() blocks.
 */
#include "capi_test.h"

typedef struct events {
  test_counter opens;
  test_counter closes;
  chatws_conn_id last_open;
  int last_close_code;
} events;

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  events* ev = (events*)user;
  (void)s;
  ev->last_open = conn;
  counter_add(&ev->opens, 1);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  events* ev = (events*)user;
  (void)s;
  (void)conn;
  CHECK(reason != NULL);
  ev->last_close_code = code;
  counter_add(&ev->closes, 1);
}

static void events_init(events* ev) {
  memset(ev, 0, sizeof *ev);
  counter_init(&ev->opens);
  counter_init(&ev->closes);
}

static chatws_server* create_on(uint16_t port, events* ev) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.port = port;
  o.on_open = on_open;
  o.on_close = on_close;
  o.user = ev;
  if (chatws_server_create(&o, &s) != CHATWS_OK) return NULL;
  return s;
}

static void test_port_zero_and_conflict(void) {
  events ev;
  chatws_options o;
  chatws_server* s;
  chatws_server* second = (chatws_server*)&second;
  int port, fd, rc;

  events_init(&ev);
  s = create_on(0, &ev);
  REQUIRE(s != NULL);
  port = chatws_server_port(s);
  CHECK(port > 0 && port <= 65535);
  CHECK(chatws_server_fd(s) >= 0);
  CHECK(!chatws_server_stopped(s));
  CHECK_EQ_INT(chatws_connection_count(s), 0);

  /* The port is really listening (the kernel completes the TCP handshake
   * from the backlog even though no loop runs yet). */
  fd = tcp_connect(port);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);

  /* A second server on the same port fails to bind. */
  chatws_options_init(&o);
  o.port = (uint16_t)port;
  rc = chatws_server_create(&o, &second);
  CHECK_EQ_INT(rc, CHATWS_ESYSTEM);
  CHECK(second == NULL);
  CHECK(chatws_last_error()[0] != '\0');
  if (rc == CHATWS_OK) chatws_server_destroy(second);

  chatws_server_destroy(s);
}

static void test_stale_ids_without_loop(void) {
  events ev;
  chatws_server* s;
  chatws_conn_info info;
  int marker = 0;

  events_init(&ev);
  s = create_on(0, &ev);
  REQUIRE(s != NULL);
  /* No thread runs the loop, so this thread may call loop-thread functions. */
  CHECK_EQ_INT(chatws_conn_set_user_data(s, 12345, &marker), CHATWS_ENOCONN);
  CHECK(chatws_conn_user_data(s, 12345) == NULL);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_EQ_INT(chatws_conn_get_info(s, 12345, &info), CHATWS_ENOCONN);
  CHECK_EQ_INT(chatws_conn_get_info(s, 0, &info), CHATWS_ENOCONN);
  info.struct_size = 1; /* too small for any field */
  CHECK_EQ_INT(chatws_conn_get_info(s, 12345, &info), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_connections(s, NULL, 0), 0);
  chatws_server_destroy(s);
}

static void test_stop_from_other_thread(void) {
  events ev;
  loop_thread lt;
  chatws_server* s;
  chatws_conn_info info;
  int fd, code;

  events_init(&ev);
  s = create_on(0, &ev);
  REQUIRE(s != NULL);
  loop_thread_start(&lt, s);

  fd = ws_connect(chatws_server_port(s), "/", NULL);
  REQUIRE(fd >= 0);
  REQUIRE(counter_wait(&ev.opens, 1, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(chatws_connection_count(s), 1);

  /* While the loop runs on another thread: a second runner is refused, and
   * loop-thread functions refuse to run here. */
  CHECK_EQ_INT(chatws_server_run(s), CHATWS_ESTATE);
  CHECK_EQ_INT(chatws_server_poll(s, 0), CHATWS_ESTATE);
  CHECK_EQ_INT(chatws_connections(s, NULL, 0), CHATWS_ETHREAD);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_EQ_INT(chatws_conn_get_info(s, ev.last_open, &info), CHATWS_ETHREAD);

  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK); /* idempotent */

  /* The client is told the server is going away, answers, and is let go. */
  code = ws_read_close(fd);
  CHECK_EQ_INT(code, CHATWS_CLOSE_GOING_AWAY);
  CHECK(ws_send_close(fd, CHATWS_CLOSE_GOING_AWAY) == 0);
  CHECK(wait_eof(fd, TEST_TIMEOUT_MS));
  close(fd);

  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(lt.rc, CHATWS_OK);
  CHECK(chatws_server_stopped(s));
  CHECK_EQ_INT(counter_get(&ev.closes), 1);
  CHECK_EQ_INT(ev.last_close_code, CHATWS_CLOSE_GOING_AWAY);
  CHECK_EQ_INT(chatws_connection_count(s), 0);
  CHECK_EQ_INT(chatws_server_poll(s, 0), CHATWS_ESTOPPED);

  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&ev.closes), 1); /* on_close ran once, not again at destroy */
}

int main(void) {
  test_port_zero_and_conflict();
  test_stale_ids_without_loop();
  test_stop_from_other_thread();
  return test_finish("test_c_lifecycle");
}
