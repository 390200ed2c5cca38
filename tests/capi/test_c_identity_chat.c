/*
 * Identities in the chat (issue 12) through the C ABI: a connection whose
 * upgrade the hook bound to an identity posts under it whatever "user" it
 * sends, in the classic "json" format and in chatws.v1 (whose hello names
 * the identity); a connection without one posts under its own "user"; the
 * hook sees the room in the path and rejects /rooms/staff while / is
 * accepted.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

static void hook(chatws_server* s, const chatws_upgrade_request* r, chatws_upgrade_answer* a,
                 void* user) {
  (void)s;
  (void)user;
  if (strcmp(r->path, "/rooms/staff") == 0) {
    a->action = CHATWS_UPGRADE_REJECT;
    a->status = 403;
    a->body = "staff only";
    return;
  }
  a->identity = chatws_upgrade_query_param(r, "as"); /* NULL: none */
}

/* Reads messages until one contains `needle`; returns 1 if one did. */
static int read_until(int fd, const char* needle) {
  int i;
  for (i = 0; i < 20; i++) {
    char* data = NULL;
    size_t len = 0;
    int found;
    if (ws_read_message(fd, &data, &len) != 1) return 0;
    found = strstr(data, needle) != NULL;
    if (!found && getenv("CHATWS_TEST_VERBOSE")) fprintf(stderr, "skipped: %s\n", data);
    free(data);
    if (found) return 1;
  }
  return 0;
}

static void post(int fd, const char* json) { CHECK(ws_send_frame(fd, 1, 1, json, strlen(json)) == 0); }

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  char head[2048];
  int port, fd, v1, anon;

  chatws_options_init(&o);
  o.chat = 1;
  o.on_upgrade = hook;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);
  port = chatws_server_port(s);

  /* Room authorization: the hook sees the room in the path. */
  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(ws_send_request(fd, "/rooms/staff", "json") == 0);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 403 Forbidden", 22) == 0);
  close(fd);

  /* Classic format: the spoofed "user" is replaced by the identity. */
  fd = ws_connect(port, "/?as=alice", "json");
  REQUIRE(fd >= 0);
  CHECK(read_until(fd, "{\"msg\":"));
  post(fd, "{\"user\":\"mallory\",\"text\":\"classic hello\"}");
  CHECK(read_until(fd, "{\"user\":\"alice\",\"text\":\"classic hello\""));

  /* chatws.v1: the hello names the identity; the message carries it. */
  v1 = ws_connect(port, "/?as=bob", "chatws.v1");
  REQUIRE(v1 >= 0);
  CHECK(read_until(v1, "\"identity\":\"bob\""));
  post(v1, "{\"user\":\"alice\",\"text\":\"v1 hello\"}");
  CHECK(read_until(v1, "\"user\":\"bob\",\"text\":\"v1 hello\""));
  CHECK(read_until(fd, "{\"user\":\"bob\",\"text\":\"v1 hello\""));

  /* Without an identity the client's own name is used (the seed's way),
   * and a v1 hello has no identity field. */
  anon = ws_connect(port, "/", "chatws.v1");
  REQUIRE(anon >= 0);
  {
    char* data = NULL;
    size_t len = 0;
    CHECK(ws_read_message(anon, &data, &len) == 1);
    CHECK(data && strstr(data, "\"type\":\"hello\"") && !strstr(data, "\"identity\""));
    free(data);
  }
  post(anon, "{\"user\":\"carol\",\"text\":\"anon hello\"}");
  CHECK(read_until(anon, "\"user\":\"carol\",\"text\":\"anon hello\""));
  close(anon);
  close(v1);
  close(fd);

  chatws_server_stop(s);
  CHECK(loop_thread_join(&lt, TEST_TIMEOUT_MS) == 1);
  chatws_server_destroy(s);
  return test_finish("test_c_identity_chat");
}
