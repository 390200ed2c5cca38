/*
 * Flood control through the C ABI (issue 12): a chat client posting at full
 * speed gets exactly the bucket's allowance (burst, plus what refilled while
 * it sent) stored and broadcast, and an error frame "rate limited" for the
 * first message over it in each refill interval (its input is not read
 * until the next token is due, so the rest waits and gets its turn); a raw client over the limit is closed with 1008 (policy
 * CHATWS_RATE_CLOSE) or has the excess dropped (CHATWS_RATE_DROP); invalid
 * values are refused by create.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

#define FLOOD 30
#define BURST 5
#define RATE 50 /* per second: the flood's tail is handled in about half a second */

static void on_echo(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                    int is_binary, void* user) {
  (void)user;
  chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
}

static chatws_server* start(int chat, int rate, int burst, int policy, loop_thread* lt) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.chat = chat;
  o.on_message = on_echo;
  o.max_messages_per_second = rate;
  o.message_burst = burst;
  o.rate_limit_policy = policy;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(lt, s);
  return s;
}

static void stop(chatws_server* s, loop_thread* lt) {
  chatws_server_stop(s);
  CHECK(loop_thread_join(lt, TEST_TIMEOUT_MS) == 1);
  chatws_server_destroy(s);
}

/* chatws.v1: one "msg" frame per stored message, one error per refused one. */
static void test_chat_flood(void) {
  loop_thread lt;
  chatws_server* s = start(1, RATE, BURST, CHATWS_RATE_CLOSE, &lt);
  int fd = ws_connect(chatws_server_port(s), "/", "chatws.v1");
  int i, stored = 0, limited = 0, classic_error = 0;
  int64_t t0, elapsed;
  char* data = NULL;
  size_t len = 0;
  REQUIRE(fd >= 0);
  t0 = now_ms();
  for (i = 0; i < FLOOD; i++) {
    char msg[64];
    snprintf(msg, sizeof msg, "{\"user\":\"f\",\"text\":\"m%d\"}", i);
    CHECK(ws_send_frame(fd, 1, 1, msg, strlen(msg)) == 0);
  }
  /* Hello and presence frames come too: read until every message is answered. */
  for (i = 0; i < 4 * FLOOD && stored + limited < FLOOD; i++) {
    if (ws_read_message(fd, &data, &len) != 1) break;
    if (strstr(data, "\"type\":\"msg\"")) stored++;
    else if (strstr(data, "{\"type\":\"error\",\"error\":\"rate limited")) limited++;
    free(data);
  }
  elapsed = now_ms() - t0;
  CHECK_EQ_INT(stored + limited, FLOOD);
  /* The allowance: the burst, plus RATE per second that passed. */
  CHECK(stored >= BURST);
  CHECK(stored <= BURST + elapsed * RATE / 1000 + 1);
  /* One refusal per refill interval: each is followed by a wait for the
   * next token, so the message read after it is stored. */
  CHECK(limited <= stored - BURST + 1);
  close(fd);

  /* The classic format's error frame, as for its other rejections. */
  fd = ws_connect(chatws_server_port(s), "/", "json");
  REQUIRE(fd >= 0);
  for (i = 0; i < FLOOD; i++) {
    const char* msg = "{\"user\":\"f\",\"text\":\"c\"}";
    CHECK(ws_send_frame(fd, 1, 1, msg, strlen(msg)) == 0);
  }
  for (i = 0; i < 2 * FLOOD && !classic_error; i++) {
    if (ws_read_message(fd, &data, &len) != 1) break;
    classic_error = strncmp(data, "{\"error\":\"rate limited", 22) == 0;
    free(data);
  }
  CHECK(classic_error);
  close(fd);
  stop(s, &lt);
}

static void test_raw_flood(int policy) {
  loop_thread lt;
  chatws_server* s = start(0, 1, 3, policy, &lt);
  int fd = ws_connect(chatws_server_port(s), "/", NULL);
  int i, echoed = 0, code = 0;
  int64_t t0 = now_ms(), elapsed;
  REQUIRE(fd >= 0);
  for (i = 0; i < 10; i++) CHECK(ws_send_frame(fd, 1, 1, "x", 1) == 0);
  if (policy == CHATWS_RATE_DROP) ws_send_close(fd, 1000);
  for (;;) {
    int opcode = 0, fin = 0;
    char* data = NULL;
    size_t len = 0;
    if (ws_read_frame(fd, &opcode, &fin, &data, &len) != 0) break;
    if (opcode == 1) echoed++;
    if (opcode == 8) {
      code = len >= 2 ? (((unsigned char)data[0]) << 8) | (unsigned char)data[1] : 1005;
      free(data);
      break;
    }
    free(data);
  }
  elapsed = now_ms() - t0;
  CHECK(echoed >= 3 && echoed <= 3 + elapsed / 1000 + 1);
  CHECK_EQ_INT(code, policy == CHATWS_RATE_CLOSE ? CHATWS_CLOSE_POLICY : CHATWS_CLOSE_NORMAL);
  close(fd);
  stop(s, &lt);
}

/* max_handshakes_per_second_per_ip: a burst of upgrades from 127.0.0.1
 * gets its allowance, the rest 429 with Retry-After: 1. */
static void test_handshake_flood(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  int i, ok = 0, refused = 0, fds[10];
  int64_t t0 = now_ms();
  chatws_options_init(&o);
  o.max_handshakes_per_second_per_ip = 3;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);
  for (i = 0; i < 10; i++) {
    char head[2048];
    fds[i] = tcp_connect(chatws_server_port(s));
    REQUIRE(fds[i] >= 0);
    REQUIRE(ws_send_request(fds[i], "/", NULL) == 0);
    REQUIRE(ws_read_response(fds[i], head, sizeof head) == 0);
    if (strncmp(head, "HTTP/1.1 101", 12) == 0) {
      ok++;
    } else if (strncmp(head, "HTTP/1.1 429 Too Many Requests", 30) == 0 &&
               ws_has_header(head, "Retry-After", "1")) {
      refused++;
    } else {
      fprintf(stderr, "unexpected answer:\n%s\n", head);
    }
  }
  CHECK_EQ_INT(ok + refused, 10);
  CHECK(ok >= 3 && ok <= 3 + (now_ms() - t0) * 3 / 1000 + 1);
  for (i = 0; i < 10; i++) close(fds[i]);
  stop(s, &lt);
}

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.max_messages_per_second = -2;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);
  chatws_options_init(&o);
  o.message_burst = -1;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);
  chatws_options_init(&o);
  o.rate_limit_policy = 7;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_EINVAL);

  test_chat_flood();
  test_raw_flood(CHATWS_RATE_CLOSE);
  test_raw_flood(CHATWS_RATE_DROP);
  test_handshake_flood();
  return test_finish("test_c_flood");
}
