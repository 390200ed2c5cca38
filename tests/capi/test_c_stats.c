/*
 * chatws_server_get_stats() and the metrics listener from C, in chat mode:
 * M members of one room, N chat messages from one of them; the counters
 * read from the test's thread while another runs the loop; a struct_size
 * from an older header is honoured (nothing written past it); the metrics
 * port serves the same numbers.
 */
#include "capi_test.h"

#define M 3
#define N 20

/* Polls the snapshot (bounded) until the chat's messages are all committed
 * and delivered: the loop publishes at the end of its iteration. */
static int wait_messages(chatws_server* s, chatws_stats* st) {
  int64_t deadline = now_ms() + TEST_TIMEOUT_MS;
  for (;;) {
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    if (chatws_server_get_stats(s, st) != CHATWS_OK) return 0;
    if (st->history_messages == N && st->chat_deliveries == (uint64_t)N * M) return 1;
    if (now_ms() > deadline) return 0;
    {
      struct timespec ms = {0, 1000000L};
      nanosleep(&ms, NULL); /* polling a condition, bounded */
    }
  }
}

static void http_get(int port, const char* path, char* out, size_t cap) {
  int fd = tcp_connect(port);
  size_t got = 0;
  char req[256];
  out[0] = '\0';
  if (fd < 0) return;
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  if (write_all(fd, req, strlen(req)) == 0) {
    struct pollfd p = {fd, POLLIN, 0};
    while (got + 1 < cap && poll(&p, 1, TEST_TIMEOUT_MS) == 1) {
      ssize_t n = read(fd, out + got, cap - 1 - got);
      if (n <= 0) break;
      got += (size_t)n;
    }
  }
  out[got] = '\0';
  close(fd);
}

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_stats st;
  loop_thread lt;
  int fds[M], i, port, mport;
  static char page[1 << 16];
  char* data;
  size_t len;

  chatws_options_init(&o);
  o.chat = 1;
  o.metrics_host = "127.0.0.1"; /* port 0: a free one */
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  port = chatws_server_port(s);
  mport = chatws_server_metrics_port(s);
  CHECK(mport > 0 && mport != port);

  /* Arguments. */
  memset(&st, 0, sizeof st);
  CHECK_EQ_INT(chatws_server_get_stats(NULL, &st), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_server_get_stats(s, NULL), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_server_get_stats(s, &st), CHATWS_EINVAL); /* struct_size 0 */
  CHECK_EQ_INT(chatws_server_metrics_port(NULL), CHATWS_EINVAL);

  loop_thread_start(&lt, s);
  for (i = 0; i < M; i++) {
    fds[i] = ws_connect(port, "/rooms/lobby", "json");
    REQUIRE(fds[i] >= 0);
    REQUIRE(ws_read_message(fds[i], &data, &len) == 1); /* the history */
    free(data);
  }
  for (i = 0; i < N; i++) {
    const char* msg = "{\"user\":\"ann\",\"text\":\"hello\"}";
    REQUIRE(ws_send_frame(fds[0], CHATWS_TEXT, 1, msg, strlen(msg)) == 0);
  }
  REQUIRE(wait_messages(s, &st));
  CHECK(strcmp(st.version, chatws_version()) == 0);
  CHECK(st.running == 1 && st.accepting == 1);
  CHECK_EQ_INT((int)st.websocket_connections, M);
  CHECK_EQ_INT((int)st.handshakes_accepted, M);
  CHECK_EQ_INT((int)st.messages_received, N);
  CHECK_EQ_INT((int)st.history_messages, N);
  CHECK(st.history_commits >= 1 && st.history_commits <= N);
  CHECK_EQ_INT((int)st.history_commit.count, 0); /* in memory: no store to time */
  CHECK_EQ_INT((int)st.chat_deliveries, N * M);
  CHECK(st.messages_sent >= M); /* at least a snapshot each (batched) */
  CHECK_EQ_INT(st.chat_enabled, 1);
  CHECK_EQ_INT(st.history_ok, 1);
  CHECK_EQ_INT((int)st.chat_rooms, 1);
  CHECK_EQ_INT((int)st.chat_members, M);
  CHECK_EQ_INT((int)st.handshakes_rejected[CHATWS_REJECT_HOOK], 0);
  CHECK(st.loop_iterations > 0 && st.loop_iteration.count == st.loop_iterations);

  /* A caller built against a header whose struct ended at `accepting`. */
  {
    unsigned char raw[sizeof(chatws_stats)];
    chatws_stats* old = (chatws_stats*)(void*)raw;
    size_t cut = offsetof(chatws_stats, accepting) + sizeof(int);
    memset(raw, 0xAB, sizeof raw);
    old->struct_size = cut;
    CHECK_EQ_INT(chatws_server_get_stats(s, old), CHATWS_OK);
    CHECK(old->struct_size == cut);
    CHECK(old->running == 1);
    CHECK(raw[cut] == 0xAB && raw[sizeof raw - 1] == 0xAB);
  }

  /* A room name the chat refuses: a "handler" refusal. */
  {
    char head[2048];
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    REQUIRE(ws_send_request(fd, "/rooms/bad%00name", "json") == 0);
    REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
    CHECK(strncmp(head, "HTTP/1.1 4", 10) == 0);
    close(fd);
  }

  http_get(mport, "/metrics", page, sizeof page);
  CHECK(strncmp(page, "HTTP/1.1 200", 12) == 0);
  CHECK(strstr(page, "\nchatws_chat_members 3\n") != NULL);
  CHECK(strstr(page, "\nchatws_chat_rooms 1\n") != NULL);
  CHECK(strstr(page, "\nchatws_messages_received_total 20\n") != NULL);
  CHECK(strstr(page, "\nchatws_handshakes_rejected_total{reason=\"handler\"} 1\n") != NULL);
  http_get(mport, "/readyz", page, sizeof page);
  CHECK(strncmp(page, "HTTP/1.1 200", 12) == 0);

  for (i = 0; i < M; i++) close(fds[i]);
  CHECK_EQ_INT(chatws_server_stop(s), CHATWS_OK);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  CHECK_EQ_INT(chatws_server_get_stats(s, &st), CHATWS_OK);
  CHECK_EQ_INT(st.running, 0);
  CHECK_EQ_INT((int)st.websocket_connections, 0);
  CHECK_EQ_INT(chatws_server_metrics_port(s), CHATWS_ESTATE); /* closed with the stop */
  chatws_server_destroy(s);

  /* Off by default. */
  chatws_options_init(&o);
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  CHECK_EQ_INT(chatws_server_metrics_port(s), CHATWS_ESTATE);
  chatws_server_destroy(s);
  return test_finish("test_c_stats");
}
