/* The PC board's map: where kvmhost puts each device and which line it
 * raises. The VMM wires its devices by it and the built-in guest finds
 * them by it, so it holds #defines only: the guest is freestanding. */
#ifndef KVMHOST_PC_LAYOUT_H
#define KVMHOST_PC_LAYOUT_H

#define SERIAL_COM1 0x3f8

/* A flat image (the built-in guest) loads and starts here, 1 MiB. */
#define PC_FLAT_IMAGE_ADDR 0x100000UL
#define PC_MAX_VCPUS	   256

/* virtio-mmio devices: disk i at VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE,
 * net i after the disks' window, at VIRTIO_MMIO_BASE + (8 + i) * STRIDE,
 * then the `--device` ones (12 + i). */
#define VIRTIO_MMIO_BASE   0xd0000000UL
#define VIRTIO_MMIO_STRIDE 0x1000
#define PC_MAX_DISKS	   8
#define PC_MAX_NETS	   4
#define VIRTIO_DISK0_GSI   5  /* the first disk's line; the rest skip the RTC's and SCI's */
#define VIRTIO_NET0_GSI	   16 /* net i on GSI 16 + i */
/* `--device` virtio devices after the nets' window, on GSIs 20-23. */
#define PC_MAX_VIRTIO	 4
#define VIRTIO_MORE0_GSI 20

#endif
