/*
 * Threads taking turns at chatws_server_poll() (issue 19, item 4), run under
 * TSan by scripts/sanitize.sh like every C ABI test:
 * - turns handed over with a baton: each poller, between its polls, makes
 *   loop-thread calls (it is the owner) and sends directly, while a third
 *   thread's sends are queued; every message arrives once, in each sender's
 *   order.
 * - overlapping turns: while one thread is inside poll (a callback holds
 *   it), another thread's poll returns CHATWS_ESTATE, its loop-thread calls
 *   CHATWS_ETHREAD, its send is queued, its destroy does nothing.
 * - no baton: two threads poll and send as fast as they can; their polls
 *   collide (CHATWS_ESTATE, nothing done) and nothing else goes wrong.
 */
#include "capi_test.h"

typedef struct shared {
  chatws_server* s;
  chatws_conn_id conn;
  int marker; /* the connection's user data points here */
  test_counter opens, in_callback, release;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int turn;     /* baton: whose turn (0 or 1), -1: done */
  int done;     /* the reader has everything */
  int failures; /* unexpected results seen by the threads */
  int collisions;
} shared;

static shared g;

static void fail(const char* what, int rc) {
  pthread_mutex_lock(&g.mu);
  g.failures++;
  pthread_mutex_unlock(&g.mu);
  fprintf(stderr, "%s: %d (%s)\n", what, rc, chatws_last_error());
}

static void on_open(chatws_server* s, chatws_conn_id conn, void* user) {
  (void)user;
  if (chatws_conn_set_user_data(s, conn, &g.marker) != CHATWS_OK) fail("set_user_data", -1);
  pthread_mutex_lock(&g.mu);
  g.conn = conn;
  pthread_mutex_unlock(&g.mu);
  counter_add(&g.opens, 1);
}

static void on_message(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  (void)s;
  (void)conn;
  (void)is_binary;
  (void)user;
  if (len == 4 && memcmp(data, "hold", 4) == 0) {
    /* Keep this thread inside poll until the other thread has tried. */
    counter_add(&g.in_callback, 1);
    if (!counter_wait(&g.release, counter_get(&g.in_callback), TEST_TIMEOUT_MS)) fail("hold", -1);
  }
}

static int send_text(const char* prefix, int i) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%s%d", prefix, i);
  return chatws_send(g.s, g.conn, buf, (size_t)n, CHATWS_TEXT);
}

/* ------------------------------------------------------------ the reader */

enum { SENDERS = 3, PER_SENDER = 300 };
static const char* const kPrefix[SENDERS] = {"a", "b", "x"};

typedef struct reader {
  int fd, per_sender, senders;
  int next[SENDERS]; /* the sequence number expected next from each sender */
  int disorder;
  pthread_t tid;
} reader;

static void* reader_main(void* p) {
  reader* r = (reader*)p;
  int total = 0, want = r->per_sender * r->senders;
  while (total < want) {
    char* got = NULL;
    size_t n = 0;
    int k, seq;
    if (ws_read_message(r->fd, &got, &n) != 0x1) break;
    for (k = 0; k < r->senders; k++)
      if (got[0] == kPrefix[k][0]) break;
    seq = k < r->senders ? atoi(got + 1) : -1;
    if (k == r->senders || seq != r->next[k]) {
      fprintf(stderr, "reader: got \"%s\" out of order\n", got);
      r->disorder++;
    } else {
      r->next[k]++;
      total++;
    }
    free(got);
  }
  pthread_mutex_lock(&g.mu);
  g.done = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  return NULL;
}

static int is_done(void) {
  int d;
  pthread_mutex_lock(&g.mu);
  d = g.done;
  pthread_mutex_unlock(&g.mu);
  return d;
}

/* ------------------------------------------------------- baton turns */

static void* baton_poller(void* p) {
  int me = (int)(intptr_t)p, i = 0;
  for (;;) {
    int k, rc;
    pthread_mutex_lock(&g.mu);
    while (g.turn != me && g.turn != -1) pthread_cond_wait(&g.cv, &g.mu);
    if (g.turn == -1) {
      pthread_mutex_unlock(&g.mu);
      return NULL;
    }
    pthread_mutex_unlock(&g.mu);
    for (k = 0; k < 2; k++)
      if ((rc = chatws_server_poll(g.s, 0)) < 0) fail("poll in its turn", rc);
    /* Between polls, as the owner: loop-thread calls answer, sends act at once. */
    if ((rc = chatws_connections(g.s, NULL, 0)) != 1) fail("connections as the owner", rc);
    if (chatws_conn_user_data(g.s, g.conn) != &g.marker) fail("user_data as the owner", -1);
    if (i < PER_SENDER && (rc = send_text(kPrefix[me], i++)) != CHATWS_OK) fail("send as the owner", rc);
    pthread_mutex_lock(&g.mu);
    g.turn = g.done ? -1 : 1 - me;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
  }
}

static void* any_sender(void* p) {
  int i, rc;
  (void)p;
  for (i = 0; i < PER_SENDER; i++) {
    /* Never the owner: queued for whoever polls next. */
    if ((rc = send_text("x", i)) != CHATWS_OK) fail("send from a third thread", rc);
    if (chatws_conn_user_data(g.s, g.conn) != NULL) fail("user_data from a third thread", -1);
  }
  return NULL;
}

static void setup(void) {
  chatws_options o;
  memset(&g, 0, sizeof g);
  counter_init(&g.opens);
  counter_init(&g.in_callback);
  counter_init(&g.release);
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  chatws_options_init(&o);
  o.on_open = on_open;
  o.on_message = on_message;
  REQUIRE(chatws_server_create(&o, &g.s) == CHATWS_OK);
}

/* This thread polls until the client is open, so it is the owner. */
static int connect_client(void) {
  char head[512];
  int fd = tcp_connect(chatws_server_port(g.s));
  int64_t end = now_ms() + TEST_TIMEOUT_MS;
  REQUIRE(fd >= 0);
  REQUIRE(ws_send_request(fd, "/", NULL) == 0);
  while (counter_get(&g.opens) < 1 && now_ms() < end) REQUIRE(chatws_server_poll(g.s, 20) >= 0);
  REQUIRE(counter_get(&g.opens) == 1);
  REQUIRE(ws_read_response(fd, head, sizeof head) == 0);
  return fd;
}

static void test_baton(void) {
  pthread_t t[2], x;
  reader r;
  int i;
  setup();
  memset(&r, 0, sizeof r);
  r.fd = connect_client();
  r.per_sender = PER_SENDER;
  r.senders = 3;
  REQUIRE(pthread_create(&r.tid, NULL, reader_main, &r) == 0);
  g.turn = 0;
  for (i = 0; i < 2; i++) REQUIRE(pthread_create(&t[i], NULL, baton_poller, (void*)(intptr_t)i) == 0);
  REQUIRE(pthread_create(&x, NULL, any_sender, NULL) == 0);
  pthread_join(x, NULL);
  pthread_join(r.tid, NULL); /* bounded: each read times out */
  pthread_mutex_lock(&g.mu);
  g.turn = -1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  for (i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (i = 0; i < 3; i++) CHECK_EQ_INT(r.next[i], PER_SENDER);
  CHECK_EQ_INT(r.disorder, 0);
  CHECK_EQ_INT(g.failures, 0);
  close(r.fd);
  chatws_server_destroy(g.s);
}

/* ------------------------------------------------------ overlapping turns */

static void* hold_poller(void* p) {
  int rc;
  (void)p;
  /* Until the callback has held the loop once and let go. */
  while (counter_get(&g.release) < 1)
    if ((rc = chatws_server_poll(g.s, 20)) < 0) {
      fail("poll of the holding thread", rc);
      break;
    }
  rc = chatws_server_poll(g.s, 0);
  if (rc < 0) fail("last poll of the holding thread", rc);
  return NULL;
}

static void test_overlap(void) {
  pthread_t t;
  int fd, rc;
  char* got = NULL;
  size_t n = 0;
  setup();
  fd = connect_client();
  REQUIRE(pthread_create(&t, NULL, hold_poller, NULL) == 0);
  REQUIRE(ws_send_frame(fd, 0x1, 1, "hold", 4) == 0);
  REQUIRE(counter_wait(&g.in_callback, 1, TEST_TIMEOUT_MS));
  /* The other thread is inside poll, in a callback. */
  CHECK_EQ_INT(chatws_server_poll(g.s, 0), CHATWS_ESTATE);
  CHECK_EQ_INT(chatws_server_run(g.s), CHATWS_ESTATE);
  CHECK_EQ_INT(chatws_connections(g.s, NULL, 0), CHATWS_ETHREAD);
  CHECK(chatws_conn_user_data(g.s, g.conn) == NULL);
  CHECK_EQ_INT(chatws_conn_set_user_data(g.s, g.conn, NULL), CHATWS_ETHREAD);
  CHECK_EQ_INT(send_text("q", 1), CHATWS_OK); /* queued */
  chatws_server_destroy(g.s);                  /* refused: the server stays */
  CHECK(chatws_last_error()[0] != '\0');
  CHECK(chatws_server_port(g.s) > 0);
  counter_add(&g.release, 1);
  pthread_join(t, NULL);
  CHECK_EQ_INT(ws_read_message(fd, &got, &n), 0x1);
  CHECK(got && n == 2 && memcmp(got, "q1", 2) == 0);
  free(got);
  /* The other thread polled last: it is the owner, not this one... */
  CHECK_EQ_INT(chatws_connections(g.s, NULL, 0), CHATWS_ETHREAD);
  /* ...until this one polls. */
  rc = chatws_server_poll(g.s, 0);
  CHECK(rc >= 0);
  CHECK_EQ_INT(chatws_connections(g.s, NULL, 0), 1);
  CHECK(chatws_conn_user_data(g.s, g.conn) == &g.marker);
  CHECK_EQ_INT(g.failures, 0);
  close(fd);
  chatws_server_destroy(g.s);
}

/* --------------------------------------------------------- no baton */

static void* racing_poller(void* p) {
  int me = (int)(intptr_t)p, i = 0;
  while (!is_done()) {
    int rc = chatws_server_poll(g.s, 1);
    if (rc == CHATWS_ESTATE) {
      pthread_mutex_lock(&g.mu);
      g.collisions++;
      pthread_mutex_unlock(&g.mu);
    } else if (rc < 0) {
      fail("racing poll", rc);
      break;
    }
    if (i < PER_SENDER && (rc = send_text(kPrefix[me], i++)) != CHATWS_OK) fail("racing send", rc);
  }
  return NULL;
}

static void test_racing(void) {
  pthread_t t[2];
  reader r;
  int i;
  setup();
  memset(&r, 0, sizeof r);
  r.fd = connect_client();
  r.per_sender = PER_SENDER;
  r.senders = 2;
  REQUIRE(pthread_create(&r.tid, NULL, reader_main, &r) == 0);
  for (i = 0; i < 2; i++) REQUIRE(pthread_create(&t[i], NULL, racing_poller, (void*)(intptr_t)i) == 0);
  pthread_join(r.tid, NULL);
  for (i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (i = 0; i < 2; i++) CHECK_EQ_INT(r.next[i], PER_SENDER);
  CHECK_EQ_INT(r.disorder, 0);
  CHECK_EQ_INT(g.failures, 0);
  printf("racing pollers: %d polls refused with CHATWS_ESTATE\n", g.collisions);
  close(r.fd);
  chatws_server_destroy(g.s);
}

int main(void) {
  test_baton();
  test_overlap();
  test_racing();
  return test_finish("test_c_poll_threads");
}
