/* 16550A UART: transmit to a host fd, registers as a driver expects them. */
#ifndef KVMHOST_SERIAL_H
#define KVMHOST_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

#define SERIAL_RX_SIZE 4096
#define SERIAL_TX_SIZE 256

struct serial {
	pthread_mutex_t lock;
	int out_fd; /* -1: output dropped */
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t rx[SERIAL_RX_SIZE];
	unsigned rx_head, rx_len;
	/* Output not yet written out (not saved: a save writes it out first). */
	uint8_t tx[SERIAL_TX_SIZE];
	unsigned tx_len;
	bool lsr_read_since_tx; /* a polling driver's one LSR read per byte */
	uint64_t tx_bytes;
	uint64_t first_tx_ns; /* when the guest wrote its first byte */
	bool thri_pending;    /* "transmitter empty" not yet seen by the driver */
	bool irq_level;
	const struct device_host *host;
	uint32_t gsi;
};

/* Output to out_fd (-1: dropped); interrupt on `gsi` through host (NULL: none). */
void serial_init(struct serial *s, int out_fd, const struct device_host *host, uint32_t gsi);
/* Writes out what the guest sent and is still held. Destroy does it too. */
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);
extern const struct device_ops serial_ops;
/* Queues host input for the guest; returns bytes accepted. */
unsigned serial_receive(struct serial *s, const uint8_t *buf, unsigned len);

#endif
