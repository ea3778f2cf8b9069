/* The VM's part of every `status` reply (and of `list`): name, state,
 * vCPUs, disks, nets and what the built-in guest reported, as JSON. The
 * core knows nothing of JSON; this is where its state becomes the wire
 * format. */
#ifndef KVMHOST_VM_STATUS_H
#define KVMHOST_VM_STATUS_H

#include <json-c/json.h>

struct vm;
struct testdev;

/* Adds the VM's fields to `status`, and the built-in guest's reports where
 * it has its test device (`guest`; NULL: none). Main thread: it reads the
 * counters while the vCPUs run. */
void vm_status_json(struct vm *vm, const struct testdev *guest, json_object *status);

#endif
