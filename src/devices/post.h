/* The POST diagnostic port 0x80: Linux writes it as an I/O delay. Reads
 * give all-ones, writes are dropped, and neither is counted as unclaimed. */
#ifndef KVMHOST_POST_H
#define KVMHOST_POST_H

#include "devices/device.h"

#define POST_PORT 0x80

extern const struct device_ops post_ops;

#endif
