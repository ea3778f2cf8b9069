/* The pinning policy (pinning.h) at work: on every host CPU event, and
 * again ~20 ms and ~200 ms later (cpusets may rewrite affinities after
 * it), every vCPU's and the VMM's threads' affinities are reconciled with
 * what is wanted and what is online; a vCPU with no CPU left is moved or
 * parked as the policy says. Also `ctl pin` and pinning's part of status. */
#include "host/pinning.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/protocol.h"
#include "control/server.h"
#include "core/vm.h"
#include "util/event.h"
#include "util/util.h"

#define RECHECK1_USEC 20000
#define RECHECK2_USEC 200000
#define RETRY_USEC    2000

static const char *cpus_str(const cpu_set_t *s, char *buf, size_t len)
{
	if (!CPU_COUNT(s))
		return "none";
	return format_cpu_list(s, buf, len);
}

static void emit(struct pinning *p, const char *name, int vcpu, const cpu_set_t *from,
		 const cpu_set_t *to, int cpu)
{
	json_object *o = json_object_new_object();
	if (vcpu >= 0)
		json_object_object_add(o, "vcpu", json_object_new_int(vcpu));
	if (from)
		json_object_object_add(o, "from", protocol_cpu_list_json(from));
	if (to)
		json_object_object_add(o, "to", protocol_cpu_list_json(to));
	if (cpu >= 0)
		json_object_object_add(o, "host_cpu", json_object_new_int(cpu));
	control_emit_event(p->ctl, name, o);
}

/* ---- the policy */

/* How many of the other vCPUs may run on host CPU c. */
static int load_on(struct pinning *p, int skip, int c)
{
	int load = 0;
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++)
		load += (int)i != skip && CPU_ISSET(c, &p->vcpus[i].intended);
	return load;
}

/* The least-loaded online CPU among the VM's other pinned CPUs, else among
 * all online CPUs we may use. */
static int fallback_cpu(struct pinning *p, int vcpu, const cpu_set_t *online)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++)
		if ((int)i != vcpu && p->vcpus[i].has_pin)
			CPU_OR(&set, &set, &p->vcpus[i].desired);
	CPU_AND(&set, &set, online);
	if (!CPU_COUNT(&set))
		CPU_AND(&set, &p->base_affinity, online);
	if (!CPU_COUNT(&set))
		set = *online;
	int best = -1, best_load = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		int load = load_on(p, vcpu, c);
		if (best < 0 || load < best_load)
			best = c, best_load = load;
	}
	return best;
}

static int set_affinity(pid_t tid, const cpu_set_t *set, const char *who)
{
	if (tid <= 0 || sched_setaffinity(tid, sizeof(*set), set) == 0)
		return 0;
	int err = errno;
	/* EINVAL right after an online: the CPU is up but not yet active for
	 * the scheduler. The caller retries; no need to shout. */
	if (err != EINVAL) {
		char buf[256];
		log_warn("%s: cannot set affinity to %s: %s", who, cpus_str(set, buf, sizeof(buf)),
			 strerror(err));
	}
	return -err;
}

static bool is_vcpu_thread(struct vm *vm, pid_t tid)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if (atomic_load(&vm->vcpus[i].tid) == tid)
			return true;
	return false;
}

/* The VMM's own threads (main loop, and any the kernel starts for the VM,
 * such as KVM's workers) follow --vmm-cpus. */
static void reconcile_vmm(struct pinning *p, const cpu_set_t *online)
{
	if (!p->has_vmm_cpus)
		return;
	cpu_set_t target;
	CPU_AND(&target, &p->vmm_cpus, online);
	if (!CPU_COUNT(&target))
		CPU_AND(&target, &p->base_affinity, online);
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t tid;
		if (parse_u64(e->d_name, &tid) || is_vcpu_thread(p->vm, (pid_t)tid))
			continue;
		/* Some kernel-made threads refuse (EINVAL); they are not ours to move. */
		if (sched_setaffinity((pid_t)tid, sizeof(target), &target) < 0 && errno != EINVAL)
			log_warn("VMM thread %llu: cannot set affinity: %s",
				 (unsigned long long)tid, strerror(errno));
	}
	closedir(d);
}

enum change { CH_NONE, CH_MOVED, CH_RESTORED, CH_PAUSED, CH_RESUMED };

/* Where a vCPU should run now; sets *displaced. */
static void choose(struct pinning *p, int i, const cpu_set_t *online, cpu_set_t *target,
		   bool *displaced)
{
	struct pin_state *v = &p->vcpus[i];
	cpu_set_t avail;
	CPU_AND(&avail, &v->desired, online);
	if (CPU_COUNT(&avail)) {
		*target = avail;
		*displaced = false;
		return;
	}
	*displaced = true;
	if (p->policy == OFFLINE_PAUSE) {
		/* Parked, it does not run; keep the thread somewhere valid. */
		CPU_AND(target, &p->base_affinity, online);
		return;
	}
	/* Keep a stand-in already chosen while it stays online. */
	CPU_AND(target, &v->intended, online);
	if (v->displaced && CPU_COUNT(target) == 1)
		return;
	int c = fallback_cpu(p, i, online);
	CPU_ZERO(target);
	if (c >= 0)
		CPU_SET(c, target);
}

/* Applies the policy to one vCPU; returns false if its affinity could not be
 * set yet (nothing changed: look again soon). */
static bool reconcile_vcpu(struct pinning *p, uint32_t i, const cpu_set_t *online)
{
	struct vcpu *vcpu = &p->vm->vcpus[i];
	struct pin_state *v = &p->vcpus[i];
	bool pause_policy = p->policy == OFFLINE_PAUSE;
	cpu_set_t target, actual;
	bool displaced, was = v->displaced;
	bool parked = vcpu_park_reasons(vcpu) & PARK_CPU_OFFLINE;
	choose(p, (int)i, online, &target, &displaced);
	if (pause_policy && displaced && !parked) {
		vcpu_park(vcpu, PARK_CPU_OFFLINE); /* stop it before anything else */
		v->change = CH_PAUSED;
	}
	pid_t tid = atomic_load(&vcpu->tid);
	/* sched_getaffinity hides offline CPUs, so a mask the kernel widened
	 * over an offline CPU reads as ours: also compare with what we last
	 * applied. */
	bool have_actual = tid > 0 && sched_getaffinity(tid, sizeof(actual), &actual) == 0;
	if (tid > 0 &&
	    (!have_actual || !CPU_EQUAL(&actual, &target) || !CPU_EQUAL(&v->intended, &target))) {
		char who[32];
		snprintf(who, sizeof(who), "vCPU %u", i);
		if (set_affinity(tid, &target, who))
			return false;
	}
	v->intended = target;
	v->displaced = displaced;
	if (!displaced && parked) {
		vcpu_unpark(vcpu, PARK_CPU_OFFLINE); /* back on its own CPU first */
		v->change = CH_RESUMED;
	} else if (displaced && !was && !pause_policy) {
		v->change = CH_MOVED;
	} else if (!displaced && was) {
		v->change = CH_RESTORED;
	}
	return true;
}

/* The policy's decision for one vCPU, to the log and the subscribers. */
static void report_change(struct pinning *p, uint32_t i)
{
	struct pin_state *v = &p->vcpus[i];
	const cpu_set_t *t = &v->intended;
	char a[256], b[256];
	switch (v->change) {
	case CH_MOVED:
		p->moves++;
		log_info("vCPU %u moved to host CPU %s: its CPUs (%s) are offline", i,
			 cpus_str(t, a, sizeof(a)), cpus_str(&v->desired, b, sizeof(b)));
		emit(p, "vcpu-moved", (int)i, &v->desired, t, p->event_cpu);
		break;
	case CH_RESTORED:
		p->restores++;
		log_info("vCPU %u pinned to host CPU %s again", i, cpus_str(t, a, sizeof(a)));
		emit(p, "vcpu-restored", (int)i, NULL, t, p->event_cpu);
		break;
	case CH_PAUSED:
		log_info("vCPU %u paused: none of its host CPUs (%s) is online", i,
			 cpus_str(&v->desired, a, sizeof(a)));
		emit(p, "vcpu-paused", (int)i, &v->desired, NULL, p->event_cpu);
		break;
	case CH_RESUMED:
		p->restores++;
		log_info("vCPU %u resumes on host CPU %s", i, cpus_str(t, a, sizeof(a)));
		emit(p, "vcpu-resumed", (int)i, NULL, t, p->event_cpu);
		break;
	default:
		break;
	}
}

/* Brings every vCPU's real affinity in line with its desired CPUs and what is
 * online. Idempotent: safe to run on any event, or none. Never waits for a
 * vCPU: affinity applies to the thread wherever it is. All affinities are
 * applied first; logging and events come after. */
static void reconcile(struct pinning *p)
{
	const cpu_set_t *online = host_cpu_online(p->mon);
	cpuset_repair(&p->cpuset, online); /* first: it rewrites every member's affinity */
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++) {
		p->vcpus[i].change = CH_NONE;
		if (p->vcpus[i].has_pin && !reconcile_vcpu(p, i, online))
			p->retry = true;
	}
	p->applied_ns = now_ns();
	reconcile_vmm(p, online);
	/* Report the policy's decisions, whether or not the kernel had already
	 * put a thread where we want it. */
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++)
		report_change(p, i);
}

static int on_recheck(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pinning *p = userdata;
	(void)usec;
	/* Some kernels (cpuset) rewrite affinities asynchronously after the
	 * event: look again a little later, twice. */
	host_cpu_monitor_resync(p->mon);
	cpuset_track(&p->cpuset); /* off the event's fast path: the VMM may have been moved */
	reconcile(p);
	uint64_t next = p->retry ? RETRY_USEC : p->recheck_stage++ == 0 ? RECHECK2_USEC : 0;
	p->retry = false;
	if (next) {
		event_timer_rearm(s, next);
	}
	return 0;
}

static void schedule_recheck(struct pinning *p)
{
	p->recheck_stage = 0;
	event_timer_rearm(p->recheck, RECHECK1_USEC);
}

static void on_host_cpu(void *opaque, enum host_cpu_event ev, int cpu, const cpu_set_t *online,
			uint64_t uevent_ns)
{
	struct pinning *p = opaque;
	(void)online;
	bool up = ev == HOST_CPU_ONLINE;
	p->event_cpu = cpu;
	reconcile(p);
	p->event_cpu = -1;
	p->events++;
	p->last_reaction_ns = uevent_ns ? p->applied_ns - uevent_ns : 0;
	log_info("host CPU %d is %s", cpu, up ? "online" : "offline");
	json_object *o = json_object_new_object();
	json_object_object_add(o, "host_cpu", json_object_new_int(cpu));
	json_object_object_add(o, "online", json_object_new_boolean(up));
	json_object_object_add(o, "reaction_us",
			       json_object_new_double((double)p->last_reaction_ns / 1e3));
	control_emit_event(p->ctl, "host-cpu", o);
	schedule_recheck(p);
	if (p->retry) {
		p->retry = false;
		event_timer_rearm(p->recheck, RETRY_USEC);
	}
}

/* Where each vCPU goes first; threads do not exist yet, so this only
 * computes `intended` (and parks, under the pause policy). */
static void apply_initial(struct pinning *p)
{
	const cpu_set_t *online = host_cpu_online(p->mon);
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++) {
		struct pin_state *v = &p->vcpus[i];
		CPU_AND(&v->intended, &p->base_affinity, online);
		cpu_set_t avail;
		CPU_AND(&avail, &v->desired, online);
		if (!v->has_pin || CPU_COUNT(&avail))
			continue;
		char a[256];
		log_warn("vCPU %u: host CPU %s is offline; applying --on-cpu-offline %s", i,
			 cpus_str(&v->desired, a, sizeof(a)),
			 p->policy == OFFLINE_PAUSE ? "pause" : "migrate");
	}
	reconcile(p);
}

int pinning_init(struct pinning *p, struct vm *vm, struct host_cpu_monitor *mon, sd_event *event,
		 const struct pinning_config *cfg)
{
	memset(p, 0, sizeof(*p));
	p->vm = vm;
	p->mon = mon;
	p->policy = cfg->policy;
	p->has_vmm_cpus = cfg->has_vmm_cpus;
	p->vmm_cpus = cfg->vmm_cpus;
	p->event_cpu = -1;
	if (sched_getaffinity(0, sizeof(p->base_affinity), &p->base_affinity))
		p->base_affinity = *host_cpu_online(mon);
	p->vcpus = calloc(vm->nr_vcpus ? vm->nr_vcpus : 1, sizeof(*p->vcpus));
	if (!p->vcpus)
		return -ENOMEM;
	for (int i = 0; cfg->pins && i < cfg->pins->nr && i < (int)vm->nr_vcpus; i++) {
		p->vcpus[i].has_pin = CPU_COUNT(&cfg->pins->sets[i]) > 0;
		p->vcpus[i].desired = cfg->pins->sets[i];
	}
	int r = sd_event_add_time_relative(event, &p->recheck, CLOCK_MONOTONIC, RECHECK1_USEC, 0,
					   on_recheck, p);
	if (r >= 0)
		r = sd_event_source_set_enabled(p->recheck, SD_EVENT_OFF);
	if (r < 0) {
		log_err("pinning: cannot set up its timer: %s", strerror(-r));
		pinning_destroy(p);
		return r;
	}
	cpuset_track(&p->cpuset);
	apply_initial(p);
	p->notifier = (struct host_cpu_notifier){.fn = on_host_cpu, .opaque = p};
	host_cpu_notifier_register(mon, &p->notifier); /* always succeeds */
	p->registered = true;
	return 0;
}

void pinning_destroy(struct pinning *p)
{
	if (p->registered)
		host_cpu_notifier_unregister(p->mon, &p->notifier);
	p->registered = false;
	p->recheck = sd_event_source_disable_unref(p->recheck);
	free(p->vcpus);
	p->vcpus = NULL;
}

const cpu_set_t *pinning_start_affinity(void *pinning, unsigned vcpu)
{
	struct pinning *p = pinning;
	struct pin_state *v = &p->vcpus[vcpu];
	return CPU_COUNT(&v->intended) ? &v->intended : &p->base_affinity;
}

/* Every pinned host CPU must exist; -1 with err naming the ones that do not. */
static int check_present(struct pinning *p, const struct cpu_pins *pins, struct error *err)
{
	const cpu_set_t *present = host_cpu_present(p->mon);
	for (int i = 0; i < pins->nr; i++) {
		cpu_set_t missing;
		CPU_XOR(&missing, &pins->sets[i], present);
		CPU_AND(&missing, &missing, &pins->sets[i]);
		if (CPU_COUNT(&missing)) {
			char a[256];
			return error_setf(err, "host CPU %s does not exist",
					  format_cpu_list(&missing, a, sizeof(a)));
		}
	}
	return 0;
}

static json_object *pins_json(struct pinning *p)
{
	json_object *o = json_object_new_array();
	for (uint32_t i = 0; i < p->vm->nr_vcpus; i++) {
		struct pin_state *v = &p->vcpus[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_int((int)i));
		json_object_object_add(j, "desired",
				       v->has_pin ? protocol_cpu_list_json(&v->desired) : NULL);
		json_object_object_add(j, "displaced", json_object_new_boolean(v->displaced));
		json_object_array_add(o, j);
	}
	return o;
}

/* `ctl NAME pin`: {"spec":"0=1,1=0"}. */
static json_object *cmd_pin(void *opaque, json_object *args, struct error *err)
{
	struct pinning *p = opaque;
	json_object *spec;
	if (!args || !json_object_object_get_ex(args, "spec", &spec) ||
	    !json_object_is_type(spec, json_type_string)) {
		error_setf(err, "pin needs {\"args\":{\"spec\":\"VCPU=HOSTCPU[,...]\"}}");
		return NULL;
	}
	struct cpu_pins pins = {0};
	json_object *result = NULL;
	if (parse_cpu_pins(json_object_get_string(spec), &pins, err))
		goto out;
	if (pins.nr > (int)p->vm->nr_vcpus) {
		error_setf(err, "vCPU %d does not exist (the VM has %u)", pins.nr - 1,
			   p->vm->nr_vcpus);
		goto out;
	}
	if (check_present(p, &pins, err))
		goto out;
	for (int i = 0; i < pins.nr; i++) {
		if (!CPU_COUNT(&pins.sets[i]))
			continue;
		p->vcpus[i] = (struct pin_state){.has_pin = true, .desired = pins.sets[i]};
	}
	reconcile(p);
	result = pins_json(p);
out:
	cpu_pins_free(&pins);
	return result;
}

/* Per vCPU: its real affinity (`pinned`, for a pinned vCPU), what was asked
 * (`desired`), and whether it runs elsewhere; then the host CPUs' figures. */
static void vcpus_status(struct pinning *p, json_object *vcpus)
{
	for (uint32_t i = 0; i < p->vm->nr_vcpus && i < json_object_array_length(vcpus); i++) {
		struct pin_state *v = &p->vcpus[i];
		json_object *j = json_object_array_get_idx(vcpus, i);
		cpu_set_t actual;
		bool has_actual = vcpu_get_affinity(&p->vm->vcpus[i], &actual);
		bool displaced = v->displaced;
		if (v->has_pin && has_actual && !displaced) {
			/* Running somewhere it was not asked to: the kernel moved it. */
			cpu_set_t outside;
			CPU_XOR(&outside, &actual, &v->desired);
			CPU_AND(&outside, &outside, &actual);
			displaced = CPU_COUNT(&outside) > 0;
		}
		json_object_object_add(j, "pinned",
				       v->has_pin && has_actual ? protocol_cpu_list_json(&actual)
								: NULL);
		json_object_object_add(j, "desired",
				       v->has_pin ? protocol_cpu_list_json(&v->desired) : NULL);
		json_object_object_add(j, "displaced", json_object_new_boolean(displaced));
	}
}

static void status_part(void *opaque, json_object *status)
{
	struct pinning *p = opaque;
	json_object *vcpus;
	if (json_object_object_get_ex(status, "vcpus", &vcpus))
		vcpus_status(p, vcpus);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "online", protocol_cpu_list_json(host_cpu_online(p->mon)));
	json_object_object_add(o, "hotplug", json_object_new_boolean(host_cpu_can_hotplug(p->mon)));
	json_object_object_add(o, "events", json_object_new_uint64(p->events));
	json_object_object_add(o, "moves", json_object_new_uint64(p->moves));
	json_object_object_add(o, "restores", json_object_new_uint64(p->restores));
	json_object_object_add(o, "last_reaction_us",
			       json_object_new_double((double)p->last_reaction_ns / 1e3));
	json_object_object_add(o, "cpuset",
			       p->cpuset.dir[0] ? json_object_new_string(p->cpuset.dir) : NULL);
	json_object_object_add(status, "host_cpus", o);
}

int pinning_attach_control(struct pinning *p, struct control *ctl)
{
	p->ctl = ctl;
	int r = control_register(ctl, "pin", cmd_pin, p);
	return r ? r : control_add_status(ctl, status_part, p);
}
