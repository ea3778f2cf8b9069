/* The built-in guest's virtio-blk driver and disk workloads. */
#ifndef KVMHOST_GUEST_VIRTIO_BLK_H
#define KVMHOST_GUEST_VIRTIO_BLK_H

#include "io.h"

void disk_main(void);
void disk_bench(void);

#endif
