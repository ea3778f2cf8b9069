/* One vCPU: its thread runs KVM_RUN; everything that touches the vCPU fd
 * from elsewhere is a request run on that thread. */
#ifndef KVMHOST_VCPU_H
#define KVMHOST_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/error.h"
#include "util/state.h"

struct vcpu;
struct bus;
struct device_host;

/* What a vCPU needs of its VM, and nothing more. */
struct vcpu_env {
	int kvm_fd, vm_fd;
	const struct bus *pio_bus, *mmio_bus;
	atomic_uint_fast64_t *unhandled_pio, *unhandled_mmio; /* accesses nothing claimed */
	const struct device_host *host;			      /* to end the VM */
	const struct kvm_msr_list *msr_list;		      /* the MSRs its saved state carries */
	uint32_t xsave_size;				      /* bytes; 0: no XSAVE */
	/* On the vCPU's thread, each time it runs again after being parked. */
	void (*unparked)(void *opaque, unsigned vcpu);
	void *opaque;
	const struct sandbox *sandbox; /* entered before the first KVM_RUN; NULL: off */
};

typedef void (*vcpu_fn)(struct vcpu *vcpu, void *arg);

struct vcpu_request {
	vcpu_fn fn;
	void *arg;
	struct vcpu_request *next;
	bool wait;	 /* requester waits; request lives on its stack */
	atomic_int done; /* futex: 0 pending, 1 ran, -1 the vCPU ended first */
};

/* Why a vCPU is parked out of KVM_RUN; it runs only when none is left. */
enum vcpu_park_reason {
	PARK_USER = 1u << 0,
	PARK_HOST_SLEEP = 1u << 1,
	PARK_CPU_OFFLINE = 1u << 2,
	PARK_SNAPSHOT = 1u << 3,  /* being saved, or restored and not yet let go */
	PARK_MIGRATION = 1u << 4, /* a migration's switch-over */
};

#define VCPU_PENDING_REQ  (1u << 0)
#define VCPU_PENDING_PARK (1u << 1)
#define VCPU_PENDING_STOP (1u << 2)

enum { VCPU_RUNNING, VCPU_PARKED, VCPU_EXITED };

struct vcpu {
	const struct vcpu_env *env;
	int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	_Atomic pid_t tid;

	pthread_mutex_t lock; /* the request queue and `exited` */
	bool lock_ready;
	struct vcpu_request *req_head, *req_tail;
	bool exited;
	atomic_uint pending;	  /* VCPU_PENDING_*: checked before each KVM_RUN */
	atomic_uint park_reasons; /* enum vcpu_park_reason bits */
	atomic_bool stop;
	atomic_int run_state; /* futex: VCPU_RUNNING, VCPU_PARKED, VCPU_EXITED */
	atomic_int state_waiters;
	atomic_int wake_seq;  /* futex a parked vCPU sleeps on; bumped on any news */
	bool need_completion; /* vCPU thread only: last exit was I/O */
	atomic_uint_fast64_t exits;
};

int vcpu_init(struct vcpu *vcpu, const struct vcpu_env *env, int index, struct error *err);
/* Safe on a vCPU whose init failed part-way (or never ran, if zeroed). */
void vcpu_destroy(struct vcpu *vcpu);
/* Starts the thread on `affinity` (NULL: the process's). */
int vcpu_start(struct vcpu *vcpu, const cpu_set_t *affinity);

/* Runs fn on the vCPU's own thread. With wait, returns after fn ran;
 * without, fn runs later and the request is freed by the vCPU thread.
 * Returns -ESRCH if the vCPU thread has ended. */
int vcpu_run_on(struct vcpu *vcpu, vcpu_fn fn, void *arg, bool wait);
/* The two halves of a waited request, so that a broadcast can queue on every
 * vCPU first and then wait for all: req must stay valid until waited for. */
int vcpu_submit(struct vcpu *vcpu, struct vcpu_request *req);
int vcpu_request_wait(struct vcpu_request *req);
void vcpu_kick(struct vcpu *vcpu);

void vcpu_park(struct vcpu *vcpu, unsigned reason);
void vcpu_unpark(struct vcpu *vcpu, unsigned reason);
void vcpu_wait_parked(struct vcpu *vcpu);
unsigned vcpu_park_reasons(struct vcpu *vcpu);

void vcpu_stop(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

/* Only on the vCPU's own thread (as a request, or from its run loop). */
void vcpu_dump_regs(struct vcpu *vcpu, FILE *out);
/* KVM_KVMCLOCK_CTRL: the host stopped this guest on purpose. A vcpu_fn. */
void vcpu_guest_stopped(struct vcpu *vcpu, void *arg);

int vcpu_install_kick_handler(void);
/* Where the thread last ran, from /proc; -1 if unknown. */
int vcpu_thread_last_cpu(pid_t tid);
/* Actual affinity of a vCPU thread; false if it cannot be read. */
bool vcpu_get_affinity(struct vcpu *vcpu, cpu_set_t *set);

/* Everything KVM holds for this vCPU, for snapshots. Only on the vCPU's own
 * thread (as a request), with the vCPU parked or not yet started. */
int vcpu_save_state(struct vcpu *vcpu, struct state_writer *w);
int vcpu_restore_state(struct vcpu *vcpu, struct state_reader *r);

#endif
