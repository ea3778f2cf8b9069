/* The migration stream's receiving side, fed from memory: what a
 * well-behaved source sends lands where it should, and every malformed
 * message is refused with a message before anything is written out of
 * bounds. Also the address syntax and the CPU feature mask. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/cpu.h"
#include "migration/net.h"
#include "migration/stream.h"
#include "util/state.h"

#define PAGES 8

static struct error err;
static uint8_t ram[PAGES * MIG_PAGE];

struct input {
	struct state_writer w;
	size_t off;
};

static int read_input(void *opaque, void *buf, size_t n)
{
	struct input *in = opaque;
	if (n > in->w.len - in->off)
		return -32;
	memcpy(buf, in->w.buf + in->off, n);
	in->off += n;
	return 0;
}

static void msg(struct input *in, uint32_t type, const void *p, uint64_t len)
{
	struct mig_msg_hdr h = {.type = type, .len = len};
	state_put(&in->w, &h, sizeof(h));
	if (len)
		state_put(&in->w, p, len);
}

static void pages(struct input *in, uint64_t first, uint64_t n, uint8_t fill)
{
	struct mig_msg_hdr h = {.type = MIG_PAGES, .len = 8 + n * MIG_PAGE};
	state_put(&in->w, &h, sizeof(h));
	state_put(&in->w, &first, 8);
	for (uint64_t i = 0; i < n * MIG_PAGE; i++)
		state_put_u8(&in->w, fill);
}

static int receive(struct input *in, uint8_t **state, uint64_t *len)
{
	struct mig_receiver rx = {ram, sizeof(ram), read_input, in, 0, 0, 0};
	err = (struct error){0};
	return mig_receive_memory(&rx, state, len, &err);
}

static void pages_zero_runs_and_state(void **unused)
{
	(void)unused;
	struct input in = {0};
	uint8_t blob[100] = {1, 2, 3};
	uint64_t zero[2] = {1, 1};
	memset(ram, 0xee, sizeof(ram));
	pages(&in, 0, 2, 0x5a);
	pages(&in, PAGES - 1, 1, 0x77);
	msg(&in, MIG_ZERO, zero, sizeof(zero));
	msg(&in, MIG_STATE, blob, sizeof(blob));
	uint8_t *state = NULL;
	uint64_t len = 0;
	assert_int_equal(receive(&in, &state, &len), 0);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(state, blob, sizeof(blob));
	assert_int_equal(ram[0], 0x5a);
	assert_int_equal(ram[MIG_PAGE + 17], 0); /* zeroed after its data came */
	assert_int_equal(ram[2 * MIG_PAGE], 0xee);
	assert_int_equal(ram[sizeof(ram) - 1], 0x77);
	free(state);
	state_writer_free(&in.w);
}

static void refused(void (*build)(struct input *), const char *needle)
{
	struct input in = {0};
	uint8_t *state = NULL;
	uint64_t len;
	memset(ram, 0xee, sizeof(ram));
	build(&in);
	assert_int_equal(receive(&in, &state, &len), -EINVAL);
	assert_null(state);
	if (!strstr(err.msg, needle))
		fail_msg("'%s' does not say '%s'", err.msg, needle);
	state_writer_free(&in.w);
}

static void past_the_end(struct input *in)
{
	pages(in, PAGES - 1, 2, 1);
}
static void page_number_wraps(struct input *in)
{
	pages(in, UINT64_MAX, 1, 1);
}
static void not_whole_pages(struct input *in)
{
	uint8_t p[8 + 100] = {0};
	msg(in, MIG_PAGES, p, sizeof(p));
}
static void zero_past_the_end(struct input *in)
{
	uint64_t z[2] = {2, UINT64_MAX};
	msg(in, MIG_ZERO, z, sizeof(z));
}
static void huge_state(struct input *in)
{
	struct mig_msg_hdr h = {.type = MIG_STATE, .len = UINT64_MAX};
	state_put(&in->w, &h, sizeof(h));
}
static void peer_error(struct input *in)
{
	msg(in, MIG_ERROR, "disk full\n", 10);
}
static void wrong_type(struct input *in)
{
	msg(in, MIG_GO, NULL, 0);
}
static void cut_short(struct input *in)
{
	pages(in, 0, 1, 1);
	in->w.len -= 100;
}

static void malformed_messages(void **unused)
{
	(void)unused;
	refused(past_the_end, "outside the guest");
	refused(page_number_wraps, "outside the guest");
	refused(not_whole_pages, "not a run of");
	refused(zero_past_the_end, "outside the guest");
	refused(huge_state, "STATE");
	refused(peer_error, "disk full");
	refused(wrong_type, "unexpected GO");
	refused(cut_short, "ended inside a PAGES");
	for (size_t i = 0; i < sizeof(ram); i++)
		if (ram[i] != 0xee && i >= MIG_PAGE) /* only cut_short's page 0 was written */
			fail_msg("byte %zu written by a refused message", i);
}

static void hello_round_trip(void **unused)
{
	(void)unused;
	uint8_t config[40] = {9}, cpuid[48] = {1};
	struct mig_hello h = {.version = MIG_VERSION,
			      .nr_vcpus = 2,
			      .memory_size = 1 << 20,
			      .host_cpu = "test",
			      .config = config,
			      .config_len = sizeof(config),
			      .cpuid = cpuid,
			      .cpuid_len = sizeof(cpuid)};
	uint8_t *buf;
	uint64_t len;
	struct mig_hello got;
	assert_int_equal(mig_hello_build(&h, &buf, &len), 0);
	assert_int_equal(mig_hello_parse(buf, len, &got, &err), 0);
	assert_int_equal(got.nr_vcpus, 2);
	assert_memory_equal(got.config, config, sizeof(config));
	assert_int_equal(got.cpuid_len, sizeof(cpuid));
	for (uint64_t n = 0; n < len; n++)
		assert_int_equal(mig_hello_parse(buf, n, &got, &err), -EINVAL);
	buf[8] = 7; /* another version */
	assert_int_equal(mig_hello_parse(buf, len, &got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "version 7"));
	free(buf);
}

static void addresses(void **unused)
{
	(void)unused;
	struct mig_addr a;
	assert_int_equal(mig_addr_parse("unix:/run/x.sock", &a, &err), 0);
	assert_int_equal(a.kind, MIG_ADDR_UNIX);
	assert_string_equal(a.path, "/run/x.sock");
	assert_int_equal(mig_addr_parse("tcp:10.0.0.2:4444", &a, &err), 0);
	assert_string_equal(a.host, "10.0.0.2");
	assert_string_equal(a.port, "4444");
	assert_int_equal(mig_addr_parse("tcp:[::1]:80", &a, &err), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(mig_addr_parse("tcp::5000", &a, &err), 0);
	assert_string_equal(a.host, "");
	static const char *const bad[] = {
		"unix:relative", "tcp:host", "tcp:h:99999", "tcp:h:-1", "udp:h:1", "tcp:h:1x", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mig_addr_parse(bad[i], &a, &err), -EINVAL);
}

static void cpu_masks(void **unused)
{
	(void)unused;
	struct x86_cpu_mask m;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 2 * sizeof(c->entries[0]));
	c->nent = 2;
	c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ecx = ~0u, .edx = ~0u};
	c->entries[1] = (struct kvm_cpuid_entry2){.function = 7, .ebx = ~0u};
	assert_int_equal(x86_cpu_mask_parse("-cx16,-avx2", &m, &err), 0);
	x86_cpuid_apply_mask(c, &m);
	assert_int_equal(c->entries[0].ecx, ~0u & ~(1u << 13));
	assert_int_equal(c->entries[1].ebx, ~0u & ~(1u << 5));
	free(c);
	assert_int_equal(x86_cpu_mask_parse("x86-64-v2", &m, &err), 0);
	assert_false(m.clear[0] & (1u << 13)); /* cx16 is in v2 */
	assert_true(m.clear[0] & (1u << 28));  /* avx is not */
	assert_int_equal(x86_cpu_mask_parse("-bogus", &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cx16"));
	assert_int_equal(x86_cpu_mask_parse("+avx", &m, &err), -EINVAL);
	assert_int_equal(x86_cpu_mask_parse("x86-64-v5", &m, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pages_zero_runs_and_state),
		cmocka_unit_test(malformed_messages),
		cmocka_unit_test(hello_round_trip),
		cmocka_unit_test(addresses),
		cmocka_unit_test(cpu_masks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
