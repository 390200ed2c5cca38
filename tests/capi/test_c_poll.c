/*
 * Poll mode: the host runs its own event loop on chatws_server_fd() and calls
 * chatws_server_poll(s, 0) only when that fd is readable, as asyncio's
 * add_reader() would. One thread drives both the server and a raw client.
 */
#include "capi_test.h"

typedef struct host_state {
  int opens, messages, closes, close_code;
  chatws_conn_id conn;
} host_state; /* touched only on this test's single thread */

static int fd_wakeups = 0;

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host_state* st = (host_state*)user;
  (void)s;
  st->opens++;
  st->conn = conn;
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  host_state* st = (host_state*)user;
  st->messages++;
  /* The loop thread is this thread, inside chatws_server_poll(). */
  CHECK_EQ_INT(chatws_connections(s, NULL, 0), 1);
  CHECK(chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT) >= 0);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host_state* st = (host_state*)user;
  (void)s;
  (void)reason;
  CHECK(conn == st->conn);
  st->closes++;
  st->close_code = code;
}

/* What pump() saw first. */
enum { PUMP_FAILED = -1, PUMP_CLIENT = 1, PUMP_STOPPED = 2 };

/* Drives the server as a host's own loop would: wait on its fd, then let it
 * work; the host learns of a completed stop from chatws_server_stopped()
 * (the iteration that completes it still reports its events). Returns
 * PUMP_CLIENT once `client` (if >= 0) has data or EOF to read, PUMP_STOPPED
 * once the server has stopped, PUMP_FAILED on error or after timeout_ms. */
static int pump(chatws_server* s, int client, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    struct pollfd p[2] = {{chatws_server_fd(s), POLLIN, 0}, {client, POLLIN, 0}};
    int n;
    if (chatws_server_stopped(s)) return PUMP_STOPPED;
    n = poll(p, client >= 0 ? 2 : 1, 100);
    if (n < 0 && errno != EINTR) return PUMP_FAILED;
    if (client >= 0 && (p[1].revents & (POLLIN | POLLHUP))) return PUMP_CLIENT;
    if (p[0].revents & POLLIN) {
      int rc = chatws_server_poll(s, 0);
      fd_wakeups++;
      if (rc == CHATWS_ESTOPPED) return PUMP_STOPPED;
      if (rc < 0) {
        fprintf(stderr, "chatws_server_poll: %d %s\n", rc, chatws_last_error());
        return PUMP_FAILED;
      }
    }
  }
  fprintf(stderr, "pump: timed out\n");
  return PUMP_FAILED;
}

int main(void) {
  host_state st;
  chatws_options o;
  chatws_server* s = NULL;
  char head[2048];
  char* got = NULL;
  size_t len = 0;
  int client, wakeups_before;

  memset(&st, 0, sizeof st);
  chatws_options_init(&o);
  o.on_open = on_open;
  o.on_message = on_message;
  o.on_close = on_close;
  o.user = &st;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  REQUIRE(chatws_server_fd(s) >= 0);
  CHECK(chatws_server_poll(s, 0) >= 0); /* nothing to do: returns at once */

  /* connect() completes from the listen backlog; the request waits in the
   * socket until the server is pumped. */
  client = tcp_connect(chatws_server_port(s));
  REQUIRE(client >= 0);
  REQUIRE(ws_send_request(client, "/", NULL) == 0);
  REQUIRE(pump(s, client, TEST_TIMEOUT_MS) == PUMP_CLIENT);
  CHECK(fd_wakeups > 0);
  REQUIRE(ws_read_response(client, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  CHECK(ws_has_header(head, "Sec-WebSocket-Accept", WS_TEST_ACCEPT));
  CHECK_EQ_INT(st.opens, 1);

  /* Echo, driven by the fd alone. */
  wakeups_before = fd_wakeups;
  REQUIRE(ws_send_frame(client, 0x1, 1, "polled", 6) == 0);
  REQUIRE(pump(s, client, TEST_TIMEOUT_MS) == PUMP_CLIENT);
  CHECK(fd_wakeups > wakeups_before);
  CHECK_EQ_INT(ws_read_message(client, &got, &len), 0x1);
  CHECK(got && len == 6 && memcmp(got, "polled", 6) == 0);
  free(got);
  CHECK_EQ_INT(st.messages, 1);

  /* Graceful stop requested between polls: close 1001 reaches the client,
   * its reply completes the stop, and poll reports it. */
  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  REQUIRE(pump(s, client, TEST_TIMEOUT_MS) == PUMP_CLIENT);
  CHECK_EQ_INT(ws_read_close(client), CHATWS_CLOSE_GOING_AWAY);
  CHECK(ws_send_close(client, CHATWS_CLOSE_GOING_AWAY) == 0);
  /* The server closes TCP first (RFC 6455 7.1.1); it may or may not wait for
   * our FIN before it reports the stop. */
  CHECK(pump(s, client, TEST_TIMEOUT_MS) != PUMP_FAILED);
  CHECK(wait_eof(client, TEST_TIMEOUT_MS));
  close(client);
  CHECK_EQ_INT(pump(s, -1, TEST_TIMEOUT_MS), PUMP_STOPPED);
  CHECK(chatws_server_stopped(s));
  CHECK_EQ_INT(chatws_server_poll(s, 0), CHATWS_ESTOPPED);
  CHECK_EQ_INT(st.closes, 1);
  CHECK_EQ_INT(st.close_code, CHATWS_CLOSE_GOING_AWAY);

  chatws_server_destroy(s);
  CHECK_EQ_INT(st.closes, 1);
  return test_finish("test_c_poll");
}
