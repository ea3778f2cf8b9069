/* A 16550A as Linux's 8250 driver and the built-in guest use it: polled or
 * interrupt-driven transmit to a host fd, a receive FIFO the host fills, the
 * divisor latch and scratch register kept but without effect.
 *
 * Output goes out in pieces, not a byte at a time: each write may wake
 * whoever reads the console, which costs more than the exit that brought the
 * byte (a Linux boot's console took a third less time to reach /init in the
 * test host). A piece ends with a line, a full buffer, or anything the guest
 * does with the UART but send: a polling driver reads LSR once before each
 * byte, so a second read in a row means it has stopped; Linux's own drivers
 * write IER when a console message or an interrupt-driven send ends. */
#include "devices/serial.h"

#include <errno.h>
#include <linux/serial_reg.h>
#include <string.h>

#include "util/util.h"
#include "util/vmstate.h"

/* Newer <linux/serial_reg.h> has it; the FIFO bits a 16550A shows in IIR. */
#ifndef UART_IIR_FIFO_ENABLED_16550A
#define UART_IIR_FIFO_ENABLED_16550A 0xc0
#endif

/* What a 16550A keeps of IER and MCR: the upper bits read back as zero. */
#define IER_WRITABLE (UART_IER_MSI | UART_IER_RLSI | UART_IER_THRI | UART_IER_RDI)
#define MCR_WRITABLE (UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_OUT1 | UART_MCR_RTS | UART_MCR_DTR)

void serial_init(struct serial *s, int out_fd, const struct device_host *host, uint32_t gsi)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	s->host = host;
	s->gsi = gsi;
	s->iir = UART_IIR_NO_INT;
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	/* A modem that is there and ready: drivers that wait for it go on. */
	s->msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
}

/* Under the lock. */
static void tx_flush(struct serial *s)
{
	/* Nobody reading any more (EPIPE): the guest's output goes nowhere, as
	 * on an unplugged line; the VM runs on. */
	if (s->tx_len && s->out_fd >= 0 && write_full(s->out_fd, s->tx, s->tx_len) == -EPIPE)
		s->out_fd = -1;
	s->tx_len = 0;
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	tx_flush(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_destroy(struct serial *s)
{
	serial_flush(s);
	pthread_mutex_destroy(&s->lock);
}

/* Under the lock: what the driver would see in IIR, and the line to match
 * (a PC routes the UART's interrupt only while OUT2 is set). */
static void update_irq(struct serial *s)
{
	if ((s->ier & UART_IER_RDI) && s->rx_len)
		s->iir = UART_IIR_RDI;
	else if ((s->ier & UART_IER_THRI) && s->thri_pending)
		s->iir = UART_IIR_THRI;
	else
		s->iir = UART_IIR_NO_INT;
	bool level = s->iir != UART_IIR_NO_INT && (s->mcr & UART_MCR_OUT2);
	if (level != s->irq_level)
		device_set_irq(s->host, s->gsi, level);
	s->irq_level = level;
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & UART_MCR_LOOP) {
		if (s->rx_len < SERIAL_RX_SIZE)
			s->rx[(s->rx_head + s->rx_len++) % SERIAL_RX_SIZE] = c;
		return;
	}
	if (!s->tx_bytes++)
		s->first_tx_ns = now_ns();
	s->tx[s->tx_len++] = c;
	if (c == '\n' || s->tx_len == SERIAL_TX_SIZE)
		tx_flush(s);
}

/* Under the lock, before an access: the piece being sent ends here unless
 * the access is a byte sent or the one LSR read before it. */
static void end_of_piece(struct serial *s, uint64_t offset, bool is_write)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	if (is_write && offset == UART_TX && !dlab) {
		s->lsr_read_since_tx = false;
	} else if (!is_write && offset == UART_LSR && !s->lsr_read_since_tx) {
		s->lsr_read_since_tx = true;
	} else {
		tx_flush(s);
		s->lsr_read_since_tx = false;
	}
}

static void update_lsr(struct serial *s)
{
	s->lsr = (uint8_t)((s->lsr & ~UART_LSR_DR) | (s->rx_len ? UART_LSR_DR : 0));
}

/* Under the lock: a guest write. DLAB turns THR and IER into the divisor. */
static void serial_out(struct serial *s, uint64_t offset, uint8_t v)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	switch (offset) {
	case UART_TX: /* and UART_DLL */
		if (dlab) {
			s->dll = v;
		} else {
			transmit(s, v);
			s->thri_pending = true; /* sent at once: empty again */
		}
		break;
	case UART_IER: /* and UART_DLM */
		if (dlab) {
			s->dlm = v;
		} else {
			/* Enabling THRI with THR empty raises it at once. */
			if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
				s->thri_pending = true;
			s->ier = v & IER_WRITABLE;
		}
		break;
	case UART_FCR:
		s->fcr = v;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & MCR_WRITABLE;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

/* Under the lock: a guest read; reading RX and IIR have side effects. */
static uint8_t serial_in(struct serial *s, uint64_t offset)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v = 0;
	switch (offset) {
	case UART_RX: /* and UART_DLL */
		if (dlab) {
			v = s->dll;
		} else if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
			s->rx_len--;
		}
		break;
	case UART_IER: /* and UART_DLM */
		v = dlab ? s->dlm : s->ier;
		break;
	case UART_IIR:
		update_irq(s);
		v = (uint8_t)(s->iir |
			      ((s->fcr & UART_FCR_ENABLE_FIFO) ? UART_IIR_FIFO_ENABLED_16550A : 0));
		if (s->iir == UART_IIR_THRI)
			s->thri_pending = false; /* reading IIR acknowledges it */
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		update_lsr(s);
		v = s->lsr;
		break;
	case UART_MSR:
		v = s->msr;
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	return v;
}

static void serial_access(void *opaque, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct serial *s = opaque;
	(void)vcpu;
	if (len != 1) {
		/* 16550 registers are bytes; wider accesses are not decoded. */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	end_of_piece(s, offset, is_write);
	if (is_write)
		serial_out(s, offset, data[0]);
	else
		data[0] = serial_in(s, offset);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

unsigned serial_receive(struct serial *s, const uint8_t *buf, unsigned len)
{
	pthread_mutex_lock(&s->lock);
	unsigned n = 0;
	while (n < len && s->rx_len < SERIAL_RX_SIZE) {
		s->rx[(s->rx_head + s->rx_len++) % SERIAL_RX_SIZE] = buf[n++];
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Registers, the pending transmit interrupt and the receive FIFO (saved
 * from its head); the line level is recomputed on restore. */
static int serial_post_load(void *dev, uint32_t version)
{
	struct serial *s = dev;
	(void)version;
	s->rx_head = 0;
	update_irq(s);
	return 0;
}

static const struct vmstate_field serial_fields[] = {
	VMS_UINT(struct serial, ier),	       VMS_UINT(struct serial, iir),
	VMS_UINT(struct serial, lcr),	       VMS_UINT(struct serial, mcr),
	VMS_UINT(struct serial, lsr),	       VMS_UINT(struct serial, msr),
	VMS_UINT(struct serial, scr),	       VMS_UINT(struct serial, dll),
	VMS_UINT(struct serial, dlm),	       VMS_UINT(struct serial, fcr),
	VMS_BOOL(struct serial, thri_pending), VMS_VBYTES(struct serial, rx, rx_len),
};

/* Output held is written out (it is not state), and the FIFO put in order
 * from its head, so that the state holds it as the guest will read it. */
static void serial_pre_save(void *dev)
{
	struct serial *s = dev;
	tx_flush(s);
	uint8_t rx[SERIAL_RX_SIZE];
	for (unsigned i = 0; i < s->rx_len; i++)
		rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_SIZE];
	memcpy(s->rx, rx, s->rx_len);
	s->rx_head = 0;
}

static const struct vmstate serial_state = {
	.name = "serial",
	.version = 1,
	.min_version = 1,
	.fields = serial_fields,
	.nr_fields = ARRAY_SIZE(serial_fields),
	.post_load = serial_post_load,
	.pre_save = serial_pre_save,
};

const struct device_ops serial_ops = {
	.name = "serial",
	.access = serial_access,
	.state = &serial_state,
	DEVICE_LOCK(struct serial, lock),
};
