/* test_c_upgrade.c over TLS: see there. */
#define UPGRADE_OVER_TLS 1
#include "test_c_upgrade.c"
