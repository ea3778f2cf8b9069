/* A virtio device the user adds with `--device KIND[,OPTIONS]`: what it
 * gives the VMM besides its virtio_device_ops. The board's table
 * (arch/x86/pc.c) lists the kinds and where each sits; core/vm.c builds,
 * wires, saves and tears down every one of them the same way. So a new
 * device is its own files plus one line in that table (virtio-rng is the
 * example). Disks and nets, which the VM itself flushes, locks and
 * announces, keep their own options and slots. */
#ifndef KVMHOST_VIRTIO_KIND_H
#define KVMHOST_VIRTIO_KIND_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "virtio/virtio.h"

#define VIRTIO_KIND_NAME_MAX	16
#define VIRTIO_KIND_OPTIONS_MAX 112

/* One `--device`, as the user gave it and as a snapshot keeps it. */
struct virtio_spec {
	char kind[VIRTIO_KIND_NAME_MAX];
	char options[VIRTIO_KIND_OPTIONS_MAX]; /* after "KIND,"; "" if none */
	/* What `kind` names, set where the name was read (the board's table);
	 * not saved: a snapshot keeps the name and is looked up again. */
	const struct virtio_kind *type;
};

/* One of a device's own figures for `status` ("bytes": 4096). */
struct virtio_figure {
	const char *name;
	uint64_t value;
};
#define VIRTIO_FIGURES_MAX 4

struct virtio_kind {
	const char *name;
	const struct virtio_device_ops *ops;
	size_t size; /* of its device struct, zeroed before create */
	/* Builds the device from its options: -errno with err saying why. */
	int (*create)(void *dev, const char *options, struct error *err);
	/* Undoes create, even one that failed half-way (NULL: nothing to undo). */
	void (*destroy)(void *dev);
	/* Its figures, at most VIRTIO_FIGURES_MAX; returns how many (NULL: none). */
	unsigned (*figures)(void *dev, struct virtio_figure *out);
};

#endif
