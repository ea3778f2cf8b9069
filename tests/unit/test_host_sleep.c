/* How a host sleep is noticed after the fact: host_sleep_detect on
 * readings of BOOTTIME - MONOTONIC, which grows only while the host is
 * suspended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host/sleep.h"

static void detect(void **state)
{
	(void)state;
	const int64_t s = 1000000000;
	/* BOOTTIME - MONOTONIC only grows while the host is suspended. */
	assert_int_equal(host_sleep_detect(5 * s, 5 * s, s), 0);
	assert_int_equal(host_sleep_detect(5 * s, 5 * s + s / 2, s), 0);
	assert_int_equal(host_sleep_detect(5 * s, 65 * s, s), 60 * s);
	assert_int_equal(host_sleep_detect(5 * s, 6 * s, s), s);
	assert_int_equal(host_sleep_detect(5 * s, 4 * s, s), 0); /* never negative */
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(detect)};
	return cmocka_run_group_tests_name("host_sleep", tests, NULL, NULL);
}
