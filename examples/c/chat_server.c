/*
 * chat_server -- a complete chat server in C over libchatws.
 *
 * Serves the chat page over HTTP and runs the built-in chat (the classic
 * "json" wire format and the richer "chatws.v1") with durable history.
 *
 *   chat_server [options]     (chat_server --help lists them with their defaults;
 *                              they are those of `python -m chatws`)
 *
 * A WebSocket client that offers no subprotocol (a plain terminal client) is
 * told what to offer: close 1008 with a reason naming chatws.v1 and json,
 * rather than left connected to a server that ignores what it sends.
 *
 * With --auth-secret FILE it admits only upgrades that carry a token made
 * with that secret (chat_token.h; `python -m chatws token` prints one) and
 * posts each client's messages under the token's user.
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
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_server_options.h"
#include "chat_token.h"

/* Signal used only to wake the signal thread when the server stops by itself. */
#define QUIT_SIGNAL SIGUSR1

struct signal_thread_arg {
  chatws_server* server;
  sigset_t set;
  int tls;
};

static int verbose = 0;

/* The close reason a client without a chat subprotocol gets (at most 123 bytes). */
#define NO_SUBPROTOCOL_REASON "no subprotocol: this chat server speaks chatws.v1 or json"

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
    /* Only chat subprotocols are offered, so any other connection has none:
     * tell it what to offer instead of ignoring what it sends. */
    if (!info.subprotocol[0]) chatws_close(server, conn, 1008, NO_SUBPROTOCOL_REASON);
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

int main(int argc, char** argv) {
  static struct server_args args; /* static: opts points into it for the whole run */
  chatws_options* const o = &args.opts;
  chatws_server* server = NULL;
  struct signal_thread_arg sig_arg;
  pthread_t sig_tid;
  int rc;

  chatws_options_init(o);
  o->host = "127.0.0.1";
  o->port = 8080;
  o->static_dir = CHATWS_EXAMPLE_WEB_DIR;
  o->subprotocols = "chatws.v1,json";
  o->chat = 1;
  o->on_open = on_open;
  o->on_close = on_close;
  o->on_message = on_message;
  o->on_log = on_log;
  rc = parse_options(&args, argc, argv);
  if (rc == 1) return 0;
  if (rc != 0) return rc;
  verbose = args.verbose;
  if (args.auth_secret) {
    static struct token_secret secret; /* static: the hook reads it for the whole run */
    char err[512];
    if (token_load_secret(args.auth_secret, &secret, err, sizeof err) != 0) {
      fprintf(stderr, "%s: --auth-secret: %s\n", argv[0], err);
      return 2;
    }
    o->on_upgrade = token_upgrade;
    o->user = &secret;
  }
  chatws_options opts = *o;

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

  /* Flushed at once (stderr is unbuffered): a supervisor or a test reads the URLs from it,
   * on one line. */
  char metrics[128] = "";
  if (chatws_server_metrics_port(server) > 0)
    snprintf(metrics, sizeof metrics, ", metrics on http://%s:%d/metrics", opts.metrics_host,
             chatws_server_metrics_port(server));
  log_line("chatws %s: chat on %s://%s%s%s:%d/ (static %s, history %s%s)%s", chatws_version(),
           opts.tls_cert_file ? "https" : "http", strchr(opts.host, ':') ? "[" : "", opts.host, strchr(opts.host, ':') ? "]" : "",
           chatws_server_port(server), opts.static_dir ? opts.static_dir : "none",
           opts.cluster_url ? "in Redis (cluster)" : opts.history_path ? opts.history_path : "in memory",
           args.auth_secret ? ", tokens required" : "", metrics);

  rc = chatws_server_run(server);
  if (rc != CHATWS_OK)
    log_line("run: %s: %s", chatws_strerror(rc), chatws_last_error());

  pthread_kill(sig_tid, QUIT_SIGNAL);
  pthread_join(sig_tid, NULL);
  chatws_server_destroy(server);
  log_line("stopped");
  return rc == CHATWS_OK ? 0 : 1;
}
