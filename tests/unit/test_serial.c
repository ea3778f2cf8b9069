#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/serial.h"

static uint8_t rd(struct serial *s, uint64_t off)
{
	uint8_t v = 0;
	serial_ops.access(s, 0, off, &v, 1, false);
	return v;
}

static void wr(struct serial *s, uint64_t off, uint8_t v)
{
	serial_ops.access(s, 0, off, &v, 1, true);
}

static void transmit_and_registers(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct serial s;
	serial_init(&s, p[1], NULL, 4);
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
	serial_ops.access(&s, 0, 0, wide, 4, true);
	serial_ops.access(&s, 0, 0, wide, 4, false);
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
	serial_init(&s, -1, NULL, 4);
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

static const struct device_host fake_host = {.set_irq = fake_irq};

static void interrupts(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1, &fake_host, 4);
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

/* A UART mid-conversation: registers set, input waiting, an interrupt
 * pending. Saved and restored into a fresh UART, the driver sees the same. */
static void save_restore(void **state)
{
	(void)state;
	struct serial a, b;
	serial_init(&a, -1, &fake_host, 4);
	wr(&a, 3, 0x80); /* DLAB: divisor 0x0c01 */
	wr(&a, 0, 0x01);
	wr(&a, 1, 0x0c);
	wr(&a, 3, 0x03);
	wr(&a, 7, 0xa5);
	wr(&a, 4, 0x08); /* OUT2 */
	wr(&a, 1, 0x01); /* RDI */
	serial_receive(&a, (const uint8_t *)"xyz", 3);
	assert_int_equal(rd(&a, 0), 'x'); /* the FIFO does not start at 0 */
	assert_int_equal(level, 1);
	struct state_writer w = {0};
	serial_ops.save(&a, &w);
	assert_int_equal(w.err, 0);

	level = -1;
	serial_init(&b, -1, &fake_host, 4);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(serial_ops.restore(&b, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(level, 1); /* the line is raised again */
	assert_int_equal(rd(&b, 3), 0x03);
	assert_int_equal(rd(&b, 7), 0xa5);
	assert_int_equal(rd(&b, 1), 0x01);
	assert_int_equal(rd(&b, 2) & 0x0f, 0x04);
	assert_int_equal(rd(&b, 0), 'y');
	assert_int_equal(rd(&b, 0), 'z');
	assert_int_equal(rd(&b, 5) & 1, 0);
	wr(&b, 3, 0x83);
	assert_int_equal(rd(&b, 0), 0x01);
	assert_int_equal(rd(&b, 1), 0x0c);

	/* Every truncation of the stream is refused, and leaves b as it was. */
	for (size_t n = 0; n < w.len; n++) {
		struct state_reader t = state_reader_init(w.buf, n);
		assert_int_not_equal(serial_ops.restore(&b, &t), 0);
	}
	/* A FIFO length beyond the FIFO is refused. */
	uint8_t *bad = malloc(w.len);
	memcpy(bad, w.buf, w.len);
	uint32_t huge = SERIAL_RX_SIZE + 1;
	memcpy(bad + 4 + 10 + 1, &huge, 4);
	struct state_reader t = state_reader_init(bad, w.len);
	assert_int_not_equal(serial_ops.restore(&b, &t), 0);
	free(bad);
	state_writer_free(&w);
	serial_destroy(&a);
	serial_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transmit_and_registers),
		cmocka_unit_test(receive),
		cmocka_unit_test(interrupts),
		cmocka_unit_test(save_restore),
	};
	return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
