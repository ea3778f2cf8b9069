/* The VM's pinning policy: the desired host CPUs of each vCPU (and of the
 * VMM's own threads) are the truth; real affinities are reconciled against
 * them whenever host CPUs go offline or come back (the counterpart of the
 * 2007 series' "move vCPUs off a dying CPU" patch). The pinning state lives
 * here, not in the vCPUs. */
#ifndef KVMHOST_PINNING_H
#define KVMHOST_PINNING_H

#include <json-c/json.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "host/cpuset.h"
#include "host/host_cpu.h"
#include "util/util.h"

struct vm;
struct control;

enum cpu_offline_policy { OFFLINE_MIGRATE, OFFLINE_PAUSE };

/* One vCPU as the policy sees it. */
struct pin_state {
	bool has_pin;
	cpu_set_t desired;  /* the user's request */
	cpu_set_t intended; /* what the policy last applied */
	bool displaced;	    /* intended is a stand-in: no desired CPU is online */
	int change;	    /* scratch for reconcile */
};

struct pinning {
	struct vm *vm;
	struct host_cpu_monitor *mon;
	struct host_cpu_notifier notifier;
	bool registered;
	struct control *ctl;
	enum cpu_offline_policy policy;
	bool has_vmm_cpus;
	cpu_set_t vmm_cpus;
	struct pin_state *vcpus;
	sd_event_source *recheck;
	int recheck_stage;
	bool retry;    /* an affinity could not be applied yet */
	int event_cpu; /* the CPU whose event is being handled, or -1 */
	uint64_t applied_ns;
	cpu_set_t base_affinity; /* the process's own, for unpinned threads */
	struct cpuset_repair cpuset;
	/* Figures for status. */
	uint64_t events;
	uint64_t moves;
	uint64_t restores;
	uint64_t last_reaction_ns;
};

struct pinning_config {
	const struct cpu_pins *pins; /* the VM's vCPUs beyond pins->nr are unpinned */
	enum cpu_offline_policy policy;
	bool has_vmm_cpus;
	cpu_set_t vmm_cpus;
};

/* Before the vCPUs start. Computes where each goes first (a pin to an
 * offline CPU follows the policy, with a warning) and watches host CPUs. */
int pinning_init(struct pinning *p, struct vm *vm, struct host_cpu_monitor *mon, sd_event *event,
		 const struct pinning_config *cfg);
/* Safe on a pinning whose init failed part-way. */
void pinning_destroy(struct pinning *p);
/* Registers `pin` and the status part; events go to ctl from then on. */
int pinning_attach_control(struct pinning *p, struct control *ctl);
/* Affinity a vCPU thread starts with (for vm_start). */
const cpu_set_t *pinning_start_affinity(void *pinning, unsigned vcpu);

#endif
