/* When a low battery calls for a save: battery_is_low against UPower's
 * State and WarningLevel values - a draining battery at critical or action
 * level only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host/battery.h"

/* UPower's Device.State: 1 charging, 2 discharging, 3 empty, 4 fully
 * charged, 5 pending charge, 6 pending discharge. WarningLevel: 1 none,
 * 2 discharging (UPS), 3 low, 4 critical, 5 action. */
static void only_draining_at_critical_or_action(void **state)
{
	(void)state;
	for (uint32_t s = 0; s <= 7; s++)
		for (uint32_t l = 0; l <= 7; l++) {
			bool draining = s == 2 || s == 3, level = l == 4 || l == 5;
			assert_int_equal(battery_is_low(l, s), draining && level);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(only_draining_at_critical_or_action),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
