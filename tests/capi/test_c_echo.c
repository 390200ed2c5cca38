/*
 * End to end over 127.0.0.1: a C host echoes every message back; a raw-socket
 * client written here (not the library) does the handshake and sends masked
 * frames. Covers echo of text/binary/large/fragmented messages, ping/pong,
 * sends and broadcasts from a non-loop thread, stale ids and argument checks
 * inside callbacks, invalid UTF-8 and the close handshake.
 */
#include "capi_test.h"

#define MAX_CONNS 8

typedef struct host_state {
  test_counter opens;
  test_counter closes;
  chatws_conn_id ids[MAX_CONNS]; /* in order of on_open */
  int close_codes[MAX_CONNS];    /* in order of on_close */
  chatws_conn_id closed[MAX_CONNS];
} host_state;

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  host_state* st = (host_state*)user;
  int n = counter_get(&st->opens);
  (void)s;
  if (n < MAX_CONNS) st->ids[n] = conn;
  counter_add(&st->opens, 1);
}

static void on_close(chatws_server* s, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  host_state* st = (host_state*)user;
  int n = counter_get(&st->closes);
  (void)s;
  (void)reason;
  if (n < MAX_CONNS) {
    st->close_codes[n] = code;
    st->closed[n] = conn;
  }
  counter_add(&st->closes, 1);
}

static void reply(chatws_server* s, chatws_conn_id conn, const char* text) {
  chatws_send(s, conn, text, strlen(text), CHATWS_TEXT);
}

/* "cmd:stale": loop-thread calls with the id of a connection that closed.
 * The results go back to the client, which checks them on the main thread
 * (no test state is shared across threads without a lock). */
static void cmd_stale(chatws_server* s, chatws_conn_id conn, host_state* st) {
  char out[256];
  chatws_conn_info info;
  chatws_conn_id stale = st->closed[0];
  int marker = 0;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  snprintf(out, sizeof out, "%d %d %d %d %d %s", chatws_send(s, stale, "x", 1, CHATWS_TEXT),
           chatws_close(s, stale, CHATWS_CLOSE_NORMAL, NULL),
           chatws_conn_set_user_data(s, stale, &marker),
           chatws_conn_user_data(s, stale) == NULL, chatws_conn_get_info(s, stale, &info),
           stale == conn ? "same-id" : "distinct-id");
  reply(s, conn, out);
}

/* "cmd:args": invalid arguments on a live connection, from the loop thread. */
static void cmd_args(chatws_server* s, chatws_conn_id conn) {
  char out[512], reason[200];
  chatws_conn_info info;
  int marker = 0, n;
  memset(reason, 'r', sizeof reason - 1);
  reason[sizeof reason - 1] = '\0'; /* 199 bytes: over the 123-byte limit */
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  n = snprintf(out, sizeof out, "close:%d,%d,%d,%d,%d send:%d,%d ",
               chatws_close(s, conn, 999, NULL), chatws_close(s, conn, 1005, NULL),
               chatws_close(s, conn, 1006, NULL), chatws_close(s, conn, 5000, NULL),
               chatws_close(s, conn, CHATWS_CLOSE_NORMAL, reason),
               chatws_send(s, conn, "\xc3\x28", 2, CHATWS_TEXT),
               chatws_send(s, conn, "x", 1, 3));
  /* User data round trip and connection info on a live connection. */
  chatws_conn_set_user_data(s, conn, &marker);
  if (chatws_conn_get_info(s, conn, &info) == CHATWS_OK) {
    snprintf(out + n, sizeof out - (size_t)n, "ud:%d info:%s,%s,%s,%d",
             chatws_conn_user_data(s, conn) == &marker, info.remote_address, info.path,
             info.subprotocol, info.remote_port > 0);
  } else {
    snprintf(out + n, sizeof out - (size_t)n, "info failed");
  }
  chatws_conn_set_user_data(s, conn, NULL);
  reply(s, conn, out);
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  host_state* st = (host_state*)user;
  if (!is_binary && len == 9 && memcmp(data, "cmd:stale", 9) == 0) {
    cmd_stale(s, conn, st);
  } else if (!is_binary && len == 8 && memcmp(data, "cmd:args", 8) == 0) {
    cmd_args(s, conn);
  } else {
    int rc = chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
    if (rc < 0) reply(s, conn, "echo failed");
  }
}

/* Sends `data` as one message and expects it back unchanged. */
static void expect_echo(int fd, int opcode, const char* data, size_t len) {
  char* got = NULL;
  size_t got_len = 0;
  int op;
  CHECK(ws_send_frame(fd, opcode, 1, data, len) == 0);
  op = ws_read_message(fd, &got, &got_len);
  CHECK_EQ_INT(op, opcode);
  CHECK_EQ_INT(got_len, len);
  CHECK(got != NULL && got_len == len && memcmp(got, data, len) == 0);
  free(got);
}

/* Reads one text message and compares it with `expected`. */
static void expect_text(int fd, const char* expected) {
  char* got = NULL;
  size_t len = 0;
  int op = ws_read_message(fd, &got, &len);
  CHECK_EQ_INT(op, 0x1);
  if (got && strcmp(got, expected) != 0) {
    fprintf(stderr, "expected \"%s\"\n     got \"%s\"\n", expected, got);
    test_failures++;
  }
  free(got);
}

static void test_echo_variants(int fd) {
  char bin[300], *big;
  size_t i, big_len = 70000; /* 64-bit length encoding */
  char* got = NULL;
  size_t got_len = 0;
  int op = 0, fin = 0;

  expect_echo(fd, 0x1, "hello", 5);
  expect_echo(fd, 0x1, "", 0);
  expect_echo(fd, 0x1, "h\xc3\xa9llo \xe2\x82\xac", 11); /* UTF-8 */
  for (i = 0; i < sizeof bin; i++) bin[i] = (char)(i & 0xff); /* 16-bit length, every byte */
  expect_echo(fd, 0x2, bin, sizeof bin);
  big = (char*)malloc(big_len);
  REQUIRE(big != NULL);
  for (i = 0; i < big_len; i++) big[i] = (char)('a' + i % 26);
  expect_echo(fd, 0x1, big, big_len);
  free(big);

  /* A fragmented message is delivered (and echoed) whole. */
  CHECK(ws_send_frame(fd, 0x1, 0, "frag", 4) == 0);
  CHECK(ws_send_frame(fd, 0x9, 1, "mid", 3) == 0); /* control frame between fragments */
  CHECK(ws_send_frame(fd, 0x0, 1, "mented", 6) == 0);
  CHECK(ws_read_frame(fd, &op, &fin, &got, &got_len) == 0);
  CHECK_EQ_INT(op, 0xA); /* the pong comes first: the ping was answered at once */
  CHECK(got && strcmp(got, "mid") == 0);
  free(got);
  expect_text(fd, "fragmented");
}

int main(void) {
  host_state st;
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  char head[2048];
  int a, b, c, port;

  memset(&st, 0, sizeof st);
  counter_init(&st.opens);
  counter_init(&st.closes);
  chatws_options_init(&o);
  o.subprotocols = "json,chatws.test";
  o.on_open = on_open;
  o.on_message = on_message;
  o.on_close = on_close;
  o.user = &st;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  port = chatws_server_port(s);
  loop_thread_start(&lt, s);

  /* Client A negotiates a subprotocol the server lists second. */
  a = tcp_connect(port);
  REQUIRE(a >= 0);
  REQUIRE(ws_send_request(a, "/echo", "chatws.test, other") == 0);
  REQUIRE(ws_read_response(a, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  CHECK(ws_has_header(head, "Sec-WebSocket-Accept", WS_TEST_ACCEPT));
  CHECK(ws_has_header(head, "Sec-WebSocket-Protocol", "chatws.test"));
  REQUIRE(counter_wait(&st.opens, 1, TEST_TIMEOUT_MS));

  b = ws_connect(port, "/", NULL);
  REQUIRE(b >= 0);
  REQUIRE(counter_wait(&st.opens, 2, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(chatws_connection_count(s), 2);
  CHECK(st.ids[0] != 0 && st.ids[1] != 0 && st.ids[0] != st.ids[1]);

  test_echo_variants(a);

  /* From this (non-loop) thread: queued, then delivered. */
  CHECK_EQ_INT(chatws_send(s, st.ids[0], "from main", 9, CHATWS_TEXT), CHATWS_OK);
  expect_text(a, "from main");
  CHECK_EQ_INT(chatws_broadcast(s, "to all", 6, CHATWS_TEXT, 0), CHATWS_OK);
  expect_text(a, "to all");
  expect_text(b, "to all");
  CHECK_EQ_INT(chatws_broadcast(s, "not to a", 8, CHATWS_TEXT, st.ids[0]), CHATWS_OK);
  expect_text(b, "not to a");
  CHECK_EQ_INT(chatws_send(s, st.ids[0], "x", 1, 3), CHATWS_EINVAL); /* bad opcode */

  /* B closes cleanly: the server echoes the code, then closes TCP. */
  CHECK(ws_send_close(b, CHATWS_CLOSE_NORMAL) == 0);
  CHECK_EQ_INT(ws_read_close(b), CHATWS_CLOSE_NORMAL);
  CHECK(wait_eof(b, TEST_TIMEOUT_MS));
  close(b);
  REQUIRE(counter_wait(&st.closes, 1, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(st.close_codes[0], CHATWS_CLOSE_NORMAL);
  CHECK(st.closed[0] == st.ids[1]);

  /* B's id is stale now: every call with it says so, from inside a callback. */
  CHECK(ws_send_frame(a, 0x1, 1, "cmd:stale", 9) == 0);
  expect_text(a, "-3 -3 -3 1 -3 distinct-id");
  CHECK(ws_send_frame(a, 0x1, 1, "cmd:args", 8) == 0);
  expect_text(a, "close:-1,-1,-1,-1,-1 send:-1,-1 ud:1 info:127.0.0.1,/echo,chatws.test,1");
  expect_echo(a, 0x1, "still open", 10); /* none of that closed A */

  /* Invalid UTF-8 in a text message: close 1007, nothing delivered. */
  c = ws_connect(port, "/", NULL);
  REQUIRE(c >= 0);
  REQUIRE(counter_wait(&st.opens, 3, TEST_TIMEOUT_MS));
  CHECK(ws_send_frame(c, 0x1, 1, "\xc3\x28", 2) == 0);
  CHECK_EQ_INT(ws_read_close(c), CHATWS_CLOSE_INVALID_DATA);
  CHECK(ws_send_close(c, CHATWS_CLOSE_INVALID_DATA) == 0);
  CHECK(wait_eof(c, TEST_TIMEOUT_MS));
  close(c);
  REQUIRE(counter_wait(&st.closes, 2, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(st.close_codes[1], CHATWS_CLOSE_INVALID_DATA);

  /* A closes with a code of its own. */
  CHECK(ws_send_close(a, 4000) == 0);
  CHECK_EQ_INT(ws_read_close(a), 4000);
  CHECK(wait_eof(a, TEST_TIMEOUT_MS));
  close(a);
  REQUIRE(counter_wait(&st.closes, 3, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(st.close_codes[2], 4000);

  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  CHECK_EQ_INT(lt.rc, CHATWS_OK);
  CHECK_EQ_INT(chatws_connection_count(s), 0);
  chatws_server_destroy(s);
  CHECK_EQ_INT(counter_get(&st.opens), 3);
  CHECK_EQ_INT(counter_get(&st.closes), 3);
  return test_finish("test_c_echo");
}
