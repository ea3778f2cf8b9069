/* The destination's side: one source, one VM. Nothing runs until the
 * source says GO, and then only with the disks' locks taken; any failure
 * before discards what came (the process ends with STATUS_BAD_SNAPSHOT). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/migration.h"
#include "migration/stream.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

#define ACCEPT_TIMEOUT_MS 30000 /* once connected, a silent source is gone */

/* HELLO: the VM it describes, built here and checked against this host. */
static int receive_hello(struct incoming *in, struct vm_config *cfg, int console_fd, struct vm **vm,
			 struct error *err)
{
	struct mig_msg_hdr h;
	struct mig_hello hello;
	bool user_paused;
	int r = mig_conn_read(&in->conn, &h, sizeof(h));
	if (r)
		return error_setf(err, "the source sent nothing: %s",
				  r == -EPIPE ? "it closed the connection" : strerror(-r));
	if (h.type != MIG_HELLO || h.len > MIG_MAX_HELLO)
		return error_setf(err, "not a kvmhost migration (message type %u, %llu bytes)",
				  h.type, (unsigned long long)h.len);
	uint8_t *buf = malloc(h.len ? h.len : 1);
	if (!buf || mig_conn_read(&in->conn, buf, h.len)) {
		free(buf);
		return error_setf(err, "the connection ended inside HELLO");
	}
	in->bytes += sizeof(h) + h.len;
	if (mig_hello_parse(buf, h.len, &hello, err) ||
	    snapshot_parse_config(hello.config, hello.config_len, hello.nr_vcpus, hello.memory_size,
				  cfg, &user_paused, err))
		goto fail;
	static const struct vm_image incoming_memory = {-1, 0};
	cfg->image = &incoming_memory;
	for (int i = 0; i < cfg->nr_disks; i++)
		cfg->disks[i].lock_later = true; /* the source holds them until GO */
	if (vm_create(cfg, console_fd, vm, err)) {
		error_prepend(err, "cannot build the VM here: ");
		goto fail;
	}
	/* Copied out: in the message it need not be aligned. */
	struct kvm_cpuid2 *cpuid = malloc(hello.cpuid_len);
	if (!cpuid) {
		error_setf(err, "out of memory");
		goto fail;
	}
	memcpy(cpuid, hello.cpuid, hello.cpuid_len);
	r = snapshot_check_cpu(*vm, cpuid, hello.cpuid_len, hello.host_cpu, err);
	free(cpuid);
	free(buf);
	return r;
fail:
	free(buf);
	return -EINVAL;
}

/* The memory rounds and the state, put into the VM. */
static int receive_state(struct incoming *in, struct vm *vm, struct error *err)
{
	struct mig_receiver rx = {vm->ram, vm->ram_size, mig_conn_read, &in->conn, 0, 0, 0};
	uint8_t *meta = NULL;
	uint64_t len = 0;
	struct snapshot snap;
	int r = mig_receive_memory(&rx, &meta, &len, err);
	in->bytes += rx.bytes;
	if (r)
		return r;
	/* snap owns meta from here, on every path. */
	if (snapshot_open_buffer(&snap, meta, len, err) || snapshot_restore(&snap, vm, err)) {
		snapshot_close(&snap);
		return -EINVAL;
	}
	snapshot_close(&snap);
	return 0;
}

static int handshake(struct incoming *in, struct vm_config *cfg, int console_fd, struct vm **vm,
		     struct error *err)
{
	if (receive_hello(in, cfg, console_fd, vm, err))
		return -EINVAL;
	int r = mig_send(&in->conn, MIG_READY, NULL, 0);
	if (r)
		return error_set_errno(err, -r, "the source went away");
	if (receive_state(in, *vm, err))
		return -EINVAL;
	r = mig_send(&in->conn, MIG_STATE_OK, NULL, 0);
	if (r)
		return error_set_errno(err, -r, "the source went away");
	if (mig_expect(mig_conn_read, &in->conn, MIG_GO, err))
		return error_prepend(err, "no GO from the source: ");
	/* The source gave the locks up before GO; taking them decides who
	 * runs the guest. */
	if (vm_lock_disks(*vm, err))
		return -EINVAL;
	r = mig_send(&in->conn, MIG_RUNNING, NULL, 0);
	if (r) {
		vm_unlock_disks(*vm);
		return error_set_errno(err, -r, "the source went away before it heard we run");
	}
	return 0;
}

enum kvmhost_status migration_incoming(const struct mig_addr *addr, int cancel_fd,
				       struct vm_config *cfg, int console_fd, struct vm **vm,
				       struct incoming *in)
{
	struct error err = {0};
	int lfd;
	*vm = NULL;
	*in = (struct incoming){.conn = {.fd = -1, .cancel_fd = cancel_fd, .timeout_ms = -1}};
	if (mig_listen(addr, &lfd, &err)) {
		log_err("--incoming: %s", err.msg);
		return STATUS_ERROR;
	}
	log_info("waiting for a migration on %s", addr->text);
	if (mig_accept(lfd, addr, &in->conn, &err)) {
		log_err("--incoming: %s", err.msg);
		return STATUS_BAD_SNAPSHOT;
	}
	uint64_t t0 = now_ns();
	in->conn.timeout_ms = ACCEPT_TIMEOUT_MS;
	if (handshake(in, cfg, console_fd, vm, &err)) {
		(void)mig_send_error(&in->conn, err.msg); /* the source may be gone */
		log_err("--incoming %s: %s; nothing received is kept", addr->text, err.msg);
		mig_conn_close(&in->conn);
		vm_destroy(*vm);
		*vm = NULL;
		return STATUS_BAD_SNAPSHOT;
	}
	in->ms = (double)(now_ns() - t0) / 1e6;
	mig_conn_close(&in->conn);
	return STATUS_OK;
}
