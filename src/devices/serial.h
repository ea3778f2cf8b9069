/* 16550A UART: transmit to a host fd, registers as a driver expects them. */
#ifndef KVMHOST_SERIAL_H
#define KVMHOST_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"

#define SERIAL_RX_SIZE 4096

typedef void (*serial_irq_fn)(void *opaque, uint32_t gsi, bool level);

struct serial {
	pthread_mutex_t lock;
	int out_fd; /* -1: output dropped */
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t rx[SERIAL_RX_SIZE];
	unsigned rx_head, rx_len;
	uint64_t tx_bytes;
	uint64_t first_tx_ns; /* when the guest wrote its first byte */
	bool thri_pending;    /* "transmitter empty" not yet seen by the driver */
	bool irq_level;
	serial_irq_fn set_irq;
	void *irq_opaque;
	uint32_t gsi;
};

void serial_init(struct serial *s, int out_fd);
void serial_destroy(struct serial *s);
/* Wires the UART's interrupt (IRQ 4 on a PC). */
void serial_set_irq(struct serial *s, serial_irq_fn fn, void *opaque, uint32_t gsi);
void serial_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		   bool is_write);
/* Queues host input for the guest; returns bytes accepted. */
unsigned serial_receive(struct serial *s, const uint8_t *buf, unsigned len);

#endif
