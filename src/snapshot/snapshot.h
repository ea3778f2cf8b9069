/* Snapshots: a running VM saved to a file and continued later, in another
 * process - the VM-level counterpart of the 2007 series' suspend/resume.
 * Save parks every vCPU, collects what KVM and every device hold, flushes
 * the disks and writes FILE.tmp, fsync, rename, directory fsync: FILE is
 * either absent or complete. Restore checks the whole file before anything
 * is built, maps the memory image MAP_PRIVATE (pages load on first touch),
 * and puts every vCPU, device and KVM's state back before a vCPU runs. */
#ifndef KVMHOST_SNAPSHOT_H
#define KVMHOST_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vm.h"
#include "snapshot/format.h"
#include "util/error.h"
#include "util/exit_status.h"

struct control;

/* An opened, checked snapshot file. */
struct snapshot {
	int fd;
	uint64_t file_size;
	uint8_t *meta; /* the file up to the memory image */
	struct snap_index idx;
	bool user_paused; /* the VM was paused by its user when saved */
	struct vm_image image;
};

/* Opens and checks FILE; -1 with what is wrong and where in err. */
int snapshot_open(struct snapshot *s, const char *path, struct error *err);
void snapshot_close(struct snapshot *s);
/* The guest-visible configuration the snapshot was made with, into cfg
 * (disk paths allocated, as run_options_parse_disk does; cfg->nr_disks counts
 * them even on failure). -1 with err if a disk is missing or changed. */
int snapshot_config(struct snapshot *s, struct vm_config *cfg, struct error *err);
/* Puts every saved state into a VM created from snapshot_config, before
 * its vCPUs start, and tells each guest it was stopped. -1 with err. */
int snapshot_restore(struct snapshot *s, struct vm *vm, struct error *err);

struct snapshot_result {
	uint64_t bytes;	    /* file size */
	uint64_t allocated; /* what it takes on disk (the memory image is sparse) */
	uint64_t pages;	    /* memory pages written */
	double ms;	    /* from the request to the rename */
};

/* Saves the running VM to `path`; with keep_running it goes on, else every
 * vCPU stays parked for the caller to end the VM. Main thread. */
int snapshot_save(struct vm *vm, const char *path, bool keep_running, struct snapshot_result *res,
		  struct error *err);

/* The config section: what the guest was given. Version 4: a Linux guest's
 * devices no longer include the built-in guest's (before, every VM had it).
 * Version 5: the `--device`s. */
#define SNAP_CONFIG_VERSION 5
void snapshot_write_config(struct vm *vm, struct state_writer *w);
/* Reads one (from a file or a migration's handshake) into cfg, checking
 * that its disks are there as they were. -1 with err. */
int snapshot_parse_config(const uint8_t *buf, uint64_t len, uint32_t nr_vcpus, uint64_t memory_size,
			  struct vm_config *cfg, bool *user_paused, struct error *err);
/* -1 with the features named if `guest` (a saved CPUID, len bytes) needs
 * what this host cannot give vm's vCPUs. */
int snapshot_check_cpu(struct vm *vm, const struct kvm_cpuid2 *guest, size_t len,
		       const char *saved_on, struct error *err);

/* For a migration: with every vCPU parked, the VM's state as the start of a
 * snapshot file (its memory to follow separately), disks flushed. *meta is
 * the caller's to free. */
int snapshot_capture(struct vm *vm, uint8_t **meta, uint64_t *len, struct error *err);
/* Takes a received `meta` (freed by snapshot_close) and checks it as
 * snapshot_open checks a file; memory is the caller's (image fd -1). */
int snapshot_open_buffer(struct snapshot *s, uint8_t *meta, uint64_t len, struct error *err);

/* Registers `save` on the control socket. */
int snapshot_attach_control(struct control *ctl, struct vm *vm);

#endif
