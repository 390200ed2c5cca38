/*
 * The re-entrancy matrix of chatws.h ("Callbacks and re-entrancy"): every
 * public chatws_* function called from inside a callback, each result
 * checked against what the header promises for that callback. Shared by
 * test_c_reentrancy.c (on_open, on_message, on_drain, on_chat, on_close:
 * peer close, graceful stop, destroy) and test_c_reentrancy_tls.c (on_log).
 * Include after capi_test.h.
 */
#ifndef CHATWS_REENTRANCY_MATRIX_H
#define CHATWS_REENTRANCY_MATRIX_H

typedef enum matrix_ctx {
  CTX_OPEN,
  CTX_MESSAGE,
  CTX_DRAIN,
  CTX_CHAT,
  CTX_CLOSE,         /* the peer closed */
  CTX_CLOSE_STOP,    /* closed by chatws_server_stop(), the server still stopping */
  CTX_CLOSE_DESTROY, /* closed by chatws_server_destroy() */
  CTX_LOG,
  CTX_COUNT
} matrix_ctx;

static const char* const matrix_ctx_names[CTX_COUNT] = {
    "on_open", "on_message", "on_drain", "on_chat", "on_close", "on_close (stop)",
    "on_close (destroy)", "on_log"};

/* What the matrix knows of the server it runs in. */
typedef struct matrix_server {
  int port;
  int fd;
  int chat; /* created with chat = 1 */
  int tls;  /* created with a certificate */
  pthread_mutex_t mu;
  int seen[CTX_COUNT]; /* how often each context ran the matrix */
} matrix_server;

/* Per-connection host data, set in on_open, freed in on_close. */
typedef struct matrix_conn {
  chatws_conn_id id;
} matrix_conn;

static inline void matrix_server_init(matrix_server* m, chatws_server* s, int chat, int tls) {
  memset(m, 0, sizeof *m);
  m->port = chatws_server_port(s);
  m->fd = chatws_server_fd(s);
  m->chat = chat;
  m->tls = tls;
  pthread_mutex_init(&m->mu, NULL);
}

static inline int matrix_seen(matrix_server* m, matrix_ctx ctx) {
  int n;
  pthread_mutex_lock(&m->mu);
  n = m->seen[ctx];
  pthread_mutex_unlock(&m->mu);
  return n;
}

#define MATRIX_EXPECT(ctx, fn, got, cond)                                                  \
  do {                                                                                     \
    long long got_ = (long long)(got);                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: in %s: %s returned %lld, expected %s (last error: %s)\n",     \
              __FILE__, __LINE__, matrix_ctx_names[ctx], fn, got_, #cond,                  \
              chatws_last_error());                                                        \
      test_failures++;                                                                     \
    }                                                                                      \
  } while (0)

/* Calls every chatws_* function from the callback of `ctx` about `conn` (0:
 * none, on_log). Never stops the server itself (chatws_server_stop() is
 * called only where the server is stopping or going already). */
static inline void matrix_run(chatws_server* s, matrix_server* m, matrix_ctx ctx,
                              chatws_conn_id conn) {
  /* The connection is open (not being reported closed), the server is being
   * destroyed (stopped from its start), a connection is named at all. */
  const int open = ctx == CTX_OPEN || ctx == CTX_MESSAGE || ctx == CTX_DRAIN || ctx == CTX_CHAT;
  const int destroying = ctx == CTX_CLOSE_DESTROY;
  const int has_conn = ctx != CTX_LOG;
  const chatws_conn_id stale = 0x7fffffffffffull; /* never handed out in a test */
  chatws_options o;
  chatws_server* other = NULL;
  chatws_conn_info info;
  matrix_conn* mc;
  int rc;

  /* Version, errors, options: any thread, any time. */
  MATRIX_EXPECT(ctx, "chatws_version", 0, strcmp(chatws_version(), CHATWS_VERSION_STRING) == 0);
  MATRIX_EXPECT(ctx, "chatws_version_number", chatws_version_number(),
                got_ == CHATWS_VERSION_NUMBER);
  MATRIX_EXPECT(ctx, "chatws_strerror", 0, strcmp(chatws_strerror(12345), "unknown error") == 0);
  MATRIX_EXPECT(ctx, "chatws_last_error", 0, chatws_last_error() != NULL);
  chatws_options_init(&o);
  MATRIX_EXPECT(ctx, "chatws_options_init", o.struct_size, got_ == (long long)sizeof o);

  /* Another server may be created and destroyed from a callback. */
  rc = chatws_server_create(&o, &other);
  MATRIX_EXPECT(ctx, "chatws_server_create (another)", rc, got_ == CHATWS_OK);
  if (rc == CHATWS_OK) {
    MATRIX_EXPECT(ctx, "chatws_server_port (another)", chatws_server_port(other), got_ > 0);
    chatws_server_destroy(other);
  }

  /* Queries of this server. */
  MATRIX_EXPECT(ctx, "chatws_server_port", chatws_server_port(s), got_ == m->port);
  MATRIX_EXPECT(ctx, "chatws_server_fd", chatws_server_fd(s), got_ == m->fd);
  MATRIX_EXPECT(ctx, "chatws_server_stopped", chatws_server_stopped(s),
                destroying ? got_ != 0 : got_ == 0);

  /* The loop is never re-entered from a callback. */
  MATRIX_EXPECT(ctx, "chatws_server_poll", chatws_server_poll(s, 0), got_ == CHATWS_ESTATE);
  MATRIX_EXPECT(ctx, "chatws_server_run", chatws_server_run(s), got_ == CHATWS_ESTATE);
  /* Nor destroyed under itself: nothing happens, the server stays valid. */
  chatws_server_destroy(s);
  MATRIX_EXPECT(ctx, "chatws_server_destroy (self)", 0, chatws_last_error()[0] != '\0');
  MATRIX_EXPECT(ctx, "chatws_server_port (after destroy)", chatws_server_port(s), got_ == m->port);
  if (ctx == CTX_CLOSE_STOP || destroying)
    MATRIX_EXPECT(ctx, "chatws_server_stop", chatws_server_stop(s), got_ == CHATWS_OK);
  rc = chatws_server_reload_tls(s, NULL, NULL, NULL);
  MATRIX_EXPECT(ctx, "chatws_server_reload_tls", rc,
                m->tls ? got_ == CHATWS_OK : got_ == CHATWS_ESTATE);

  /* Sending and closing act at once; a server being destroyed refuses. */
  rc = chatws_send(s, has_conn ? conn : stale, "m", 1, CHATWS_TEXT);
  MATRIX_EXPECT(ctx, "chatws_send", rc,
                destroying ? got_ == CHATWS_ESTOPPED
                : open     ? (got_ == CHATWS_OK || got_ == CHATWS_QUEUED_OVER_LIMIT)
                           : got_ == CHATWS_ENOCONN);
  MATRIX_EXPECT(ctx, "chatws_send (bad UTF-8)", chatws_send(s, conn, "\xff", 1, CHATWS_TEXT),
                got_ == CHATWS_EINVAL);
  MATRIX_EXPECT(ctx, "chatws_send (bad opcode)", chatws_send(s, conn, "m", 1, 7),
                got_ == CHATWS_EINVAL);
  rc = chatws_broadcast(s, "b", 1, CHATWS_TEXT, conn);
  MATRIX_EXPECT(ctx, "chatws_broadcast", rc, destroying ? got_ == CHATWS_ESTOPPED : got_ >= 0);
  MATRIX_EXPECT(ctx, "chatws_close (bad code)", chatws_close(s, conn, 999, NULL),
                got_ == CHATWS_EINVAL);
  MATRIX_EXPECT(ctx, "chatws_close (stale id)", chatws_close(s, stale, 1000, NULL),
                destroying ? got_ == CHATWS_ESTOPPED : got_ == CHATWS_ENOCONN);

  /* Loop-thread functions answer, for the connection being reported too. */
  mc = (matrix_conn*)chatws_conn_user_data(s, conn);
  MATRIX_EXPECT(ctx, "chatws_conn_user_data", mc ? (long long)mc->id : -1,
                has_conn ? got_ == (long long)conn : got_ == -1);
  MATRIX_EXPECT(ctx, "chatws_conn_set_user_data", chatws_conn_set_user_data(s, conn, mc),
                has_conn ? got_ == CHATWS_OK : got_ == CHATWS_ENOCONN);
  MATRIX_EXPECT(ctx, "chatws_conn_user_data (stale)", chatws_conn_user_data(s, stale) != NULL,
                got_ == 0);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  rc = chatws_conn_get_info(s, conn, &info);
  MATRIX_EXPECT(ctx, "chatws_conn_get_info", rc, has_conn ? got_ == CHATWS_OK : got_ == CHATWS_ENOCONN);
  if (has_conn && rc == CHATWS_OK)
    MATRIX_EXPECT(ctx, "chatws_conn_get_info path", 0,
                  info.path && info.path[0] == '/' && info.remote_address &&
                      strcmp(info.remote_address, "127.0.0.1") == 0);
  MATRIX_EXPECT(ctx, "chatws_conn_get_info (stale)", chatws_conn_get_info(s, stale, &info),
                got_ == CHATWS_ENOCONN);
  MATRIX_EXPECT(ctx, "chatws_connection_count", (long long)chatws_connection_count(s),
                destroying ? got_ == 0 : got_ >= (open ? 1 : 0));
  rc = chatws_connections(s, NULL, 0);
  MATRIX_EXPECT(ctx, "chatws_connections", rc,
                destroying ? got_ == 0 : got_ >= (open ? 1 : 0));
  rc = chatws_chat_post(s, "", "host", "note");
  MATRIX_EXPECT(ctx, "chatws_chat_post", rc,
                !m->chat    ? got_ == CHATWS_EINVAL
                : destroying ? got_ == CHATWS_ESTOPPED
                             : got_ == CHATWS_OK);

  pthread_mutex_lock(&m->mu);
  m->seen[ctx]++;
  pthread_mutex_unlock(&m->mu);
}

#endif /* CHATWS_REENTRANCY_MATRIX_H */
