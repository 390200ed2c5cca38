/*
 * Limits on partial input through the C ABI (issue 19, item 13):
 * - max_buffered_input: a frame that would take the partial messages held by
 *   all connections over the budget closes its connection with 1013, before
 *   any of it is stored; the budget comes back when a message completes.
 * - chat connections are bounded by the longest valid chat message, not by
 *   max_message_size: a larger frame header is answered 1009 at once.
 */
#include "capi_test.h"

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  (void)user;
  chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
}

/* The header of a masked frame of `len` bytes (zero mask: the
 * payload goes as is), followed by `sent` payload bytes. */
static int send_partial(int fd, int opcode, uint64_t len, size_t sent) {
  unsigned char head[14];
  size_t h = 0, i;
  char* payload;
  int rc;
  head[h++] = (unsigned char)(0x80 | opcode);
  head[h++] = 0x80 | 127;
  for (i = 0; i < 8; i++) head[h++] = (unsigned char)(len >> (56 - 8 * i));
  for (i = 0; i < 4; i++) head[h++] = 0;
  if (write_all(fd, head, h) != 0) return -1;
  payload = (char*)malloc(sent + 1);
  if (!payload) return -1;
  memset(payload, 'a', sent);
  rc = write_all(fd, payload, sent);
  free(payload);
  return rc;
}

/* A round trip through the loop: everything sent on other sockets before
 * it has been read (epoll reports sockets in the order they became ready). */
static void echo_round_trip(int fd) {
  char* data = NULL;
  size_t len = 0;
  CHECK_EQ_INT(ws_send_frame(fd, 1, 1, "sync", 4), 0);
  CHECK_EQ_INT(ws_read_message(fd, &data, &len), 1);
  CHECK(data && len == 4 && memcmp(data, "sync", 4) == 0);
  free(data);
}

static void test_budget(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  int holder, refused, sync, late;
  char* data = NULL;
  size_t len = 0;

  chatws_options_init(&o);
  o.on_message = on_message;
  o.max_message_size = 1 << 20;
  o.max_buffered_input = 128 * 1024;
  o.drain_timeout_ms = 300;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);

  sync = ws_connect(chatws_server_port(s), "/", NULL);
  holder = ws_connect(chatws_server_port(s), "/", NULL);
  refused = ws_connect(chatws_server_port(s), "/", NULL);
  REQUIRE(sync >= 0 && holder >= 0 && refused >= 0);
  /* 100 KiB announced and 1000 bytes sent: held, charged 100 KiB. */
  CHECK_EQ_INT(send_partial(holder, 2, 100 * 1024, 1000), 0);
  echo_round_trip(sync);
  /* Another 100 KiB would make 200 of 128 KiB: 1013. */
  CHECK_EQ_INT(send_partial(refused, 2, 100 * 1024, 1000), 0);
  CHECK_EQ_INT(ws_read_close(refused), CHATWS_CLOSE_TRY_AGAIN);
  /* The holder finishes: its message is echoed whole... */
  {
    char* rest = (char*)malloc(100 * 1024 - 1000);
    REQUIRE(rest != NULL);
    memset(rest, 'a', 100 * 1024 - 1000);
    CHECK_EQ_INT(write_all(holder, rest, 100 * 1024 - 1000), 0);
    free(rest);
  }
  CHECK_EQ_INT(ws_read_message(holder, &data, &len), 2);
  CHECK(len == 100 * 1024);
  free(data);
  /* ...and its share is back: another connection may hold 100 KiB now. */
  late = ws_connect(chatws_server_port(s), "/", NULL);
  REQUIRE(late >= 0);
  CHECK_EQ_INT(send_partial(late, 2, 100 * 1024, 1000), 0);
  echo_round_trip(sync);
  CHECK_EQ_INT(chatws_connection_count(s), 3); /* sync, holder, late: not closed */
  close(late);
  close(holder);
  close(refused);
  close(sync);
  chatws_server_stop(s);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  chatws_server_destroy(s);
}

static void test_chat_bound(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  int member, plain;
  char* data = NULL;
  size_t len = 0;

  chatws_options_init(&o);
  o.chat = 1;
  o.on_message = on_message; /* non-chat connections */
  o.drain_timeout_ms = 300;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);
  member = ws_connect(chatws_server_port(s), "/rooms/lobby", "chatws.v1");
  plain = ws_connect(chatws_server_port(s), "/other", NULL);
  REQUIRE(member >= 0 && plain >= 0);
  CHECK_EQ_INT(ws_read_message(member, &data, &len), 1); /* hello */
  free(data);
  /* 1 MiB announced on a chat connection: far over any chat message. */
  CHECK_EQ_INT(send_partial(member, 1, 1 << 20, 0), 0);
  CHECK_EQ_INT(ws_read_close(member), CHATWS_CLOSE_TOO_BIG);
  /* A connection of no chat subprotocol keeps max_message_size (16 MiB). */
  CHECK_EQ_INT(send_partial(plain, 2, 200 * 1024, 200 * 1024), 0);
  CHECK_EQ_INT(ws_read_message(plain, &data, &len), 2);
  CHECK(len == 200 * 1024);
  free(data);
  close(member);
  close(plain);
  chatws_server_stop(s);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  chatws_server_destroy(s);
}

int main(void) {
  test_budget();
  test_chat_bound();
  return test_finish("test_c_input_limits");
}
