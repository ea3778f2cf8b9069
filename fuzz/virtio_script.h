/* Drives one virtio device over virtio-mmio from a fuzzer's input. */
#ifndef KVMHOST_FUZZ_VIRTIO_SCRIPT_H
#define KVMHOST_FUZZ_VIRTIO_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

void fuzz_virtio_mmio(const struct virtio_device_ops *dev_ops, void *dev, const uint8_t *data,
		      size_t size);

#endif
