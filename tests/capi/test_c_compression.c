/*
 * permessage-deflate through the C ABI: the options' validation, the
 * negotiated response header of each mode, a compressed message in (the RFC
 * 7692 "Hello" bytes) echoed back, the threshold, and the stats counters.
 * A raw-socket client written here does the handshake and the frames.
 */
#include "capi_test.h"

static void on_echo(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                    int is_binary, void* user) {
  (void)user;
  chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
}

static int create(chatws_options* o, chatws_server** s) {
  o->on_message = on_echo;
  return chatws_server_create(o, s);
}

static void test_bad_options(void) {
  struct { int compression, window_bits, mem_level, always; } bad[] = {
      {2, 0, 0, 0}, {-2, 0, 0, 0}, {0, 8, 0, 0}, {0, 16, 0, 0}, {0, -1, 0, 0},
      {0, 0, 10, 0}, {0, 0, -1, 0}, {0, 0, 0, 2},
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    chatws_options o;
    chatws_server* s = NULL;
    chatws_options_init(&o);
    o.compression = bad[i].compression;
    o.compression_window_bits = bad[i].window_bits;
    o.compression_mem_level = bad[i].mem_level;
    o.compression_always = bad[i].always;
    CHECK_EQ_INT(create(&o, &s), CHATWS_EINVAL);
    CHECK(s == NULL);
    CHECK(strstr(chatws_last_error(), "compression") != NULL);
  }
}

/* Handshake offering `offer`; returns the socket, the head in `head`. */
static int handshake(int port, const char* offer, char* head, size_t cap) {
  char req[512];
  int fd = tcp_connect(port);
  int n = snprintf(req, sizeof req,
                   "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_TEST_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: %s\r\n\r\n",
                   offer);
  if (fd < 0) return -1;
  if (write_all(fd, req, (size_t)n) != 0 || ws_read_response(fd, head, cap) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A masked frame with RSV1 set. */
static int send_compressed(int fd, int opcode, const unsigned char* z, size_t len) {
  unsigned char f[256];
  const unsigned char mask[4] = {1, 2, 3, 4};
  size_t i;
  if (len > 125) return -1;
  f[0] = (unsigned char)(0x80 | 0x40 | opcode);
  f[1] = (unsigned char)(0x80 | len);
  memcpy(f + 2, mask, 4);
  for (i = 0; i < len; i++) f[6 + i] = z[i] ^ mask[i % 4];
  return write_all(fd, f, 6 + len);
}

static void test_mode(int mode, const char* want_header) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  char head[2048];
  /* RFC 7692 7.2.3.1: "Hello" deflated. */
  static const unsigned char hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  int fd, op, fin;
  char* data = NULL;
  size_t len = 0;
  chatws_options_init(&o);
  o.compression = mode;
  REQUIRE(create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);
  fd = handshake(chatws_server_port(s), "permessage-deflate; client_max_window_bits", head,
                 sizeof head);
  REQUIRE(fd >= 0);
  CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
  if (want_header) {
    CHECK(ws_has_header(head, "Sec-WebSocket-Extensions", want_header));
    CHECK(send_compressed(fd, 1, hello, sizeof hello) == 0);
    /* Below the 128-byte threshold: the echo goes out plain (RSV1 clear,
     * which ws_read_frame would not see: check the raw opcode byte). */
    CHECK(ws_read_frame(fd, &op, &fin, &data, &len) == 0);
    CHECK_EQ_INT(op, 1);
    CHECK(len == 5 && data && memcmp(data, "Hello", 5) == 0);
    free(data);
  } else {
    CHECK(strstr(head, "Sec-WebSocket-Extensions") == NULL);
    /* Not negotiated: RSV1 is a protocol error. */
    CHECK(send_compressed(fd, 1, hello, sizeof hello) == 0);
    CHECK_EQ_INT(ws_read_close(fd), 1002);
  }
  close(fd);
  chatws_server_stop(s);
  REQUIRE(loop_thread_join(&lt, TEST_TIMEOUT_MS));
  {
    chatws_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_EQ_INT(chatws_server_get_stats(s, &st), CHATWS_OK);
    if (want_header) {
      CHECK(st.inflate_bytes_in == sizeof hello && st.inflate_bytes_out == 5);
      CHECK(st.deflate_calls == 0); /* under the threshold */
    }
  }
  chatws_server_destroy(s);
}

int main(void) {
  test_bad_options();
  test_mode(CHATWS_COMPRESSION_SHARED,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits=15");
  test_mode(CHATWS_COMPRESSION_DEDICATED, "permessage-deflate; client_max_window_bits=15");
  test_mode(CHATWS_COMPRESSION_OFF, NULL);
  return test_finish("test_c_compression");
}
