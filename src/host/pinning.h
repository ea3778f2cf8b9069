/* The VM's pinning policy: the desired host CPUs of each vCPU (and of the
 * VMM's own threads) are the truth; real affinities are reconciled against
 * them whenever host CPUs go offline or come back (the seed's patch 4). */
#ifndef KVMHOST_CPU_PINNING_H
#define KVMHOST_CPU_PINNING_H

#include <json-c/json.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "host/host_cpu.h"

struct vm;
struct control;

struct pinning {
	struct vm *vm;
	struct host_cpu_monitor *mon;
	struct host_cpu_notifier notifier;
	struct control *ctl;
	sd_event_source *recheck;
	int recheck_stage;
	bool retry;    /* an affinity could not be applied yet */
	int event_cpu; /* the CPU whose event is being handled, or -1 */
	int *changes;  /* per vCPU, scratch for reconcile */
	uint64_t applied_ns;
	cpu_set_t base_affinity; /* the process's own, for unpinned threads */
	/* cgroup v1 cpuset the VMM runs in, and the CPUs it had when we saw it. */
	char cpuset_dir[4096];
	cpu_set_t cpuset_cpus;
	/* Figures for status. */
	uint64_t events;
	uint64_t moves;
	uint64_t restores;
	uint64_t last_reaction_ns;
};

int pinning_init(struct pinning *p, struct vm *vm, struct host_cpu_monitor *mon);
void pinning_destroy(struct pinning *p);
void pinning_set_control(struct pinning *p, struct control *ctl);
/* Before the vCPUs start: where each goes first (a pin to an offline CPU
 * follows the policy, with a warning). */
void pinning_apply_initial(struct pinning *p, sd_event *event);
/* Affinity a vCPU thread starts with. */
const cpu_set_t *pinning_start_affinity(struct pinning *p, int vcpu);
/* `ctl NAME pin`: {"spec":"0=1,1=0"}. Returns a result or NULL with err. */
json_object *pinning_ctl(struct pinning *p, json_object *args, char *err, size_t errlen);
void pinning_status(struct pinning *p, json_object *status);

#endif
