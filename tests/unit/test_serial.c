#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/serial.h"

static uint8_t rd(struct serial *s, uint64_t off)
{
	uint8_t v = 0;
	serial_access(s, NULL, off, &v, 1, false);
	return v;
}

static void wr(struct serial *s, uint64_t off, uint8_t v)
{
	serial_access(s, NULL, off, &v, 1, true);
}

static void transmit_and_registers(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct serial s;
	serial_init(&s, p[1]);
	assert_int_equal(rd(&s, 5) & 0x60, 0x60); /* THR empty: a driver may send */
	wr(&s, 0, 'h');
	wr(&s, 0, 'i');
	char buf[4] = {0};
	assert_int_equal(read(p[0], buf, sizeof(buf)), 2);
	assert_string_equal(buf, "hi");
	/* Divisor latch hides THR/IER. */
	wr(&s, 3, 0x80);
	wr(&s, 0, 0x01);
	wr(&s, 1, 0x00);
	assert_int_equal(rd(&s, 0), 0x01);
	wr(&s, 3, 0x03);
	wr(&s, 7, 0x5a);
	assert_int_equal(rd(&s, 7), 0x5a);
	assert_int_equal(rd(&s, 3), 0x03);
	/* A wide access is not decoded and does not transmit. */
	uint8_t wide[4] = {'x', 'y', 'z', 'w'};
	serial_access(&s, NULL, 0, wide, 4, true);
	serial_access(&s, NULL, 0, wide, 4, false);
	assert_memory_equal(wide, "\xff\xff\xff\xff", 4);
	assert_int_equal(s.tx_bytes, 2);
	serial_destroy(&s);
	close(p[0]);
	close(p[1]);
}

static void receive(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1);
	assert_int_equal(rd(&s, 5) & 1, 0);
	assert_int_equal(serial_receive(&s, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(rd(&s, 5) & 1, 1);
	assert_int_equal(rd(&s, 0), 'a');
	assert_int_equal(rd(&s, 0), 'b');
	assert_int_equal(rd(&s, 5) & 1, 0);
	uint8_t lots[SERIAL_RX_SIZE + 10];
	memset(lots, 'x', sizeof(lots));
	assert_int_equal(serial_receive(&s, lots, sizeof(lots)), SERIAL_RX_SIZE);
	serial_destroy(&s);
}

static int level = -1, changes;

static void fake_irq(void *opaque, uint32_t gsi, bool l)
{
	(void)opaque;
	assert_int_equal(gsi, 4);
	level = l;
	changes++;
}

static void interrupts(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1);
	serial_set_irq(&s, fake_irq, NULL, 4);
	wr(&s, 1, 0x02); /* THRI enabled, but OUT2 still clear: no line */
	assert_int_equal(changes, 0);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x02);
	wr(&s, 1, 0x00);
	wr(&s, 4, 0x08); /* OUT2 */
	wr(&s, 1, 0x02); /* THR empty and THRI on: raised at once */
	assert_int_equal(level, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x02); /* reading IIR acknowledges THRI */
	assert_int_equal(level, 0);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x01);
	wr(&s, 0, 'a'); /* sent at once: empty again */
	assert_int_equal(level, 1);
	wr(&s, 1, 0x01); /* only RDI now */
	assert_int_equal(level, 0);
	serial_receive(&s, (const uint8_t *)"hi", 2);
	assert_int_equal(level, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x04);
	assert_int_equal(rd(&s, 0), 'h');
	assert_int_equal(level, 1);
	assert_int_equal(rd(&s, 0), 'i');
	assert_int_equal(level, 0);
	serial_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transmit_and_registers),
		cmocka_unit_test(receive),
		cmocka_unit_test(interrupts),
	};
	return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
