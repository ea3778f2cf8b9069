/* Inside the migration module: what the main thread and the copy thread
 * share. The thread owns the connection and the progress counters; the
 * main thread owns the VM and answers the thread's requests. */
#ifndef KVMHOST_MIGRATION_IMPL_H
#define KVMHOST_MIGRATION_IMPL_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>

#include "migration/migration.h"
#include "migration/stream.h"

#define MIG_IO_TIMEOUT_MS    30000 /* a peer silent this long is gone */
#define MIG_SETUP_TIMEOUT_MS 120000

enum mig_phase {
	MIG_PHASE_NONE,
	MIG_PHASE_SETUP,
	MIG_PHASE_PRECOPY,
	MIG_PHASE_STOPPED,
	MIG_PHASE_COMPLETED,
	MIG_PHASE_FAILED,
};

enum mig_request {
	MIG_REQ_NONE,
	MIG_REQ_STOP,	  /* park the VM, take its state */
	MIG_REQ_HANDOVER, /* the destination has it: give up the disk locks */
	MIG_REQ_DONE,	  /* the destination runs it: end here */
	MIG_REQ_FAILED,	  /* run on here, as before */
};

struct migration {
	struct vm *vm;
	sd_event *event;
	struct control *ctl;
	sd_event_source *notify_src;
	int notify_efd; /* thread -> main: a request is waiting */
	int cancel_efd; /* main -> thread: give up */
	atomic_bool cancelled;
	pthread_t thread;
	bool thread_running;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum mig_request request; /* under lock */
	bool answered;
	int answer;
	struct error err; /* why it failed; under lock */

	/* Set by the main thread before the thread starts, or while it waits. */
	struct mig_addr addr;
	struct mig_target target; /* addr resolved, on the main thread */
	int pagemap_fd;		  /* opened for the thread: it may not open files */
	uint64_t max_downtime_ns;
	uint8_t *hello, *meta;
	uint64_t hello_len, meta_len;
	uint64_t start_ns, pause_ns;
	bool parked, disks_released;

	/* The thread's. */
	bool go_sent, converged;
	uint64_t downtime_ns;
	atomic_int phase;
	atomic_uint_fast64_t bytes, rounds, dirty_rate, remaining, pages_sent, zero_pages;

	json_object *last; /* the last migration's result or error, for status */
};

void *migration_thread(void *arg);

#endif
