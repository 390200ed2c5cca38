/*
 * echo_server -- the smallest useful libchatws host, driven by the host's own
 * poll() loop (the pattern for embedding chatws in an existing event loop).
 *
 *   echo_server [PORT] [--broadcast]
 *
 * Every message is sent back to its sender, or with --broadcast to every
 * connected client. Ctrl-C stops it gracefully.
 */
#define _POSIX_C_SOURCE 200809L

#include <chatws.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

static void on_message(chatws_server* server, chatws_conn_id conn, const char* data, size_t len,
                       int is_binary, void* user) {
  int opcode = is_binary ? CHATWS_BINARY : CHATWS_TEXT;
  (void)user;
  if (broadcast_mode)
    chatws_broadcast(server, data, len, opcode, 0);
  else
    chatws_send(server, conn, data, len, opcode);
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
    if (strcmp(argv[i], "--broadcast") == 0)
      broadcast_mode = 1;
    else
      opts.port = (uint16_t)atoi(argv[i]);
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
