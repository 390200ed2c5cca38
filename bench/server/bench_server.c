/*
 * chatws-bench-server: the benchmark (and Autobahn conformance) server,
 * written in plain C against chatws.h only, as any host program would be.
 *
 *   chatws-bench-server --mode echo|broadcast|chat --port N
 *                       [--host ADDR] [--max-message-size B] [--static-dir DIR]
 *                       [--history FILE] [--history-size N]   (chat mode)
 *                       [--tls-cert FILE --tls-key FILE]      (wss://; SIGHUP reloads)
 *                       [--metrics-port N]   (/metrics on 127.0.0.1:N; the overhead bench)
 *                       [--compression off|shared|dedicated]  (default shared)
 *                       [--compression-threshold B]           (default 128)
 *                       [--compression-always]  (compressed even when not smaller)
 *                       [--threads N]   (event loops, one thread each; 0: one per core)
 *                       [--accept-mode reuseport|handoff]  (threads > 1; default reuseport)
 *
 *   echo       every message goes back to its sender with the same opcode
 *   broadcast  every message goes to every connection, the sender included
 *   chat       the built-in chat (subprotocol "json" or "chatws.v1"),
 *              history in memory, or durable in the SQLite file --history
 *              (WAL; commits grouped per loop iteration); --history-size
 *              messages kept per room (default 50)
 *
 * SIGINT / SIGTERM stop it gracefully (close 1001 to every client).
 */
#include <chatws.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_ECHO, MODE_BROADCAST, MODE_CHAT };

static void on_echo(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                    int is_binary, void* user) {
  (void)user;
  /* A full output queue drops or closes per the slow-consumer policy; the
   * benchmark's windows keep queues short, so the result is not checked. */
  chatws_send(s, conn, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT);
}

static void on_broadcast(chatws_server* s, chatws_conn_id conn, const char* data, size_t len,
                         int is_binary, void* user) {
  (void)conn;
  (void)user;
  chatws_broadcast(s, data, len, is_binary ? CHATWS_BINARY : CHATWS_TEXT, 0);
}

/* Signals are taken by a helper thread (sigwait) rather than a handler, so
 * that chatws_server_stop() and chatws_server_reload_tls() -- "any thread"
 * calls -- run in a normal thread context. */
static void* signal_thread(void* arg) {
  chatws_server* server = arg;
  sigset_t set;
  int sig = 0;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  while (sigwait(&set, &sig) == 0) {
    if (sig != SIGHUP) break;
    if (chatws_server_reload_tls(server, NULL, NULL, NULL) != CHATWS_OK)
      fprintf(stderr, "chatws-bench-server: TLS reload: %s\n", chatws_last_error());
  }
  chatws_server_stop(server);
  return NULL;
}

static void usage(FILE* out) {
  fputs("usage: chatws-bench-server --mode echo|broadcast|chat --port N [--host ADDR]\n"
        "                           [--max-message-size B] [--static-dir DIR]\n"
        "                           [--history FILE] [--history-size N]  (chat mode only)\n"
        "                           [--tls-cert FILE --tls-key FILE]    (wss://)\n"
        "                           [--metrics-port N]                  (/metrics on 127.0.0.1:N)\n"
        "                           [--compression off|shared|dedicated] [--compression-threshold B]\n"
        "                           [--compression-always] [--threads N]  (0: one per core)\n"
        "                           [--accept-mode reuseport|handoff]\n",
        out);
}

int main(int argc, char** argv) {
  enum mode mode = MODE_ECHO;
  long port = -1;
  long metrics_port = 0; /* 0: no metrics listener */
  const char* host = "127.0.0.1";
  const char* static_dir = NULL;
  const char* history_path = NULL;
  const char* tls_cert = NULL;
  const char* tls_key = NULL;
  unsigned long history_size = 0; /* 0: the library's default */
  unsigned long long max_message = 16ull << 20;
  int compression = CHATWS_COMPRESSION_SHARED;
  unsigned long threshold = 0; /* 0: the library's default */
  int compression_always = 0;
  int threads = 1;
  int accept_mode = CHATWS_ACCEPT_REUSEPORT;
  int i;

  for (i = 1; i < argc; ++i) {
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--mode") && v) {
      if (!strcmp(v, "echo")) mode = MODE_ECHO;
      else if (!strcmp(v, "broadcast")) mode = MODE_BROADCAST;
      else if (!strcmp(v, "chat")) mode = MODE_CHAT;
      else { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--port") && v) {
      char* end = NULL;
      port = strtol(v, &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--metrics-port") && v) {
      char* end = NULL;
      metrics_port = strtol(v, &end, 10);
      if (*end != '\0' || metrics_port <= 0 || metrics_port > 65535) { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--host") && v) {
      host = v;
      ++i;
    } else if (!strcmp(argv[i], "--max-message-size") && v) {
      char* end = NULL;
      max_message = strtoull(v, &end, 10);
      if (*end != '\0' || max_message == 0) { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--history") && v) {
      history_path = v;
      ++i;
    } else if (!strcmp(argv[i], "--history-size") && v) {
      char* end = NULL;
      history_size = strtoul(v, &end, 10);
      if (*end != '\0' || history_size == 0 || history_size > 1000000) { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--tls-cert") && v) {
      tls_cert = v;
      ++i;
    } else if (!strcmp(argv[i], "--tls-key") && v) {
      tls_key = v;
      ++i;
    } else if (!strcmp(argv[i], "--compression") && v) {
      if (!strcmp(v, "off")) compression = CHATWS_COMPRESSION_OFF;
      else if (!strcmp(v, "shared")) compression = CHATWS_COMPRESSION_SHARED;
      else if (!strcmp(v, "dedicated")) compression = CHATWS_COMPRESSION_DEDICATED;
      else { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--compression-threshold") && v) {
      char* end = NULL;
      threshold = strtoul(v, &end, 10);
      if (*end != '\0' || threshold == 0 || threshold > 0xFFFFFFFFul) { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--threads") && v) {
      char* end = NULL;
      long n = strtol(v, &end, 10);
      if (*end != '\0' || n < 0 || n > 256) { usage(stderr); return 2; }
      threads = n == 0 ? -1 : (int)n; /* the C option's "one per core" is -1 */
      ++i;
    } else if (!strcmp(argv[i], "--accept-mode") && v) {
      if (!strcmp(v, "reuseport")) accept_mode = CHATWS_ACCEPT_REUSEPORT;
      else if (!strcmp(v, "handoff")) accept_mode = CHATWS_ACCEPT_HANDOFF;
      else { usage(stderr); return 2; }
      ++i;
    } else if (!strcmp(argv[i], "--compression-always")) {
      compression_always = 1;
    } else if (!strcmp(argv[i], "--static-dir") && v) {
      static_dir = v;
      ++i;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (port < 0) {
    usage(stderr);
    return 2;
  }
  if ((history_path || history_size) && mode != MODE_CHAT) {
    fputs("chatws-bench-server: --history and --history-size need --mode chat\n", stderr);
    return 2;
  }

  chatws_options opts;
  chatws_options_init(&opts);
  opts.host = host;
  opts.port = (uint16_t)port;
  opts.metrics_port = (int)metrics_port; /* metrics_host NULL: 127.0.0.1 */
  opts.static_dir = static_dir;
  opts.tls_cert_file = tls_cert;
  opts.tls_key_file = tls_key;
  opts.max_message_size = (size_t)max_message;
  opts.compression = compression;
  opts.compression_threshold = (uint32_t)threshold;
  opts.compression_always = compression_always;
  opts.threads = threads;
  opts.accept_mode = accept_mode;
  /* Autobahn sends 16 MiB messages in one go; the output queue must hold one
   * echo of the largest message. */
  opts.max_output_buffer = (size_t)max_message + (1u << 20);
  switch (mode) {
    case MODE_ECHO: opts.on_message = on_echo; break;
    case MODE_BROADCAST: opts.on_message = on_broadcast; break;
    case MODE_CHAT:
      opts.chat = 1;
      opts.subprotocols = "json,chatws.v1";
      opts.history_path = history_path;
      opts.history_size = (uint32_t)history_size;
      opts.on_message = on_echo; /* non-chat connections still get an echo */
      /* Throughput is measured, not flood control: the chat's default
       * per-connection rate limit (20/s) is off. */
      opts.max_messages_per_second = -1;
      break;
  }

  /* Block the stop signals in every thread; the helper thread sigwaits. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  chatws_server* server = NULL;
  int rc = chatws_server_create(&opts, &server);
  if (rc != CHATWS_OK) {
    fprintf(stderr, "chatws-bench-server: %s: %s\n", chatws_strerror(rc), chatws_last_error());
    return 1;
  }
  pthread_t sig_thread;
  if (pthread_create(&sig_thread, NULL, signal_thread, server) != 0) {
    fprintf(stderr, "chatws-bench-server: cannot start the signal thread\n");
    chatws_server_destroy(server);
    return 1;
  }
  printf("chatws-bench-server %s: %s mode on %s%s:%d%s%s\n", chatws_version(),
         mode == MODE_ECHO ? "echo" : mode == MODE_BROADCAST ? "broadcast" : "chat",
         tls_cert ? "wss://" : "", host,
         chatws_server_port(server), history_path ? ", history in " : "",
         history_path ? history_path : "");
  fflush(stdout);

  rc = chatws_server_run(server);
  if (rc != CHATWS_OK)
    fprintf(stderr, "chatws-bench-server: run: %s: %s\n", chatws_strerror(rc), chatws_last_error());
  /* The loop may end for a reason other than a signal: wake the helper so
   * that it can be joined. */
  pthread_kill(sig_thread, SIGTERM);
  pthread_join(sig_thread, NULL);
  chatws_server_destroy(server);
  return rc == CHATWS_OK ? 0 : 1;
}
