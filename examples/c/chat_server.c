/*
 * chat_server -- a complete chat server in C over libchatws.
 *
 * Serves the chat page over HTTP and runs the built-in chat (the classic
 * "json" wire format and the richer "chatws.v1") with durable history.
 *
 *   chat_server [--host 127.0.0.1] [--port 8080] [--static-dir DIR]
 *               [--history FILE] [--history-size N] [--max-rooms N] [--verbose]
 *               [--tls-cert FILE --tls-key FILE [--tls-key-passphrase SOURCE]
 *                [--tls-min-version 1.2|1.3] [--tls-ciphers LIST]
 *                [--tls-ciphersuites LIST] [--no-tls-session-tickets]]
 *
 * SIGINT/SIGTERM stop it gracefully: clients get close 1001 and the history
 * is flushed. With TLS, SIGHUP reloads the certificate and key from their
 * files (the renewal case: certbot or cert-manager replaced them); open
 * connections keep theirs, and a pair that does not load is refused with the
 * reason while the old one stays in use. Signals are taken by a dedicated
 * thread with sigwait(), because chatws_server_stop() is not
 * async-signal-safe and must not be called from a signal handler.
 */
#define _POSIX_C_SOURCE 200809L

#include <chatws.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CHATWS_EXAMPLE_WEB_DIR
#define CHATWS_EXAMPLE_WEB_DIR "web"
#endif

/* Signal used only to wake the signal thread when the server stops by itself. */
#define QUIT_SIGNAL SIGUSR1

struct signal_thread_arg {
  chatws_server* server;
  sigset_t set;
  int tls;
};

static int verbose = 0;

static void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_line(const char* fmt, ...) {
  char stamp[32];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ld ", stamp, ts.tv_nsec / 1000000L);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void on_open(chatws_server* server, chatws_conn_id conn, void* user) {
  chatws_conn_info info;
  (void)user;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (chatws_conn_get_info(server, conn, &info) == CHATWS_OK) {
    log_line("open  #%llu %s:%u %s (%s), %zu connected", (unsigned long long)conn,
             info.remote_address, (unsigned)info.remote_port, info.path,
             info.subprotocol[0] ? info.subprotocol : "no subprotocol",
             chatws_connection_count(server));
  } else {
    log_line("open  #%llu", (unsigned long long)conn);
  }
}

static void on_close(chatws_server* server, chatws_conn_id conn, int code, const char* reason,
                     void* user) {
  (void)user;
  log_line("close #%llu code %d%s%s", (unsigned long long)conn, code, reason[0] ? ": " : "",
           reason);
  (void)server;
}

/* Messages of connections that did not negotiate a chat subprotocol. */
static void on_message(chatws_server* server, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  (void)server;
  (void)data;
  (void)user;
  log_line("message #%llu: %zu bytes (%s) outside the chat, ignored", (unsigned long long)conn,
           len, is_binary ? "binary" : "text");
}

/* The library's own log lines (debug ones only with --verbose). */
static void on_log(chatws_server* server, int level, const char* message, void* user) {
  static const char* names[] = {"debug", "info", "warning", "error"};
  (void)server;
  (void)user;
  if (level == CHATWS_LOG_DEBUG && !verbose) return;
  log_line("%s: %s", level >= 0 && level <= 3 ? names[level] : "log", message);
}

static void* signal_thread(void* p) {
  struct signal_thread_arg* arg = p;
  for (;;) {
    int sig = 0;
    if (sigwait(&arg->set, &sig) != 0) continue;
    if (sig == QUIT_SIGNAL) return NULL;
    if (sig == SIGHUP) {
      if (!arg->tls) {
        log_line("SIGHUP: no TLS certificate to reload");
      } else if (chatws_server_reload_tls(arg->server, NULL, NULL, NULL) == CHATWS_OK) {
        log_line("SIGHUP: TLS certificate reloaded; new connections use it");
      } else {
        log_line("SIGHUP: TLS reload failed, keeping the certificate in use: %s", chatws_last_error());
      }
      continue;
    }
    log_line("%s: stopping (clients get close 1001, history is flushed)", strsignal(sig));
    chatws_server_stop(arg->server); /* idempotent: a second signal is harmless */
  }
}

static void usage(FILE* out, const char* argv0) {
  fprintf(out,
          "usage: %s [options]\n"
          "  --host ADDR        address to bind (default 127.0.0.1)\n"
          "  --port N           TCP port (default 8080; 0 picks a free one)\n"
          "  --static-dir DIR   directory served over HTTP (default %s)\n"
          "  --history FILE     SQLite file for durable history (default: in memory)\n"
          "  --history-size N   messages kept per room (default 50)\n"
          "  --max-rooms N      chat rooms at once; new ones beyond get 503 (default 10000)\n"
          "  --verbose          also print the library's debug lines\n"
          "  --tls-cert FILE    PEM certificate chain: serve https:// and wss:// (SIGHUP reloads)\n"
          "  --tls-key FILE     PEM private key of the certificate\n"
          "  --tls-key-passphrase SOURCE   pass:TEXT, env:VARIABLE or file:PATH\n"
          "  --tls-min-version 1.2|1.3     oldest TLS version accepted (default 1.2)\n"
          "  --tls-ciphers LIST            TLS 1.2 cipher list (OpenSSL syntax)\n"
          "  --tls-ciphersuites LIST       TLS 1.3 cipher suites\n"
          "  --no-tls-session-tickets      no session resumption by ticket\n"
          "  --metrics-port N   serve /metrics, /healthz, /readyz on 127.0.0.1:N (0: a free port)\n",
          argv0, CHATWS_EXAMPLE_WEB_DIR);
}

static int parse_uint(const char* s, unsigned long max, unsigned long* out) {
  char* end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') return -1;
  *out = v;
  return 0;
}

int main(int argc, char** argv) {
  static const struct option long_opts[] = {
      {"host", required_argument, NULL, 'h'},    {"port", required_argument, NULL, 'p'},
      {"static-dir", required_argument, NULL, 'd'}, {"history", required_argument, NULL, 'H'},
      {"history-size", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'u'},
      {"max-rooms", required_argument, NULL, 'R'},
      {"verbose", no_argument, NULL, 'v'},          {"tls-cert", required_argument, NULL, 'c'},
      {"tls-key", required_argument, NULL, 'k'},    {"tls-key-passphrase", required_argument, NULL, 'P'},
      {"tls-min-version", required_argument, NULL, 'm'}, {"tls-ciphers", required_argument, NULL, 'C'},
      {"tls-ciphersuites", required_argument, NULL, 'S'},
      {"no-tls-session-tickets", no_argument, NULL, 'T'},
      {"metrics-port", required_argument, NULL, 'M'},
      {NULL, 0, NULL, 0}};
  chatws_options opts;
  chatws_server* server = NULL;
  struct signal_thread_arg sig_arg;
  pthread_t sig_tid;
  unsigned long value;
  int c, rc;

  chatws_options_init(&opts);
  opts.host = "127.0.0.1";
  opts.port = 8080;
  opts.static_dir = CHATWS_EXAMPLE_WEB_DIR;
  opts.subprotocols = "chatws.v1,json";
  opts.chat = 1;
  opts.on_open = on_open;
  opts.on_close = on_close;
  opts.on_message = on_message;
  opts.on_log = on_log;

  while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    switch (c) {
      case 'h': opts.host = optarg; break;
      case 'd': opts.static_dir = optarg; break;
      case 'H': opts.history_path = optarg; break;
      case 'p':
        if (parse_uint(optarg, 65535, &value) != 0) {
          fprintf(stderr, "%s: bad port '%s'\n", argv[0], optarg);
          return 2;
        }
        opts.port = (uint16_t)value;
        break;
      case 'n':
        if (parse_uint(optarg, 1000000, &value) != 0 || value == 0) {
          fprintf(stderr, "%s: bad history size '%s'\n", argv[0], optarg);
          return 2;
        }
        opts.history_size = (uint32_t)value;
        break;
      case 'R':
        if (parse_uint(optarg, 4294967295UL, &value) != 0 || value == 0) {
          fprintf(stderr, "%s: bad max rooms '%s'\n", argv[0], optarg);
          return 2;
        }
        opts.max_rooms = (uint32_t)value;
        break;
      case 'v': verbose = 1; break;
      case 'c': opts.tls_cert_file = optarg; break;
      case 'k': opts.tls_key_file = optarg; break;
      case 'P': opts.tls_key_passphrase = optarg; break;
      case 'C': opts.tls_ciphers = optarg; break;
      case 'S': opts.tls_ciphersuites = optarg; break;
      case 'T': opts.tls_session_tickets = -1; break;
      case 'm':
        if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3") != 0) {
          fprintf(stderr, "%s: --tls-min-version must be 1.2 or 1.3\n", argv[0]);
          return 2;
        }
        opts.tls_min_version = optarg[2] == '3' ? CHATWS_TLS_1_3 : CHATWS_TLS_1_2;
        break;
      case 'M':
        if (parse_uint(optarg, 65535, &value) != 0) {
          fprintf(stderr, "%s: bad metrics port '%s'\n", argv[0], optarg);
          return 2;
        }
        opts.metrics_host = "127.0.0.1"; /* set: the listener is on, port 0 included */
        opts.metrics_port = (int)value;
        break;
      case 'u': usage(stdout, argv[0]); return 0;
      default: usage(stderr, argv[0]); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr, argv[0]);
    return 2;
  }

  /* Block the signals in every thread (the library's included) before any
   * thread starts, so that only sigwait() in the signal thread receives them. */
  sigemptyset(&sig_arg.set);
  sigaddset(&sig_arg.set, SIGINT);
  sigaddset(&sig_arg.set, SIGTERM);
  sigaddset(&sig_arg.set, SIGHUP);
  sigaddset(&sig_arg.set, QUIT_SIGNAL);
  sig_arg.tls = opts.tls_cert_file != NULL;
  if ((rc = pthread_sigmask(SIG_BLOCK, &sig_arg.set, NULL)) != 0) {
    fprintf(stderr, "pthread_sigmask: %s\n", strerror(rc));
    return 1;
  }

  rc = chatws_server_create(&opts, &server);
  if (rc != CHATWS_OK) {
    fprintf(stderr, "cannot start: %s: %s\n", chatws_strerror(rc), chatws_last_error());
    return 1;
  }
  sig_arg.server = server;
  if ((rc = pthread_create(&sig_tid, NULL, signal_thread, &sig_arg)) != 0) {
    fprintf(stderr, "pthread_create: %s\n", strerror(rc));
    chatws_server_destroy(server);
    return 1;
  }

  log_line("chatws %s: chat on %s://%s%s%s:%d/ (static %s, history %s)", chatws_version(),
           opts.tls_cert_file ? "https" : "http", strchr(opts.host, ':') ? "[" : "", opts.host, strchr(opts.host, ':') ? "]" : "",
           chatws_server_port(server), opts.static_dir,
           opts.history_path ? opts.history_path : "in memory");
  if (chatws_server_metrics_port(server) > 0)
    log_line("metrics on http://127.0.0.1:%d/metrics", chatws_server_metrics_port(server));

  rc = chatws_server_run(server);
  if (rc != CHATWS_OK)
    log_line("run: %s: %s", chatws_strerror(rc), chatws_last_error());

  pthread_kill(sig_tid, QUIT_SIGNAL);
  pthread_join(sig_tid, NULL);
  chatws_server_destroy(server);
  log_line("stopped");
  return rc == CHATWS_OK ? 0 : 1;
}
