/*
 * A host that keeps the default SIGPIPE disposition (terminate) survives
 * clients that leave a busy room. When a peer has closed and then reset,
 * the next write to it must fail with EPIPE inside the library, never raise
 * SIGPIPE in the host (issue 19, item 0: chat_server died with status 141).
 *
 * Churn: a publisher posts into /rooms/lobby without pause while waves of
 * chatws.v1 members join, read their hello and close (some with an RST, some
 * with a FIN while data is still arriving), so the server keeps writing
 * messages and leave notices to sockets that are going away. If SIGPIPE were
 * raised this process would die with 141 and ctest would report it.
 *
 * test_c_sigpipe_tls.c is this test over TLS (SIGPIPE_OVER_TLS): the server
 * writes records through its own BIO, which must use MSG_NOSIGNAL too.
 */
#include "capi_test.h" /* first: it sets _POSIX_C_SOURCE */

#ifdef SIGPIPE_OVER_TLS
#include "capi_tls.h"
#endif

#include <signal.h>
#include <stdatomic.h>

#define WAVES 60
#define WAVE_SIZE 10

typedef struct publisher {
  int port;
  atomic_int stop; /* volatile is not enough between threads (TSan) */
  int sent;
  pthread_t thread;
} publisher;

static void* publish_main(void* p) {
  publisher* pub = (publisher*)p;
  int fd = ws_connect(pub->port, "/rooms/lobby", "chatws.v1");
  if (fd < 0) return NULL;
  /* Never read: the server's output to us is capped and the slow-consumer
   * policy may close us; then reconnect and go on. */
  while (!pub->stop) {
    static const char msg[] = "{\"user\":\"pub\",\"text\":\"tick tick tick tick\"}";
    if (ws_send_frame(fd, 1, 1, msg, sizeof msg - 1) != 0) {
      close(fd);
      fd = ws_connect(pub->port, "/rooms/lobby", "chatws.v1");
      if (fd < 0) return NULL;
      continue;
    }
    pub->sent++;
  }
  close(fd);
#ifdef SIGPIPE_OVER_TLS
  tls_thread_done();
#endif
  return NULL;
}

static void close_with_reset(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

int main(void) {
  chatws_options o;
  chatws_server* s = NULL;
  loop_thread lt;
  publisher pub;
  int wave, i, joined = 0;
  struct sigaction sa;

  /* The default disposition, explicitly: whatever the test runner set. */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &sa, NULL);

  chatws_options_init(&o);
  o.chat = 1;
#ifdef SIGPIPE_OVER_TLS
  char cert[300], key[300];
  REQUIRE(tls_test_init() == 0);
  o.tls_cert_file = tls_path(cert, sizeof cert, "a.pem");
  o.tls_key_file = tls_path(key, sizeof key, "a.key");
#endif
  REQUIRE(chatws_server_create(&o, &s) == CHATWS_OK);
  loop_thread_start(&lt, s);
#ifdef SIGPIPE_OVER_TLS
  /* The loop thread (started above) keeps SIGPIPE deliverable and deadly;
   * this thread and the publisher, OpenSSL clients writing with write(),
   * block it. */
  tls_client_threads_block_sigpipe();
  tls_use_hooks();
#endif

  memset(&pub, 0, sizeof pub);
  pub.port = chatws_server_port(s);
  REQUIRE(pthread_create(&pub.thread, NULL, publish_main, &pub) == 0);

  for (wave = 0; wave < WAVES; wave++) {
    int fds[WAVE_SIZE];
    for (i = 0; i < WAVE_SIZE; i++) {
      char* data = NULL;
      size_t len = 0;
      fds[i] = ws_connect(pub.port, "/rooms/lobby", "chatws.v1");
      REQUIRE(fds[i] >= 0);
      /* The hello: the member is in the room and receiving. */
      REQUIRE(ws_read_message(fds[i], &data, &len) == 1);
      CHECK(len > 0 && strstr(data, "\"type\":\"hello\"") != NULL);
      free(data);
      joined++;
    }
    for (i = 0; i < WAVE_SIZE; i++) {
      if (i % 2) {
        close_with_reset(fds[i]);
      } else {
        close(fds[i]); /* FIN; unread data makes the kernel answer with RST */
      }
    }
  }

  pub.stop = 1;
  pthread_join(pub.thread, NULL);
  CHECK(pub.sent > 0);
  CHECK_EQ_INT(joined, WAVES * WAVE_SIZE);

  /* Still serving after the churn. */
  {
    int fd = ws_connect(pub.port, "/rooms/lobby", "chatws.v1");
    char* data = NULL;
    size_t len = 0;
    CHECK(fd >= 0);
    if (fd >= 0) {
      CHECK(ws_read_message(fd, &data, &len) == 1);
      free(data);
      close(fd);
    }
  }

  chatws_server_stop(s);
  CHECK(loop_thread_join(&lt, TEST_TIMEOUT_MS) == 1);
  chatws_server_destroy(s);
#ifdef SIGPIPE_OVER_TLS
  tls_test_cleanup();
  return test_finish("test_c_sigpipe_tls");
#else
  return test_finish("test_c_sigpipe");
#endif
}
