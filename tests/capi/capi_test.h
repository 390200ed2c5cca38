/*
 * Shared helpers for the plain-C tests of the C ABI: checks, a bounded wait,
 * a thread running the loop, and a minimal raw-socket WebSocket client that
 * is independent of the library (it writes the handshake and the masked
 * frames itself, as RFC 6455 says, and checks the answers byte by byte).
 *
 * Header-only (static inline) because every C file in tests/capi is its own test
 * program. Loopback only.
 */
#ifndef CHATWS_CAPI_TEST_H
#define CHATWS_CAPI_TEST_H

#define _POSIX_C_SOURCE 200809L

#include <chatws.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ checks */

static int test_failures = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      test_failures++;                                                               \
    }                                                                                \
  } while (0)

/* For preconditions the rest of the test depends on: stop here. */
#define REQUIRE(cond)                                                                \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s (last error: %s)\n", __FILE__,      \
              __LINE__, #cond, chatws_last_error());                                 \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                           \
  do {                                                                               \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                  \
    if (check_a_ != check_b_) {                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld; last error: %s)\n", \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_, chatws_last_error()); \
      test_failures++;                                                               \
    }                                                                                \
  } while (0)

static inline int test_finish(const char* name) {
  if (test_failures) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

/* ------------------------------------------------------------------- time */

/* Every wait in these tests is bounded by this. */
#define TEST_TIMEOUT_MS 10000

static inline int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------- loop on a thread */

/* Runs chatws_server_run() on its own thread and lets the test wait, with a
 * deadline, for it to return. */
typedef struct loop_thread {
  chatws_server* server;
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int rc;
} loop_thread;

static inline void* loop_thread_main(void* p) {
  loop_thread* lt = (loop_thread*)p;
  int rc = chatws_server_run(lt->server);
  pthread_mutex_lock(&lt->mu);
  lt->rc = rc;
  lt->done = 1;
  pthread_cond_broadcast(&lt->cv);
  pthread_mutex_unlock(&lt->mu);
  return NULL;
}

static inline void loop_thread_start(loop_thread* lt, chatws_server* server) {
  memset(lt, 0, sizeof *lt);
  lt->server = server;
  pthread_mutex_init(&lt->mu, NULL);
  pthread_cond_init(&lt->cv, NULL);
  REQUIRE(pthread_create(&lt->tid, NULL, loop_thread_main, lt) == 0);
}

/* Waits up to timeout_ms for run() to return; joins and returns 1 if it did. */
static inline int loop_thread_join(loop_thread* lt, int timeout_ms) {
  struct timespec deadline;
  int done;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&lt->mu);
  while (!lt->done && pthread_cond_timedwait(&lt->cv, &lt->mu, &deadline) == 0) {
  }
  done = lt->done;
  pthread_mutex_unlock(&lt->mu);
  if (done) pthread_join(lt->tid, NULL);
  return done;
}

/* Runs chatws_server_poll() in a loop on its own thread until told to quit
 * (or the server stops), so that a test can stop polling with connections
 * still open and then destroy the server from another thread. */
typedef struct poll_thread {
  chatws_server* server;
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int quit;
  int ended;
  int rc; /* the first failure of chatws_server_poll(), or 0 */
} poll_thread;

static inline void* poll_thread_main(void* p) {
  poll_thread* pt = (poll_thread*)p;
  for (;;) {
    int quit, rc;
    pthread_mutex_lock(&pt->mu);
    quit = pt->quit;
    pthread_mutex_unlock(&pt->mu);
    if (quit) break;
    rc = chatws_server_poll(pt->server, 20);
    if (rc == CHATWS_ESTOPPED) break;
    if (rc < 0) {
      pthread_mutex_lock(&pt->mu);
      if (!pt->rc) pt->rc = rc;
      pthread_mutex_unlock(&pt->mu);
      break;
    }
  }
  pthread_mutex_lock(&pt->mu);
  pt->ended = 1;
  pthread_cond_broadcast(&pt->cv);
  pthread_mutex_unlock(&pt->mu);
  return NULL;
}

static inline void poll_thread_start(poll_thread* pt, chatws_server* server) {
  memset(pt, 0, sizeof *pt);
  pt->server = server;
  pthread_mutex_init(&pt->mu, NULL);
  pthread_cond_init(&pt->cv, NULL);
  REQUIRE(pthread_create(&pt->tid, NULL, poll_thread_main, pt) == 0);
}

/* Waits up to timeout_ms for the thread to end by itself (the server
 * stopped); joins and returns 1 if it did. */
static inline int poll_thread_wait_end(poll_thread* pt, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  int ended;
  pthread_mutex_lock(&pt->mu);
  while (!pt->ended && now_ms() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L; /* re-check the monotonic deadline regularly */
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&pt->cv, &pt->mu, &ts);
  }
  ended = pt->ended;
  pthread_mutex_unlock(&pt->mu);
  if (ended) pthread_join(pt->tid, NULL);
  return ended;
}

/* Stops polling (within one poll's timeout) and joins; returns pt->rc. */
static inline int poll_thread_quit(poll_thread* pt) {
  pthread_mutex_lock(&pt->mu);
  pt->quit = 1;
  pthread_mutex_unlock(&pt->mu);
  pthread_join(pt->tid, NULL);
  return pt->rc;
}

/* A counter that one thread bumps and another waits on with a deadline. */
typedef struct test_counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int value;
} test_counter;

static inline void counter_init(test_counter* c) {
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->value = 0;
}

static inline void counter_add(test_counter* c, int n) {
  pthread_mutex_lock(&c->mu);
  c->value += n;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static inline int counter_get(test_counter* c) {
  int v;
  pthread_mutex_lock(&c->mu);
  v = c->value;
  pthread_mutex_unlock(&c->mu);
  return v;
}

/* Waits until the counter reaches at least `target`; returns 1 if it did. */
static inline int counter_wait(test_counter* c, int target, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  int ok;
  pthread_mutex_lock(&c->mu);
  while (c->value < target) {
    struct timespec ts;
    int64_t left = end - now_ms();
    if (left <= 0) break;
    if (left > 50) left = 50; /* re-check the monotonic deadline regularly */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)left * 1000000L;
    while (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  ok = c->value >= target;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

/* ----------------------------------------------- raw WebSocket client */

/* RFC 6455 section 1.3's example key and its expected accept value. */
#define WS_TEST_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_TEST_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* The byte stream under the helpers below: the bare socket unless a test
 * sets these hooks (capi_tls.h runs every helper over TLS with them). */
typedef struct test_io {
  int (*connected)(int fd); /* after connect(): 0, or -1 to fail the connect */
  ssize_t (*send)(int fd, const void* data, size_t len);
  ssize_t (*recv)(int fd, void* data, size_t len);
} test_io;
static test_io test_io_hooks = {NULL, NULL, NULL};

static inline int tcp_connect(int port) {
  struct sockaddr_in addr;
  struct timeval tv = {TEST_TIMEOUT_MS / 1000, 0};
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Bounded blocking reads and writes: a hung server fails the test. */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      (test_io_hooks.connected && test_io_hooks.connected(fd) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

static inline int write_all(int fd, const void* data, size_t len) {
  const char* p = (const char*)data;
  while (len > 0) {
    ssize_t n = test_io_hooks.send ? test_io_hooks.send(fd, p, len) : send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline int read_all(int fd, void* data, size_t len) {
  char* p = (char*)data;
  while (len > 0) {
    ssize_t n = test_io_hooks.recv ? test_io_hooks.recv(fd, p, len) : recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline int ws_send_request(int fd, const char* path, const char* subprotocols) {
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " WS_TEST_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s%s%s"
                   "\r\n",
                   path, subprotocols ? "Sec-WebSocket-Protocol: " : "",
                   subprotocols ? subprotocols : "", subprotocols ? "\r\n" : "");
  if (n <= 0 || (size_t)n >= sizeof req) return -1;
  return write_all(fd, req, (size_t)n);
}

/* Reads the HTTP response head (byte by byte, so no frame bytes are eaten)
 * into buf, NUL-terminated. Returns 0 or -1. */
static inline int ws_read_response(int fd, char* buf, size_t cap) {
  size_t len = 0;
  while (len + 1 < cap) {
    if (read_all(fd, buf + len, 1) != 0) return -1;
    len++;
    buf[len] = '\0';
    if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) return 0;
  }
  return -1;
}

/* Case-insensitive search for a header line "name: value" in a response. */
static inline int ws_has_header(const char* head, const char* name, const char* value) {
  char line[256];
  const char* p = strstr(head, "\r\n");
  while (p && p[2] != '\r') {
    const char* start = p + 2;
    const char* end = strstr(start, "\r\n");
    size_t n;
    if (!end) return 0;
    n = (size_t)(end - start);
    if (n < sizeof line) {
      size_t nl = strlen(name), i;
      memcpy(line, start, n);
      line[n] = '\0';
      for (i = 0; i < nl && line[i]; i++) {
        char a = line[i], b = name[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
        if (a != b) break;
      }
      if (i == nl && line[nl] == ':') {
        const char* v = line + nl + 1;
        while (*v == ' ') v++;
        if (strcmp(v, value) == 0) return 1;
      }
    }
    p = end;
  }
  return 0;
}

/* Connects and completes the opening handshake; checks 101 and the accept
 * key. Returns the socket or -1. */
static inline int ws_connect(int port, const char* path, const char* subprotocols) {
  char head[2048];
  int fd = tcp_connect(port);
  if (fd < 0) return -1;
  if (ws_send_request(fd, path, subprotocols) != 0 ||
      ws_read_response(fd, head, sizeof head) != 0 ||
      strncmp(head, "HTTP/1.1 101", 12) != 0 ||
      !ws_has_header(head, "Sec-WebSocket-Accept", WS_TEST_ACCEPT)) {
    fprintf(stderr, "handshake failed; response:\n%s\n", head);
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends one masked frame (clients must mask, RFC 6455 section 5.3). */
static inline int ws_send_frame(int fd, int opcode, int fin, const void* data, size_t len) {
  static uint32_t seed = 0x9e3779b9u;
  unsigned char head[14];
  unsigned char mask[4];
  size_t h = 0, i;
  unsigned char* out;
  int rc;
  head[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
  if (len < 126) {
    head[h++] = (unsigned char)(0x80 | len);
  } else if (len <= 0xffff) {
    head[h++] = 0x80 | 126;
    head[h++] = (unsigned char)(len >> 8);
    head[h++] = (unsigned char)len;
  } else {
    head[h++] = 0x80 | 127;
    for (i = 0; i < 8; i++) head[h++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  }
  seed = seed * 1664525u + 1013904223u; /* any mask will do; vary it anyway */
  for (i = 0; i < 4; i++) mask[i] = (unsigned char)(seed >> (8 * i));
  memcpy(head + h, mask, 4);
  h += 4;
  out = (unsigned char*)malloc(h + len + 1);
  if (!out) return -1;
  memcpy(out, head, h);
  for (i = 0; i < len; i++) out[h + i] = ((const unsigned char*)data)[i] ^ mask[i % 4];
  rc = write_all(fd, out, h + len);
  free(out);
  return rc;
}

/* Reads one frame from the server (which must not mask). *data is malloc'ed
 * and NUL-terminated; the caller frees it. Returns 0 or -1. */
static inline int ws_read_frame(int fd, int* opcode, int* fin, char** data, size_t* len) {
  unsigned char h[2];
  uint64_t n;
  size_t i;
  *data = NULL;
  if (read_all(fd, h, 2) != 0) return -1;
  if (h[1] & 0x80) {
    fprintf(stderr, "server frame is masked\n");
    return -1;
  }
  *fin = (h[0] & 0x80) != 0;
  *opcode = h[0] & 0x0f;
  n = h[1] & 0x7f;
  if (n == 126) {
    unsigned char e[2];
    if (read_all(fd, e, 2) != 0) return -1;
    n = ((uint64_t)e[0] << 8) | e[1];
  } else if (n == 127) {
    unsigned char e[8];
    if (read_all(fd, e, 8) != 0) return -1;
    for (n = 0, i = 0; i < 8; i++) n = (n << 8) | e[i];
  }
  if (n > (64u << 20)) return -1;
  *data = (char*)malloc((size_t)n + 1);
  if (!*data) return -1;
  if (read_all(fd, *data, (size_t)n) != 0) {
    free(*data);
    *data = NULL;
    return -1;
  }
  (*data)[n] = '\0';
  *len = (size_t)n;
  return 0;
}

/* Reads frames until a data frame arrives (skipping pings the server may
 * send); returns its opcode, or -1. */
static inline int ws_read_message(int fd, char** data, size_t* len) {
  for (;;) {
    int opcode = 0, fin = 0;
    if (ws_read_frame(fd, &opcode, &fin, data, len) != 0) return -1;
    if (opcode == 0x9 || opcode == 0xA) { /* ping/pong: not what we wait for */
      free(*data);
      continue;
    }
    if (!fin) {
      fprintf(stderr, "unexpected fragmented message from the server\n");
      free(*data);
      return -1;
    }
    return opcode;
  }
}

/* Sends a close frame with `code`. */
static inline int ws_send_close(int fd, int code) {
  unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  return ws_send_frame(fd, 0x8, 1, p, 2);
}

/* Waits for the server's close frame; returns its code (1005 if it had no
 * body), or -1. */
static inline int ws_read_close(int fd) {
  for (;;) {
    int opcode = 0, fin = 0, code;
    char* data = NULL;
    size_t len = 0;
    if (ws_read_frame(fd, &opcode, &fin, &data, &len) != 0) return -1;
    if (opcode != 0x8) {
      free(data);
      continue;
    }
    code = len >= 2 ? (((unsigned char)data[0]) << 8) | (unsigned char)data[1] : 1005;
    free(data);
    return code;
  }
}

/* Returns 1 once the peer has closed the TCP connection (EOF) within the
 * timeout, discarding anything else that arrives. */
static inline int wait_eof(int fd, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  char buf[512];
  while (now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r > 0) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) return 1;
      if (n < 0 && errno != EINTR && errno != EAGAIN) return 1; /* reset counts as closed */
    }
  }
  return 0;
}

#endif /* CHATWS_CAPI_TEST_H */
