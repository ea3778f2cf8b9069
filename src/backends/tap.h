/* A tap device as a network backend: opened by name (and created if absent,
 * then gone with the process, as a non-persistent tap is), or created for a
 * bridge and added to it. Frames carry a 12-byte virtio-net header
 * (IFF_VNET_HDR), so offloads pass through without a copy. */
#ifndef KVMHOST_TAP_H
#define KVMHOST_TAP_H

#include "util/error.h"
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What `--net` asked for. */
struct net_spec {
	char tap[IFNAMSIZ]; /* "" with a bridge: a name is made */
	char bridge[IFNAMSIZ];
	uint8_t mac[6];
	bool mac_given;
	char id[16];
};

struct tap {
	int fd; /* non-blocking */
	char name[IFNAMSIZ];
	bool created; /* by us: it goes when fd closes */
};

/* -errno with a message in err. */
int tap_open(struct tap *t, const struct net_spec *spec, struct error *err);
/* TUN_F_* offloads the driver can take (frames the tap may hand us). */
int tap_set_offload(struct tap *t, unsigned flags);
/* Safe on a never-opened tap. */
void tap_close(struct tap *t);

/* "tap=NAME[,mac=MAC][,id=ID]" or "bridge=BR[,mac=MAC][,id=ID]". -1 with err. */
int tap_spec_parse(const char *s, struct net_spec *n, struct error *err);
/* A stable locally administered MAC for VM `name`'s index-th net. */
void tap_default_mac(const char *name, int index, uint8_t mac[6]);

#endif
