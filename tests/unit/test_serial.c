/* The 16550A as a driver sees it: registers by <linux/serial_reg.h>, transmit,
 * receive, interrupts and saved state. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/serial_reg.h>

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
	wr(&s, 0, '\n');
	char buf[4] = {0};
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	assert_string_equal(buf, "hi\n");
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
	assert_int_equal(s.tx_bytes, 3);
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
	device_save(&serial_ops, &a, &w);
	assert_int_equal(w.err, 0);

	level = -1;
	serial_init(&b, -1, &fake_host, 4);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(device_restore(&serial_ops, &b, &r), 0);
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
		assert_int_not_equal(device_restore(&serial_ops, &b, &t), 0);
	}
	/* A FIFO length beyond the FIFO is refused. */
	uint8_t *bad = malloc(w.len);
	memcpy(bad, w.buf, w.len);
	uint32_t huge = SERIAL_RX_SIZE + 1;
	memcpy(bad + 4 + 10 + 1, &huge, 4);
	struct state_reader t = state_reader_init(bad, w.len);
	assert_int_not_equal(device_restore(&serial_ops, &b, &t), 0);
	free(bad);
	state_writer_free(&w);
	serial_destroy(&a);
	serial_destroy(&b);
}

/* LSR as a polling driver reads it: DR follows the FIFO, THRE and TEMT stay
 * set (transmit is immediate), and writes to the read-only LSR and MSR are
 * ignored. Loopback turns transmit into receive without touching the fd. */
static void line_status_and_loopback(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct serial s;
	serial_init(&s, p[1], NULL, 4);
	const uint8_t empty = UART_LSR_THRE | UART_LSR_TEMT;
	assert_int_equal(rd(&s, UART_LSR), empty);
	wr(&s, UART_LSR, 0);
	wr(&s, UART_MSR, 0);
	assert_int_equal(rd(&s, UART_LSR), empty);
	/* Carrier, DSR and CTS: a driver waiting for the modem goes on. */
	uint8_t msr = rd(&s, UART_MSR);
	assert_int_equal(msr & UART_MSR_DCD, UART_MSR_DCD);
	assert_int_equal(msr & UART_MSR_DSR, UART_MSR_DSR);
	assert_int_equal(msr & UART_MSR_CTS, UART_MSR_CTS);

	wr(&s, UART_MCR, UART_MCR_LOOP);
	wr(&s, UART_TX, 'L');
	assert_int_equal(rd(&s, UART_LSR), empty | UART_LSR_DR);
	assert_int_equal(rd(&s, UART_RX), 'L');
	assert_int_equal(rd(&s, UART_LSR), empty);
	assert_int_equal(s.tx_bytes, 0);
	/* An empty FIFO reads as 0, not as the last byte again. */
	assert_int_equal(rd(&s, UART_RX), 0);
	wr(&s, UART_MCR, 0);
	wr(&s, UART_TX, 'T');
	assert_int_equal(rd(&s, UART_LSR), empty);
	assert_int_equal(rd(&s, UART_LSR), empty); /* polling, not sending: out it goes */
	char c = 0;
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'T');
	serial_destroy(&s);
	close(p[0]);
	close(p[1]);
}

/* IIR as the 8250 driver probes and services it: FIFO bits only while FCR
 * enables the FIFO, received data before "transmitter empty", and no ID while
 * the enabled causes are gone. Unused IER and MCR bits read back as zero. */
static void interrupt_identification(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1, NULL, 4);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_NO_INT);
	wr(&s, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(rd(&s, UART_IIR), 0xc0 | UART_IIR_NO_INT); /* a 16550A */
	wr(&s, UART_FCR, 0);
	assert_int_equal(rd(&s, UART_IIR) & 0xc0, 0);

	wr(&s, UART_IER, 0xff);
	assert_int_equal(rd(&s, UART_IER), 0x0f);
	wr(&s, UART_MCR, 0xff);
	assert_int_equal(rd(&s, UART_MCR), 0x1f);
	wr(&s, UART_MCR, 0);

	serial_receive(&s, (const uint8_t *)"r", 1);
	/* Both pending: RDI first, and reading IIR does not consume it. */
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_RDI);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_RDI);
	assert_int_equal(rd(&s, UART_RX), 'r');
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_THRI);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_NO_INT);
	/* DLAB hides IER: writing the divisor's high byte leaves IER alone. */
	wr(&s, UART_LCR, UART_LCR_DLAB);
	wr(&s, UART_DLM, 0x00);
	assert_int_equal(rd(&s, UART_DLM), 0x00);
	wr(&s, UART_LCR, 0x03);
	assert_int_equal(rd(&s, UART_IER), 0x0f);
	serial_destroy(&s);
}

/* What is in the pipe now, without waiting: its length, or 0. */
static size_t sent(int fd, char *buf, size_t size)
{
	ssize_t n = read(fd, buf, size);
	return n > 0 ? (size_t)n : 0;
}

/* Output goes out in pieces: a polling driver's LSR read before each byte
 * keeps the piece going, and a line's end, a second LSR read in a row, any
 * other access (Linux writes IER at the end of each console message or
 * interrupt-driven send), a full buffer, a pause, a save and destroy end
 * it. Nothing is lost or reordered. */
static void output_in_pieces(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	struct serial s;
	serial_init(&s, p[1], NULL, 4);
	char buf[2 * SERIAL_TX_SIZE];
	for (const char *c = "ab"; *c; c++) {
		rd(&s, UART_LSR);
		wr(&s, UART_TX, (uint8_t)*c);
	}
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 0);
	rd(&s, UART_LSR);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 0);
	rd(&s, UART_LSR);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "ab", 2);

	wr(&s, UART_TX, 'c'); /* an interrupt-driven send, ended by IER */
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 0);
	wr(&s, UART_IER, 0);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 1);
	wr(&s, UART_TX, 'd');
	rd(&s, UART_IIR);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'd');

	for (unsigned i = 0; i < SERIAL_TX_SIZE + 1; i++)
		wr(&s, UART_TX, (uint8_t)('A' + i % 26));
	assert_int_equal(sent(p[0], buf, sizeof(buf)), SERIAL_TX_SIZE);
	assert_int_equal(buf[SERIAL_TX_SIZE - 1], 'A' + (SERIAL_TX_SIZE - 1) % 26);
	serial_flush(&s);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'A' + SERIAL_TX_SIZE % 26);

	wr(&s, UART_TX, 'e');
	struct state_writer w = {0};
	device_save(&serial_ops, &s, &w);
	state_writer_free(&w);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 1);
	wr(&s, UART_TX, 'f');
	serial_destroy(&s);
	assert_int_equal(sent(p[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'f');
	assert_int_equal(s.tx_bytes, 2 + 2 + (SERIAL_TX_SIZE + 1) + 2);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transmit_and_registers),
		cmocka_unit_test(receive),
		cmocka_unit_test(interrupts),
		cmocka_unit_test(save_restore),
		cmocka_unit_test(line_status_and_loopback),
		cmocka_unit_test(interrupt_identification),
		cmocka_unit_test(output_in_pieces),
	};
	return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
