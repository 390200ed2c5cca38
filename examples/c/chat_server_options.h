/*
 * The command line of chat_server: one table says each option's name, value,
 * default and help, so that --help, the parser and the error messages cannot
 * disagree. The flags are those of `python -m chatws` (same names, same
 * units: sizes in bytes, timeouts in seconds or "off").
 *
 * parse_options() returns 0 (go on), 1 (--help was printed: exit 0) or 2 (a
 * bad command line, with a message naming the option: exit 2).
 */
#ifndef CHAT_SERVER_OPTIONS_H
#define CHAT_SERVER_OPTIONS_H

#include <chatws.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CHATWS_EXAMPLE_WEB_DIR
#define CHATWS_EXAMPLE_WEB_DIR "web"
#endif

enum opt_kind {
  OPT_STRING,   /* const char* */
  OPT_PORT,     /* uint16_t, 0..65535 */
  OPT_U32,      /* uint32_t, 1..max */
  OPT_SIZE,     /* size_t, 1..SIZE_MAX */
  OPT_SECONDS,  /* int milliseconds from seconds > 0 (fractions allowed); "off": -1 */
  OPT_ORIGIN,   /* repeatable: joined with commas into allowed_origins */
  OPT_SLOW,     /* close|drop */
  OPT_TLS_VER,  /* 1.2|1.3 */
  OPT_COMPRESSION, /* shared|dedicated|off */
  OPT_THREADS,  /* int event loops 1..256; 0: one per core (the C option's -1) */
  OPT_ACCEPT,   /* reuseport|handoff */
  OPT_FLAG,     /* int set to flag_value */
  OPT_RATE,     /* int messages per second >= 1; "off": -1 (no limit) */
  OPT_INT,      /* int, 1..INT_MAX */
  OPT_METRICS,  /* the metrics listener's port (0: a free one); turns it on */
  OPT_SNDBUF,   /* int bytes 1..INT_MAX; "auto": -1 (the kernel's autotuning) */
  OPT_HELP
};

struct opt_spec {
  const char* name;
  enum opt_kind kind;
  const char* metavar;
  const char* help;
  const char* default_text;
  void* target;
  unsigned long max;  /* OPT_U32: the largest value */
  int flag_value;     /* OPT_FLAG */
};

struct server_args {
  chatws_options opts;
  int verbose;
  int metrics_on;           /* --metrics-port given */
  const char* metrics_host; /* --metrics-host, used only with it */
  const char* auth_secret;  /* --auth-secret FILE: token mode (chat_token.h) */
  char origins[4096]; /* --allowed-origin values, comma-separated */
};

/* The help text's defaults are the library's (chatws.h): keep them in step. */
static void build_specs(struct server_args* a, struct opt_spec* s, size_t* n) {
  chatws_options* o = &a->opts;
  size_t i = 0;
#define SPECX(n, k, m, h, d, t, mx, f) s[i++] = (struct opt_spec){n, k, m, h, d, t, mx, f}
#define SPEC(n, k, m, h, d, t) SPECX(n, k, m, h, d, t, 0, 0)
  SPEC("host", OPT_STRING, "ADDR", "address to bind (0.0.0.0 or :: for all)", "127.0.0.1", &o->host);
  SPEC("port", OPT_PORT, "N", "TCP port; 0 picks a free one", "8080", &o->port);
  SPEC("static-dir", OPT_STRING, "DIR", "directory served over HTTP (the chat page)",
       CHATWS_EXAMPLE_WEB_DIR, &o->static_dir);
  SPECX("no-static", OPT_FLAG, NULL, "serve no files, WebSocket only", "off", &o->static_dir, 0, 0);
  SPEC("history", OPT_STRING, "FILE", "SQLite file for durable chat history", "in memory",
       &o->history_path);
  SPECX("history-size", OPT_U32, "N", "messages kept per room", "50", &o->history_size, 1000000, 0);
  SPEC("redis", OPT_STRING, "URL",
       "cluster mode: share rooms with every server on this Redis, redis://[:password@]host[:port][/db]",
       "off, one node", &o->cluster_url);
  SPEC("node-name", OPT_STRING, "NAME", "this node's name in the cluster", "<hostname>:<pid>",
       &o->node_name);
  SPECX("cluster-retention", OPT_U32, "N", "entries kept per room stream in Redis (the since recovery window)",
        "max(history size, 1000)", &o->cluster_retention, UINT32_MAX, 0);
  SPECX("max-rooms", OPT_U32, "N", "chat rooms at once; new ones beyond get 503", "10000",
       &o->max_rooms, UINT32_MAX, 0);
  SPEC("max-idle-room-bytes", OPT_SIZE, "BYTES", "memory for rooms nobody is in", "64 MiB",
       &o->max_idle_room_bytes);
  SPECX("max-user-length", OPT_U32, "N", "characters in a user name", "64", &o->max_user_length,
       UINT32_MAX, 0);
  SPECX("max-text-length", OPT_U32, "N", "characters in a message", "4096", &o->max_text_length,
       UINT32_MAX, 0);
  SPECX("max-connections", OPT_U32, "N", "open connections; beyond: HTTP 503", "100000",
       &o->max_connections, UINT32_MAX, 0);
  SPECX("max-connections-per-ip", OPT_U32, "N",
       "connections per client address (IPv6: per prefix); beyond: HTTP 503", "unlimited",
       &o->max_connections_per_ip, UINT32_MAX, 0);
  SPECX("ipv6-prefix-length", OPT_U32, "BITS", "IPv6 clients count per-ip by this prefix (1..128)",
       "64", &o->ipv6_prefix_length, 128, 0);
  SPEC("max-message-size", OPT_SIZE, "BYTES", "bytes per WebSocket message; beyond: close 1009",
       "16 MiB", &o->max_message_size);
  SPEC("max-output-buffer", OPT_SIZE, "BYTES", "queued bytes per connection (--slow-consumer)",
       "1 MiB", &o->max_output_buffer);
  SPEC("socket-send-buffer", OPT_SNDBUF, "BYTES|auto",
       "SO_SNDBUF per connection (bounds what a client that never reads holds in the kernel); "
       "'auto': the kernel's autotuning", "96 KiB", &o->socket_send_buffer);
  SPEC("max-buffered-input", OPT_SIZE, "BYTES",
       "bytes of unfinished messages of all clients together", "4 x max-message-size",
       &o->max_buffered_input);
  SPEC("auth-secret", OPT_STRING, "FILE",
       "admit only upgrades with a token HMAC-SHA256(secret, '<user>.<expiry>') (?token= or the "
       "chatws_token cookie) and post as <user>; python -m chatws token makes one",
       "off", &a->auth_secret);
  SPEC("allowed-origin", OPT_ORIGIN, "ORIGIN",
       "accept handshakes only from this Origin (repeatable; others get 403)", "any", NULL);
  SPEC("slow-consumer", OPT_SLOW, "close|drop",
       "a client past --max-output-buffer: close it (1008) or drop its messages", "close",
       &o->slow_consumer_policy);
  SPEC("handshake-timeout", OPT_SECONDS, "SECONDS", "the HTTP request must arrive within (408)",
       "10", &o->handshake_timeout_ms);
  SPEC("idle-timeout", OPT_SECONDS, "SECONDS", "silent this long: ping, then close; 'off'", "60",
       &o->idle_timeout_ms);
  SPEC("close-timeout", OPT_SECONDS, "SECONDS", "wait for a client's close reply; 'off'", "5",
       &o->close_timeout_ms);
  SPEC("drain-timeout", OPT_SECONDS, "SECONDS", "a graceful stop waits for clients; 'off'", "5",
       &o->drain_timeout_ms);
  SPEC("max-messages-per-second", OPT_RATE, "N|off",
       "chat messages per connection per second; more get an error frame", "20",
       &o->max_messages_per_second);
  SPEC("message-burst", OPT_INT, "N", "chat messages a connection may send at once", "40",
       &o->message_burst);
  SPEC("compression", OPT_COMPRESSION, "shared|dedicated|off",
       "permessage-deflate: one deflate per broadcast frame, a window per connection, or none",
       "shared", &o->compression);
  SPECX("compression-threshold", OPT_U32, "BYTES", "messages below this go out uncompressed", "128",
       &o->compression_threshold, UINT32_MAX, 0);
  SPEC("threads", OPT_THREADS, "N", "event loops, one thread each (0: one per core)", "1",
       &o->threads);
  SPEC("accept-mode", OPT_ACCEPT, "reuseport|handoff",
       "threads > 1: every loop listens, or loop 0 hands each one to the least loaded",
       "reuseport", &o->accept_mode);
  SPECX("verbose", OPT_FLAG, NULL, "also print the library's debug lines", "off", &a->verbose, 0, 1);
  SPEC("tls-cert", OPT_STRING, "FILE", "PEM certificate chain: https:// and wss:// (SIGHUP reloads)",
       "none (plain)", &o->tls_cert_file);
  SPEC("tls-key", OPT_STRING, "FILE", "PEM private key of the certificate", "none",
       &o->tls_key_file);
  SPEC("tls-key-passphrase", OPT_STRING, "SOURCE", "pass:TEXT, env:VARIABLE or file:PATH", "none",
       &o->tls_key_passphrase);
  SPEC("tls-min-version", OPT_TLS_VER, "1.2|1.3", "oldest TLS version accepted", "1.2",
       &o->tls_min_version);
  SPEC("tls-ciphers", OPT_STRING, "LIST", "TLS 1.2 cipher list (OpenSSL syntax)",
       "ECDHE with AES-GCM or ChaCha20", &o->tls_ciphers);
  SPEC("tls-ciphersuites", OPT_STRING, "LIST", "TLS 1.3 cipher suites",
       "AES-128-GCM, AES-256-GCM, ChaCha20", &o->tls_ciphersuites);
  SPECX("no-tls-session-tickets", OPT_FLAG, NULL, "no session resumption by ticket", "tickets on",
       &o->tls_session_tickets, 0, -1);
  SPEC("metrics-port", OPT_METRICS, "N",
       "serve /metrics, /healthz, /readyz on --metrics-host:N (0: a free port)", "off", NULL);
  SPEC("metrics-host", OPT_STRING, "ADDR", "address of the metrics listener", "127.0.0.1",
       &a->metrics_host);
  SPEC("help", OPT_HELP, NULL, "print this help and exit", NULL, NULL);
#undef SPEC
#undef SPECX
  *n = i;
}

#define MAX_SPECS 48

static void usage(FILE* out, const char* argv0, const struct opt_spec* s, size_t n) {
  size_t i;
  fprintf(out,
          "usage: %s [options]\n"
          "The chatws chat server: the chat page over HTTP and the chat over WebSocket\n"
          "(subprotocols chatws.v1 and json; rooms at /rooms/NAME) on one port.\n\n",
          argv0);
  for (i = 0; i < n; i++) {
    char head[64];
    snprintf(head, sizeof head, "--%s%s%s", s[i].name, s[i].metavar ? " " : "",
             s[i].metavar ? s[i].metavar : "");
    fprintf(out, "  %-32s %s", head, s[i].help);
    if (s[i].default_text) fprintf(out, " (default: %s)", s[i].default_text);
    fputc('\n', out);
  }
}

static int bad_value(const char* argv0, const char* name, const char* value, const char* want) {
  fprintf(stderr, "%s: --%s: bad value '%s' (%s)\n", argv0, name, value, want);
  return 2;
}

static int parse_ulong(const char* s, unsigned long long min, unsigned long long max,
                       unsigned long long* out) {
  char* end = NULL;
  unsigned long long v;
  if (s[0] < '0' || s[0] > '9') return -1; /* no sign, no blank */
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

/* Seconds (fractions allowed) to milliseconds, "off" to -1 (disabled). */
static int parse_seconds(const char* s, int* ms) {
  char* end = NULL;
  double v;
  if (strcmp(s, "off") == 0) {
    *ms = -1;
    return 0;
  }
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v * 1000.0 > (double)INT_MAX)
    return -1;
  *ms = (int)(v * 1000.0 + 0.999); /* rounded up: a tiny timeout is not 0 (the default) */
  return 0;
}

static int apply(struct server_args* a, const struct opt_spec* sp, const char* argv0,
                 const char* arg) {
  unsigned long long v;
  switch (sp->kind) {
    case OPT_STRING: *(const char**)sp->target = arg; return 0;
    case OPT_PORT:
      if (parse_ulong(arg, 0, 65535, &v) != 0)
        return bad_value(argv0, sp->name, arg, "an integer 0..65535");
      *(uint16_t*)sp->target = (uint16_t)v;
      return 0;
    case OPT_RATE:
      if (strcmp(arg, "off") == 0) {
        *(int*)sp->target = -1;
        return 0;
      }
      /* fall through */
    case OPT_INT:
      if (parse_ulong(arg, 1, INT_MAX, &v) != 0)
        return bad_value(argv0, sp->name, arg,
                         sp->kind == OPT_RATE ? "an integer 1..2147483647 or 'off'" : "an integer 1..2147483647");
      *(int*)sp->target = (int)v;
      return 0;
    case OPT_SNDBUF:
      if (strcmp(arg, "auto") == 0) {
        *(int*)sp->target = -1;
        return 0;
      }
      if (parse_ulong(arg, 1, INT_MAX, &v) != 0)
        return bad_value(argv0, sp->name, arg, "a positive number of bytes, or 'auto'");
      *(int*)sp->target = (int)v;
      return 0;
    case OPT_METRICS:
      if (parse_ulong(arg, 0, 65535, &v) != 0)
        return bad_value(argv0, sp->name, arg, "an integer 0..65535");
      a->metrics_on = 1; /* the listener is on, port 0 included */
      a->opts.metrics_port = (int)v;
      return 0;
    case OPT_U32:
      if (parse_ulong(arg, 1, sp->max, &v) != 0) {
        char want[64];
        snprintf(want, sizeof want, "an integer 1..%lu", sp->max);
        return bad_value(argv0, sp->name, arg, want);
      }
      *(uint32_t*)sp->target = (uint32_t)v;
      return 0;
    case OPT_SIZE:
      if (parse_ulong(arg, 1, SIZE_MAX, &v) != 0)
        return bad_value(argv0, sp->name, arg, "a positive number of bytes");
      *(size_t*)sp->target = (size_t)v;
      return 0;
    case OPT_SECONDS:
      if (parse_seconds(arg, (int*)sp->target) != 0)
        return bad_value(argv0, sp->name, arg, "seconds > 0, or 'off'");
      return 0;
    case OPT_ORIGIN: {
      size_t used = strlen(a->origins), add = strlen(arg);
      if (add == 0 || strchr(arg, ',') != NULL)
        return bad_value(argv0, sp->name, arg, "one Origin, e.g. https://chat.example");
      if (used + add + 2 > sizeof a->origins)
        return bad_value(argv0, sp->name, arg, "too many origins in all");
      if (used) strcat(a->origins, ",");
      strcat(a->origins, arg);
      a->opts.allowed_origins = a->origins;
      return 0;
    }
    case OPT_SLOW:
      if (strcmp(arg, "close") == 0) *(int*)sp->target = CHATWS_SLOW_CLOSE;
      else if (strcmp(arg, "drop") == 0) *(int*)sp->target = CHATWS_SLOW_DROP;
      else return bad_value(argv0, sp->name, arg, "close or drop");
      return 0;
    case OPT_TLS_VER:
      if (strcmp(arg, "1.2") == 0) *(int*)sp->target = CHATWS_TLS_1_2;
      else if (strcmp(arg, "1.3") == 0) *(int*)sp->target = CHATWS_TLS_1_3;
      else return bad_value(argv0, sp->name, arg, "1.2 or 1.3");
      return 0;
    case OPT_COMPRESSION:
      if (strcmp(arg, "shared") == 0) *(int*)sp->target = CHATWS_COMPRESSION_SHARED;
      else if (strcmp(arg, "dedicated") == 0) *(int*)sp->target = CHATWS_COMPRESSION_DEDICATED;
      else if (strcmp(arg, "off") == 0) *(int*)sp->target = CHATWS_COMPRESSION_OFF;
      else return bad_value(argv0, sp->name, arg, "shared, dedicated or off");
      return 0;
    case OPT_ACCEPT:
      if (strcmp(arg, "reuseport") == 0) *(int*)sp->target = CHATWS_ACCEPT_REUSEPORT;
      else if (strcmp(arg, "handoff") == 0) *(int*)sp->target = CHATWS_ACCEPT_HANDOFF;
      else return bad_value(argv0, sp->name, arg, "reuseport or handoff");
      return 0;
    case OPT_THREADS:
      if (parse_ulong(arg, 0, 256, &v) != 0)
        return bad_value(argv0, sp->name, arg, "an integer 0..256 (0: one per core)");
      *(int*)sp->target = v == 0 ? -1 : (int)v;
      return 0;
    case OPT_FLAG:
      if (sp->target == &a->opts.static_dir) a->opts.static_dir = NULL;
      else *(int*)sp->target = sp->flag_value;
      return 0;
    case OPT_HELP: return 1;
  }
  return 2;
}

static int parse_options(struct server_args* a, int argc, char** argv) {
  struct opt_spec specs[MAX_SPECS];
  struct option longs[MAX_SPECS + 1];
  size_t n, i;
  int c, idx, rc;

  build_specs(a, specs, &n);
  for (i = 0; i < n; i++) {
    int takes = specs[i].kind != OPT_FLAG && specs[i].kind != OPT_HELP;
    longs[i] = (struct option){specs[i].name, takes ? required_argument : no_argument, NULL, 0};
  }
  longs[n] = (struct option){NULL, 0, NULL, 0};

  /* getopt names an unknown option or a missing value itself. */
  while ((idx = -1, c = getopt_long(argc, argv, "", longs, &idx)) != -1) {
    if (c != 0 || idx < 0) {
      fprintf(stderr, "%s: see --help for the options\n", argv[0]);
      return 2;
    }
    rc = apply(a, &specs[idx], argv[0], optarg);
    if (rc == 1) {
      usage(stdout, argv[0], specs, n);
      return 1;
    }
    if (rc != 0) return rc;
  }
  if (optind != argc) {
    fprintf(stderr, "%s: unexpected argument '%s' (options only; see --help)\n", argv[0],
            argv[optind]);
    return 2;
  }
  if ((a->opts.tls_cert_file == NULL) != (a->opts.tls_key_file == NULL)) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", argv[0]);
    return 2;
  }
  if (a->metrics_on) a->opts.metrics_host = a->metrics_host ? a->metrics_host : "127.0.0.1";
  return 0;
}

#endif
