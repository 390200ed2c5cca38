/* test_c_sigpipe.c over TLS: see there. */
#define SIGPIPE_OVER_TLS 1
#include "test_c_sigpipe.c"
