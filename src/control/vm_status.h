/* The VM's part of every `status` reply (and of `list`): name, state,
 * vCPUs, disks, nets and what the built-in guest reported, as JSON. The
 * core knows nothing of JSON; this is where its state becomes the wire
 * format. */
#ifndef KVMHOST_VM_STATUS_H
#define KVMHOST_VM_STATUS_H

#include <json-c/json.h>

struct vm;

/* Adds the VM's fields to `status`. Main thread: it reads the VM's
 * counters while the vCPUs run. */
void vm_status_json(struct vm *vm, json_object *status);

#endif
