/*
 * The C ABI's static surface from plain C11: versions, error strings,
 * options defaults, argument validation. No socket traffic.
 */
#include "capi_test.h"

static void test_versions(void) {
  char expect[32];
  CHECK_EQ_INT(chatws_version_number(), CHATWS_VERSION_NUMBER);
  CHECK(strcmp(chatws_version(), CHATWS_VERSION_STRING) == 0);
  snprintf(expect, sizeof expect, "%d.%d.%d", CHATWS_VERSION_MAJOR, CHATWS_VERSION_MINOR,
           CHATWS_VERSION_PATCH);
  CHECK(strcmp(CHATWS_VERSION_STRING, expect) == 0);
  CHECK_EQ_INT(CHATWS_VERSION_NUMBER,
               CHATWS_VERSION_MAJOR * 10000 + CHATWS_VERSION_MINOR * 100 + CHATWS_VERSION_PATCH);
}

static void test_strerror(void) {
  /* Every documented code has its own non-empty description. */
  static const int codes[] = {CHATWS_OK,      CHATWS_EINVAL,   CHATWS_ENOMEM,  CHATWS_ENOCONN,
                              CHATWS_ETHREAD, CHATWS_ESTATE,   CHATWS_ESYSTEM, CHATWS_ETOOBIG,
                              CHATWS_EFULL,   CHATWS_ESTOPPED, CHATWS_ESTORAGE, CHATWS_EINTERNAL};
  const size_t n = sizeof codes / sizeof codes[0];
  const char* unknown = chatws_strerror(-12345);
  size_t i, j;
  CHECK(unknown != NULL && strcmp(unknown, "unknown error") == 0);
  CHECK(strcmp(chatws_strerror(12345), "unknown error") == 0);
  CHECK(strcmp(chatws_strerror(-12), "unknown error") == 0);
  for (i = 0; i < n; i++) {
    const char* s = chatws_strerror(codes[i]);
    CHECK(s != NULL);
    if (!s) continue;
    CHECK(s[0] != '\0');
    if (strcmp(s, "unknown error") == 0) {
      fprintf(stderr, "code %d has no description\n", codes[i]);
      test_failures++;
    }
    for (j = 0; j < i; j++) CHECK(strcmp(s, chatws_strerror(codes[j])) != 0);
  }
  /* The codes are the documented values: they are ABI. */
  CHECK_EQ_INT(CHATWS_EINVAL, -1);
  CHECK_EQ_INT(CHATWS_ESYSTEM, -6);
  CHECK_EQ_INT(CHATWS_EINTERNAL, -11);
}

/* A field "left at its initial value takes the default": init may write
 * either 0 or the documented default itself. */
#define CHECK_ZERO_OR(field, dflt) CHECK((field) == 0 || (field) == (dflt))

static void test_options_init(void) {
  chatws_options o;
  memset(&o, 0xab, sizeof o);
  chatws_options_init(&o);
  CHECK_EQ_INT(o.struct_size, sizeof(chatws_options));
  CHECK(o.host == NULL || strcmp(o.host, "127.0.0.1") == 0);
  CHECK_EQ_INT(o.port, 0);
  CHECK(o.static_dir == NULL);
  CHECK(o.subprotocols == NULL);
  CHECK(o.allowed_origins == NULL);
  CHECK(o.websocket_path_prefix == NULL);
  CHECK_ZERO_OR(o.max_request_size, 8192u);
  CHECK_ZERO_OR(o.max_message_size, 16u << 20);
  CHECK_ZERO_OR(o.max_fragments, 65536u);
  CHECK_ZERO_OR(o.max_output_buffer, 1u << 20);
  CHECK_ZERO_OR(o.max_connections, 100000u);
  CHECK_EQ_INT(o.max_connections_per_ip, 0);
  CHECK_EQ_INT(o.slow_consumer_policy, CHATWS_SLOW_CLOSE);
  CHECK_ZERO_OR(o.handshake_timeout_ms, 10000);
  CHECK_ZERO_OR(o.idle_timeout_ms, 60000);
  CHECK_ZERO_OR(o.close_timeout_ms, 5000);
  CHECK_ZERO_OR(o.drain_timeout_ms, 5000);
  CHECK(o.on_open == NULL && o.on_message == NULL && o.on_close == NULL && o.on_drain == NULL);
  CHECK(o.user == NULL);
  CHECK_EQ_INT(o.chat, 0);
  CHECK(o.history_path == NULL);
  CHECK_ZERO_OR(o.history_size, 50u);
  CHECK_ZERO_OR(o.max_user_length, 64u);
  CHECK_ZERO_OR(o.max_text_length, 4096u);
  CHECK(o.on_chat == NULL);
  CHECK_ZERO_OR(o.ipv6_prefix_length, 64u);
  CHECK_ZERO_OR(o.max_buffered_input, (size_t)64 << 20);
}

static void expect_create_fails(const chatws_options* o, int expected, const char* what) {
  chatws_server* s = (chatws_server*)&s; /* non-NULL garbage: must be reset */
  int rc = chatws_server_create(o, &s);
  if (rc != expected) fprintf(stderr, "create with %s\n", what);
  CHECK_EQ_INT(rc, expected);
  CHECK(s == NULL);
  CHECK(chatws_last_error()[0] != '\0');
  if (rc == CHATWS_OK) chatws_server_destroy(s);
}

static void test_bad_options(void) {
  chatws_options o;

  chatws_options_init(&o);
  o.slow_consumer_policy = 42;
  expect_create_fails(&o, CHATWS_EINVAL, "slow_consumer_policy 42");

  chatws_options_init(&o);
  o.ipv6_prefix_length = 129;
  expect_create_fails(&o, CHATWS_EINVAL, "ipv6_prefix_length 129");

  chatws_options_init(&o);
  o.socket_send_buffer = -2; /* -1 is the kernel's autotuning, 0 the default */
  expect_create_fails(&o, CHATWS_EINVAL, "socket_send_buffer -2");
  {
    chatws_server* s = NULL;
    chatws_options_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.socket_send_buffer = -1;
    CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_OK);
    chatws_server_destroy(s);
  }

  chatws_options_init(&o);
  o.struct_size = 0; /* not initialised with chatws_options_init() */
  expect_create_fails(&o, CHATWS_EINVAL, "struct_size 0");

  /* An unresolvable host: refused, as a bad option or as a failed lookup. */
  {
    chatws_server* s = NULL;
    int rc;
    chatws_options_init(&o);
    o.host = "not an address";
    rc = chatws_server_create(&o, &s);
    CHECK(rc == CHATWS_EINVAL || rc == CHATWS_ESYSTEM);
    CHECK(s == NULL);
    CHECK(chatws_last_error()[0] != '\0');
    if (rc == CHATWS_OK) chatws_server_destroy(s);
  }

}

/* Timeouts of -1 disable them: a valid configuration. */
static void test_disabled_timeouts(void) {
  chatws_options o;
  chatws_server* s = NULL;
  chatws_options_init(&o);
  o.handshake_timeout_ms = -1;
  o.idle_timeout_ms = -1;
  o.close_timeout_ms = -1;
  o.drain_timeout_ms = -1;
  CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_OK);
  CHECK(s != NULL);
  chatws_server_destroy(s);
}

/* The IPv6 prefix of the per-address limit: 1..128 are valid. */
static void test_ipv6_prefix_lengths(void) {
  unsigned bits[] = {1, 48, 64, 128};
  size_t i;
  for (i = 0; i < sizeof bits / sizeof bits[0]; ++i) {
    chatws_options o;
    chatws_server* s = NULL;
    chatws_options_init(&o);
    o.max_connections_per_ip = 4;
    o.ipv6_prefix_length = bits[i];
    CHECK_EQ_INT(chatws_server_create(&o, &s), CHATWS_OK);
    CHECK(s != NULL);
    chatws_server_destroy(s);
  }
}

static void test_null_arguments(void) {
  chatws_options o;
  chatws_options_init(&o);
  CHECK_EQ_INT(chatws_server_create(&o, NULL), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_server_stop(NULL), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_send(NULL, 1, "x", 1, CHATWS_TEXT), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_broadcast(NULL, "x", 1, CHATWS_TEXT, 0), CHATWS_EINVAL);
  CHECK_EQ_INT(chatws_close(NULL, 1, 1000, NULL), CHATWS_EINVAL);
  chatws_server_destroy(NULL); /* documented no-op */
}

int main(void) {
  /* Nothing has failed on this thread yet. */
  CHECK(chatws_last_error() != NULL && chatws_last_error()[0] == '\0');
  test_versions();
  test_strerror();
  test_options_init();
  test_bad_options();
  test_disabled_timeouts();
  test_ipv6_prefix_lengths();
  test_null_arguments();
  return test_finish("test_c_basics");
}
