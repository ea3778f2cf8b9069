/* `kvmhost run`'s option parser on its own (it has no side effects):
 * defaults, values accepted and refused with their messages, disks, CPU
 * pins and lists, and the host policies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/options.h"
#include "util/util.h"

static struct run_options o;
static struct error err;

static int parse(int argc, const char **argv)
{
	run_options_free(&o); /* the previous parse's */
	run_options_default(&o);
	err = (struct error){0};
	return run_options_parse(&o, argc, (char **)argv, &err);
}

#define PARSE(...)                                                                                 \
	({                                                                                         \
		const char *argv_[] = {"run", __VA_ARGS__};                                        \
		parse((int)(sizeof(argv_) / sizeof(argv_[0])), argv_);                             \
	})

static void defaults(void **state)
{
	(void)state;
	const char *argv[] = {"run"};
	assert_int_equal(parse(1, argv), 0);
	assert_int_equal(o.vm.cpus, 2);
	assert_int_equal(o.vm.memory_mib, 64);
	assert_int_equal(o.console, CONSOLE_STDIO);
	assert_int_equal(o.on_cpu_offline, OFFLINE_MIGRATE);
	assert_int_equal(o.pins.nr, 0);
	assert_string_equal(o.name, "");
}

static void good_options(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--name", "web-1", "--cpus", "4", "--memory", "128", "--console",
			       "none", "--socket", "/tmp/x.sock", "--on-cpu-offline", "pause"),
			 0);
	assert_string_equal(o.name, "web-1");
	assert_int_equal(o.vm.cpus, 4);
	assert_int_equal(o.vm.memory_mib, 128);
	assert_int_equal(o.console, CONSOLE_NONE);
	assert_string_equal(o.socket_path, "/tmp/x.sock");
	assert_int_equal(o.on_cpu_offline, OFFLINE_PAUSE);
	assert_int_equal(PARSE("--console", "/tmp/console.log"), 0);
	assert_int_equal(o.console, CONSOLE_FILE);
	assert_string_equal(o.console_path, "/tmp/console.log");
}

static void bad_cpus(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--cpus", "0"), -EINVAL);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(PARSE("--cpus", "100000"), -EINVAL);
	assert_int_equal(PARSE("--cpus", "two"), -EINVAL);
	assert_non_null(strstr(err.msg, "not a number"));
	assert_int_equal(PARSE("--cpus", "-1"), -EINVAL);
	assert_int_equal(PARSE("--cpus", "4x"), -EINVAL);
	assert_int_equal(PARSE("--cpus", ""), -EINVAL);
	assert_int_equal(PARSE("--cpus"), -EINVAL);
	assert_non_null(strstr(err.msg, "needs a value"));
}

static void bad_memory(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--memory", "0"), -EINVAL);
	assert_int_equal(PARSE("--memory", "99999999999999999999"), -EINVAL);
	assert_int_equal(PARSE("--memory", "18446744073709551615"), -EINVAL);
	assert_int_equal(PARSE("--memory", "1G"), -EINVAL);
	assert_int_equal(PARSE("--memory", " 64"), -EINVAL);
	assert_int_equal(PARSE("--memory", "64", "--memory", "32"), 0);
	assert_int_equal(o.vm.memory_mib, 32);
}

static void cpu_pin(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--cpus", "3", "--cpu-pin", "0=1,3,1=2,2=0-1"), 0);
	assert_int_equal(o.pins.nr, 3);
	assert_true(CPU_ISSET(1, &o.pins.sets[0]));
	assert_true(CPU_ISSET(3, &o.pins.sets[0]));
	assert_int_equal(CPU_COUNT(&o.pins.sets[0]), 2);
	assert_int_equal(CPU_COUNT(&o.pins.sets[1]), 1);
	assert_true(CPU_ISSET(2, &o.pins.sets[1]));
	assert_int_equal(CPU_COUNT(&o.pins.sets[2]), 2);
	/* Repeated option adds vCPUs; one not named stays unpinned. */
	assert_int_equal(PARSE("--cpus", "3", "--cpu-pin", "0=1", "--cpu-pin", "2=0"), 0);
	assert_int_equal(o.pins.nr, 3);
	assert_int_equal(CPU_COUNT(&o.pins.sets[1]), 0);
	assert_true(CPU_ISSET(0, &o.pins.sets[2]));

	assert_int_equal(PARSE("--cpu-pin", "5=1"), -EINVAL);
	assert_non_null(strstr(err.msg, "does not exist"));
	assert_int_equal(PARSE("--cpu-pin", "1"), -EINVAL);
	assert_int_equal(PARSE("--cpu-pin", "a=1"), -EINVAL);
	assert_int_equal(PARSE("--cpu-pin", "0="), -EINVAL);
	assert_int_equal(PARSE("--cpu-pin", "0=3-1"), -EINVAL);
	assert_int_equal(PARSE("--cpu-pin", "0=99999"), -EINVAL);
	assert_int_equal(PARSE("--cpu-pin", ""), -EINVAL);
}

static void bad_misc(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--bogus"), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown option"));
	assert_int_equal(PARSE("extra"), -EINVAL);
	assert_non_null(strstr(err.msg, "unexpected argument"));
	assert_int_equal(PARSE("--name", "a/b"), -EINVAL);
	assert_int_equal(PARSE("--name", ""), -EINVAL);
	assert_int_equal(PARSE("--name", "../x"), -EINVAL);
	assert_int_equal(PARSE("--name",
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
			 -EINVAL);
	assert_int_equal(PARSE("--on-cpu-offline", "explode"), -EINVAL);
	assert_int_equal(PARSE("--console", ""), -EINVAL);
	assert_int_equal(PARSE("--vmm-cpus", "x"), -EINVAL);
	assert_int_equal(PARSE("--guest-mode", "nope"), -EINVAL);
	assert_non_null(strstr(err.msg, "ring0-bench"));
	assert_int_equal(PARSE("--disk", ",ro"), -EINVAL);
	assert_int_equal(PARSE("--disk", "x.img,fast"), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown disk option"));
	assert_int_equal(PARSE("--initrd", "x"), -EINVAL);
	assert_non_null(strstr(err.msg, "need --kernel"));
}

static void disks_and_help(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--disk", "a.img,ro,id=boot", "--disk", "b.img"), 0);
	assert_int_equal(o.vm.nr_disks, 2);
	assert_string_equal(o.vm.disks[0].path, "a.img");
	assert_true(o.vm.disks[0].ro);
	assert_string_equal(o.vm.disks[0].id, "boot");
	assert_string_equal(o.vm.disks[1].path, "b.img");
	assert_false(o.vm.disks[1].ro);
	/* A comma in the path is written "\\,"; a backslash before it "\\\\". */
	assert_int_equal(PARSE("--disk", "/v/a\\,b.img,ro", "--disk", "c\\\\,id=x"), 0);
	assert_string_equal(o.vm.disks[0].path, "/v/a,b.img");
	assert_true(o.vm.disks[0].ro);
	assert_string_equal(o.vm.disks[1].path, "c\\");
	assert_string_equal(o.vm.disks[1].id, "x");
	assert_int_equal(PARSE("--guest-mode", "ring0-bench", "--on-host-sleep", "ignore"), 0);
	assert_int_equal(o.guest.mode, GUEST_MODE_RING0_BENCH);
	assert_int_equal(o.on_host_sleep, HOST_SLEEP_IGNORE);
	assert_int_equal(PARSE("--help"), 0);
	assert_true(o.help);
}

static void host_shutdown_and_managed_save(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--name", "a"), 0);
	assert_false(o.shutdown_policy_given); /* the default is decided at run */
	assert_int_equal(PARSE("--on-host-shutdown", "poweroff", "--discard-saved"), 0);
	assert_true(o.shutdown_policy_given);
	assert_int_equal(o.on_host_shutdown, SHUTDOWN_POWEROFF);
	assert_true(o.discard_saved);
	assert_int_equal(PARSE("--on-host-shutdown", "ignore", "--restore", "x.kvmh"), 0);
	assert_int_equal(o.on_host_shutdown, SHUTDOWN_IGNORE);
	assert_int_not_equal(PARSE("--on-host-shutdown", "hibernate"), 0);
	assert_non_null(strstr(err.msg, "--on-host-shutdown"));
	/* A managed save brings its own guest: the command line's is dropped. */
	assert_int_equal(PARSE("--cpus", "3", "--disk", "d.img", "--memory", "128"), 0);
	o.vm.name = "kept";
	run_options_forget_guest(&o);
	assert_int_equal(o.vm.cpus, 2);
	assert_int_equal(o.vm.memory_mib, 64);
	assert_int_equal(o.vm.nr_disks, 0);
	assert_null(o.guest_option);
	assert_string_equal(o.vm.name, "kept");
}

static void cpu_lists(void **state)
{
	(void)state;
	cpu_set_t s;
	char buf[64];
	assert_int_equal(parse_cpu_list("0-2,5,7-8", &s), 0);
	assert_string_equal(format_cpu_list(&s, buf, sizeof(buf)), "0-2,5,7-8");
	assert_int_equal(parse_cpu_list("3+1", &s), 0);
	assert_string_equal(format_cpu_list(&s, buf, sizeof(buf)), "1,3");
	assert_int_not_equal(parse_cpu_list("", &s), 0);
	assert_int_not_equal(parse_cpu_list(",", &s), 0);
	assert_int_not_equal(parse_cpu_list("1-", &s), 0);
	assert_int_not_equal(parse_cpu_list("100000", &s), 0);
	uint64_t v;
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_int_not_equal(parse_u64("18446744073709551616", &v), 0);
	assert_int_not_equal(parse_u64("+1", &v), 0);
}

/* --device KIND[,OPTIONS]: kinds from the board's table, up to its slots. */
static void devices(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--device", "rng", "--device", "rng,later"), 0);
	assert_int_equal(o.vm.nr_virtio, 2);
	assert_string_equal(o.vm.virtio[0].kind, "rng");
	assert_string_equal(o.vm.virtio[0].options, "");
	assert_string_equal(o.vm.virtio[1].options, "later"); /* the kind's create judges */
	assert_int_equal(PARSE("--device", "gpu"), -EINVAL);
	assert_non_null(strstr(err.msg, "--device gpu: no device kind 'gpu' (there are: rng)"));
	assert_int_equal(PARSE("--device", ""), -EINVAL);
	assert_int_equal(PARSE("--device", ",x"), -EINVAL);
	assert_int_equal(PARSE("--device", "averyveryverylongkind"), -EINVAL);
	assert_int_equal(PARSE("--device", "rng", "--device", "rng", "--device", "rng", "--device",
			       "rng", "--device", "rng"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "at most 4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(good_options),
		cmocka_unit_test(bad_cpus),
		cmocka_unit_test(bad_memory),
		cmocka_unit_test(cpu_pin),
		cmocka_unit_test(bad_misc),
		cmocka_unit_test(cpu_lists),
		cmocka_unit_test(disks_and_help),
		cmocka_unit_test(host_shutdown_and_managed_save),
		cmocka_unit_test(devices),
	};
	int r = cmocka_run_group_tests_name("options", tests, NULL, NULL);
	run_options_free(&o);
	return r;
}
