/* The built-in guest's virtio-net driver and tiny IPv4 stack. */
#ifndef KVMHOST_GUEST_VIRTIO_NET_H
#define KVMHOST_GUEST_VIRTIO_NET_H

#include "io.h"

void net_init(void);
void net_poll(void);

#endif
