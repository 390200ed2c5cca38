/*
 * chatws_options.max_rooms through the C ABI: with a history file, the
 * rooms stored count; a post to a new room beyond the bound returns
 * CHATWS_EFULL, an upgrade to one gets HTTP 503, existing rooms go on.
 * Also the defaults of the 0.2.0 chat fields.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

#include <stddef.h>

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  char dir[] = "/tmp/chatws-c-rooms-XXXXXX";
  char path[256];
  char head[2048];
  int port, fd;

  chatws_options_init(&o);
  CHECK_EQ_INT(o.max_rooms, 0);
  CHECK_EQ_INT(o.max_idle_room_bytes, 0);
  CHECK(o.struct_size >= offsetof(chatws_options, max_idle_room_bytes) + sizeof(size_t));

  REQUIRE(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/history.db", dir);
  o.chat = 1;
  o.history_path = path;
  o.max_rooms = 2;
  o.max_idle_room_bytes = 1 << 20;
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);

  /* No loop runs yet: the calling thread may post. */
  CHECK_EQ_INT(chatws_chat_post(s, "a", "host", "in a"), CHATWS_OK);
  CHECK_EQ_INT(chatws_chat_post(s, "b", "host", "in b"), CHATWS_OK);
  CHECK_EQ_INT(chatws_chat_post(s, "c", "host", "in c"), CHATWS_EFULL);
  CHECK(strstr(chatws_last_error(), "too many rooms") != NULL);
  CHECK_EQ_INT(chatws_chat_post(s, "a", "host", "a again"), CHATWS_OK);

  loop_thread_start(&lt, s);
  port = chatws_server_port(s);
  /* A new room is refused at the upgrade ... */
  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(ws_send_request(fd, "/rooms/c", "json") == 0);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  CHECK(strncmp(head, "HTTP/1.1 503", 12) == 0);
  close(fd);
  /* ... a stored one is joined with its history. */
  fd = ws_connect(port, "/rooms/b", "json");
  CHECK(fd >= 0);
  if (fd >= 0) {
    char* data = NULL;
    size_t len = 0;
    CHECK(ws_read_message(fd, &data, &len) == 1);
    CHECK(data != NULL && strstr(data, "\"in b\"") != NULL);
    free(data);
    close(fd);
  }

  chatws_server_stop(s);
  CHECK(loop_thread_join(&lt, TEST_TIMEOUT_MS) == 1);
  chatws_server_destroy(s);
  {
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    unlink(path);
    rmdir(dir);
  }
  return test_finish("test_c_chat_rooms");
}
