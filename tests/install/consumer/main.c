/* Uses the installed header and library: the header matches the library,
 * and a server can be created, bound and destroyed. */
#include <chatws.h>

#include <stdio.h>
#include <string.h>

int main(void) {
  chatws_options opts;
  chatws_server* server = NULL;
  int rc;

  if (chatws_version_number() != CHATWS_VERSION_NUMBER ||
      strcmp(chatws_version(), CHATWS_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", CHATWS_VERSION_STRING, chatws_version());
    return 1;
  }
  chatws_options_init(&opts);
  rc = chatws_server_create(&opts, &server);
  if (rc != CHATWS_OK) {
    fprintf(stderr, "create: %s: %s\n", chatws_strerror(rc), chatws_last_error());
    return 1;
  }
  if (chatws_server_port(server) <= 0) {
    fprintf(stderr, "no port\n");
    return 1;
  }
  chatws_server_destroy(server);
  printf("chatws ok %s\n", chatws_version());
  return 0;
}
