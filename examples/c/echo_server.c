/*
 * echo_server -- the smallest useful libchatws host, driven by the host's own
 * poll() loop (the pattern for embedding chatws in an existing event loop).
 *
 *   echo_server [--broadcast] [--threads N] [PORT]   (echo_server --help: the usage)
 *
 * Every message is sent back to its sender, or with --broadcast to every
 * connected client. Ctrl-C stops it gracefully.
 */
#define _POSIX_C_SOURCE 200809L

#include <chatws.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int broadcast_mode = 0;
/* Self-pipe: the signal handler only write()s here (async-signal-safe);
 * the loop sees it readable and calls chatws_server_stop(). */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  char b = (char)sig;
  (void)!write(signal_pipe[1], &b, 1);
  errno = saved;
}

/* --threads N > 1: waits for the signal (or the end of run) on the pipe. */
static void* stop_on_signal(void* server) {
  char b;
  (void)!read(signal_pipe[0], &b, 1);
  chatws_server_stop(server);
  return NULL;
}

static void on_message(chatws_server* server, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  int opcode = is_binary ? CHATWS_BINARY : CHATWS_TEXT;
  (void)user;
  if (broadcast_mode)
    chatws_broadcast(server, data, len, opcode, 0);
  else
    chatws_send(server, conn, data, len, opcode);
}

static void usage(FILE* out, const char* argv0) {
  fprintf(out,
          "usage: %s [--broadcast] [--threads N] [PORT]\n"
          "An echo WebSocket server on ws://127.0.0.1:PORT/ (any subprotocol-less client).\n"
          "  PORT          TCP port, 0 picks a free one (default: 9001)\n"
          "  --broadcast   send every message to every client, not only back (default: off)\n"
          "  --threads N   event loops, one thread each; 0: one per core (default: 1, driven\n"
          "                by this program's own poll() loop; more: by chatws_server_run())\n"
          "  --help        print this help and exit\n",
          argv0);
}

int main(int argc, char** argv) {
  chatws_options opts;
  chatws_server* server = NULL;
  struct sigaction sa;
  int i, rc;

  chatws_options_init(&opts);
  opts.port = 9001;
  opts.on_message = on_message;
  for (i = 1; i < argc; i++) {
    char* end = NULL;
    long port;
    if (strcmp(argv[i], "--broadcast") == 0) {
      broadcast_mode = 1;
      continue;
    }
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      long n;
      errno = 0;
      n = strtol(argv[++i], &end, 10);
      if (errno != 0 || *end != '\0' || n < 0 || n > 256) {
        fprintf(stderr, "%s: --threads: bad value '%s' (an integer 0..256)\n", argv[0], argv[i]);
        return 2;
      }
      opts.threads = n == 0 ? -1 : (int)n;
      continue;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    }
    if (argv[i][0] == '-') {
      fprintf(stderr, "%s: unknown option '%s' (see --help)\n", argv[0], argv[i]);
      return 2;
    }
    errno = 0;
    port = strtol(argv[i], &end, 10);
    if (errno != 0 || end == argv[i] || *end != '\0' || port < 0 || port > 65535) {
      fprintf(stderr, "%s: PORT: bad value '%s' (an integer 0..65535)\n", argv[0], argv[i]);
      return 2;
    }
    opts.port = (uint16_t)port;
  }

  if (pipe(signal_pipe) != 0) {
    perror("pipe");
    return 1;
  }
  fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  rc = chatws_server_create(&opts, &server);
  if (rc != CHATWS_OK) {
    fprintf(stderr, "cannot start: %s: %s\n", chatws_strerror(rc), chatws_last_error());
    return 1;
  }
  printf("echo server on ws://127.0.0.1:%d/%s\n", chatws_server_port(server),
         broadcast_mode ? " (broadcast)" : "");
  fflush(stdout);

  if (opts.threads != 1) {
    /* Several loops run on their own threads (chatws_server_poll() is not
     * available then): this thread runs them, a helper waits for the signal. */
    pthread_t stopper;
    if (pthread_create(&stopper, NULL, stop_on_signal, server) != 0) {
      fprintf(stderr, "cannot start the signal thread\n");
      chatws_server_destroy(server);
      return 1;
    }
    rc = chatws_server_run(server);
    if (rc != CHATWS_OK) fprintf(stderr, "run: %s: %s\n", chatws_strerror(rc), chatws_last_error());
    chatws_server_stop(server);
    (void)!write(signal_pipe[1], "x", 1); /* the helper may still wait */
    pthread_join(stopper, NULL);
    chatws_server_destroy(server);
    return rc == CHATWS_OK ? 0 : 1;
  }
  for (;;) {
    struct pollfd fds[2] = {{chatws_server_fd(server), POLLIN, 0},
                            {signal_pipe[0], POLLIN, 0}};
    /* The timeout only bounds the wait: the server's fd also wakes us for its
     * timers, but a periodic poll costs nothing and guards against a missed one. */
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) {
      perror("poll");
      break;
    }
    if (fds[1].revents & POLLIN) {
      char b;
      (void)!read(signal_pipe[0], &b, 1);
      chatws_server_stop(server);
    }
    rc = chatws_server_poll(server, 0);
    if (rc == CHATWS_ESTOPPED || chatws_server_stopped(server)) break;
    if (rc < 0) {
      fprintf(stderr, "poll: %s: %s\n", chatws_strerror(rc), chatws_last_error());
      break;
    }
  }
  chatws_server_destroy(server);
  return 0;
}
