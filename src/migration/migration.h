/* Live migration: a running VM moved to another kvmhost process (on this
 * host or another) with its guest stopped only for the last dirty pages and
 * its state. Pre-copy: memory is sent while the guest runs, then again what
 * it dirtied meanwhile, until the rest fits in --max-downtime; then the VM
 * parks, the rest and a snapshot's sections go, and the destination runs
 * it. Disks are shared storage: their locks move, their contents do not.
 * Until the destination has the state, any failure leaves the source
 * running as before. */
#ifndef KVMHOST_MIGRATION_H
#define KVMHOST_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "core/vm.h"
#include "migration/net.h"
#include "util/exit_status.h"

struct control;
struct migration;

/* `migrate` on the control socket (and `migration` in status), served on
 * the VM's main loop; the copy runs on a thread of its own. */
int migration_init(struct migration **out, struct vm *vm, sd_event *event, struct control *ctl);
/* Cancels one in flight (the source goes on running) and joins its thread. */
void migration_destroy(struct migration *m);
/* True while one is in flight: a save must wait. */
bool migration_active(const struct migration *m);

/* The destination's side, before the VM runs: waits on `addr` for a source
 * (cancel_fd readable: stop waiting), builds the VM from what it sends
 * (cfg gets the guest's settings; its host-side fields are kept), and
 * returns it ready to start, its disks locked. STATUS_BAD_SNAPSHOT when the
 * stream fails or is refused; everything received is discarded then. */
struct incoming {
	struct mig_conn conn;
	uint64_t bytes;
	double ms;
};
enum kvmhost_status migration_incoming(const struct mig_addr *addr, int cancel_fd,
				       struct vm_config *cfg, int console_fd, struct vm **vm,
				       struct incoming *in);

#endif
