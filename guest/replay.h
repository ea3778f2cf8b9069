/* The built-in guest's replay of a virtio request script (--guest-blob). */
#ifndef KVMHOST_GUEST_REPLAY_H
#define KVMHOST_GUEST_REPLAY_H

#include "io.h"

void virtio_replay(void);

#endif
