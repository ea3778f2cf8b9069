/* The sandbox: a seccomp filter on every thread, chosen for its kind, built
 * with libseccomp from allow-lists (sandbox.c says who needs each call).
 * Built once on the main thread while it may still open anything; each
 * thread enters its own as it starts (vCPUs before their first KVM_RUN),
 * and the main thread once its setup is done. A call outside the list is
 * trapped: the process says which thread kind made which call and ends
 * with STATUS_SANDBOX, before anything more happens on that thread. */
#ifndef KVMHOST_SANDBOX_H
#define KVMHOST_SANDBOX_H

#include "util/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum sandbox_kind {
	SANDBOX_MAIN,	   /* the event loop: control, host events, saves */
	SANDBOX_VCPU,	   /* KVM_RUN and the devices it serves */
	SANDBOX_MIGRATION, /* a migration's copy thread */
	SANDBOX_NET,	   /* a network device's receive thread */
	SANDBOX_KINDS,
};

struct sandbox_config {
	bool log_only; /* $KVMHOST_SANDBOX_LOG: log what would be denied (kernel audit) */
	/* --user: threads that already run take part in the change to these. */
	bool change_ids;
	uid_t uid;
	gid_t gid;
};

struct sandbox;

/* Builds every kind's filter and installs the handler that reports a
 * denied call; sets no_new_privs. -1 with err. */
int sandbox_build(struct sandbox **out, const struct sandbox_config *cfg, struct error *err);
void sandbox_free(struct sandbox *sb);
/* Puts the calling thread under its kind's filter, for good. NULL sb (the
 * sandbox is off): 0. -errno. */
int sandbox_enter(const struct sandbox *sb, enum sandbox_kind kind);
const char *sandbox_kind_name(enum sandbox_kind kind);
/* True in an ASan build, whose main filter also allows what LeakSanitizer's
 * exit check does (a tracer task, ptrace). */
bool sandbox_allows_leak_check(void);

#endif
