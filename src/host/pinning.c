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

/* ---- cgroup v1 cpuset: v1 drops an offline CPU from every cpuset for good. */

static bool find_cpuset(char *dir, size_t len)
{
	char buf[8192], mnt[4096] = "";
	char *lsave = NULL;
	/* Where the v1 cpuset hierarchy is mounted... */
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - cgroup ");
		if (!sep || !strstr(sep, "cpuset"))
			continue;
		char root[1024], point[2048];
		if (sscanf(line, "%*d %*d %*s %1023s %2047s", root, point) == 2 &&
		    !strcmp(root, "/")) {
			snprintf(mnt, sizeof(mnt), "%s", point);
			break;
		}
	}
	fclose(f);
	if (!mnt[0] || read_file("/proc/self/cgroup", buf, sizeof(buf)) < 0)
		return false;
	/* ...and our place in it: "N:cpuset:/path". */
	for (char *l = strtok_r(buf, "\n", &lsave); l; l = strtok_r(NULL, "\n", &lsave)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		bool cpuset = false;
		char *save = NULL;
		for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
			cpuset |= !strcmp(t, "cpuset");
		if (!cpuset)
			continue;
		if (!strcmp(c2 + 1, "/"))
			return false; /* the root cpuset always has every CPU */
		int n = snprintf(dir, len, "%s%s", mnt, c2 + 1);
		return n > 0 && (size_t)n < len;
	}
	return false;
}

static void track_cpuset(struct pinning *p)
{
	char dir[4096];
	if (!find_cpuset(dir, sizeof(dir))) {
		p->cpuset_dir[0] = '\0';
		return;
	}
	if (!strcmp(dir, p->cpuset_dir))
		return;
	if (host_cpu_read_mask(dir, "cpuset.cpus", &p->cpuset_cpus) == 0)
		snprintf(p->cpuset_dir, sizeof(p->cpuset_dir), "%s", dir);
}

/* Gives CPU `cpu` back to our cpuset and every ancestor, parents first. */
static void cpuset_restore(struct pinning *p, int cpu)
{
	if (!p->cpuset_dir[0] || !CPU_ISSET(cpu, &p->cpuset_cpus))
		return;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", p->cpuset_dir);
	/* Every ancestor below the hierarchy's root, top down. */
	size_t starts[64];
	int n = 0;
	for (char *s = strchr(dir + 1, '/'); s && n < 64; s = strchr(s + 1, '/'))
		starts[n++] = (size_t)(s - dir);
	starts[n++] = strlen(dir);
	for (int i = 0; i < n; i++) {
		char sub[4096], path[4200];
		snprintf(sub, sizeof(sub), "%.*s", (int)starts[i], dir);
		snprintf(path, sizeof(path), "%s/cpuset.cpus", sub);
		if (access(path, W_OK))
			continue;
		cpu_set_t cur;
		if (host_cpu_read_mask(sub, "cpuset.cpus", &cur) || CPU_ISSET(cpu, &cur))
			continue;
		char parent[4200];
		snprintf(parent, sizeof(parent), "%s/..", sub);
		cpu_set_t pcur;
		/* The hierarchy's root always has it; skip it (it is not writable anyway). */
		if (host_cpu_read_mask(parent, "cpuset.cpus", &pcur))
			continue;
		CPU_SET(cpu, &cur);
		char list[1024];
		format_cpu_list(&cur, list, sizeof(list));
		FILE *f = fopen(path, "w");
		if (!f || fputs(list, f) < 0 || fclose(f) != 0) {
			log_warn("cannot give host CPU %d back to cpuset %s", cpu, sub);
			continue;
		}
		log_info("host CPU %d given back to cpuset %s", cpu, sub);
	}
}

/* Every CPU our cpuset had and that is online again goes back into it. */
static void cpuset_repair(struct pinning *p, const cpu_set_t *online)
{
	cpu_set_t want, cur;
	if (!p->cpuset_dir[0] || host_cpu_read_mask(p->cpuset_dir, "cpuset.cpus", &cur))
		return;
	CPU_AND(&want, &p->cpuset_cpus, online);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &want) && !CPU_ISSET(c, &cur))
			cpuset_restore(p, c);
}

/* ---- the policy */

static void count_load(struct vm *vm, int skip, int *load)
{
	memset(load, 0, sizeof(int) * CPU_SETSIZE);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		if ((int)i == skip)
			continue;
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &vm->vcpus[i].intended))
				load[c]++;
	}
}

/* The least-loaded online CPU among the VM's other pinned CPUs, else among
 * all online CPUs we may use. */
static int fallback_cpu(struct pinning *p, int vcpu, const cpu_set_t *online)
{
	struct vm *vm = p->vm;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if ((int)i != vcpu && vm->vcpus[i].has_pin)
			CPU_OR(&set, &set, &vm->vcpus[i].desired);
	CPU_AND(&set, &set, online);
	if (!CPU_COUNT(&set))
		CPU_AND(&set, &p->base_affinity, online);
	if (!CPU_COUNT(&set))
		set = *online;
	static int load[CPU_SETSIZE];
	count_load(vm, vcpu, load);
	int best = -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && (best < 0 || load[c] < load[best]))
			best = c;
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
	const struct run_options *o = &p->vm->opts;
	if (!o->has_vmm_cpus)
		return;
	cpu_set_t target;
	CPU_AND(&target, &o->vmm_cpus, online);
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
	struct vcpu *v = &p->vm->vcpus[i];
	cpu_set_t avail;
	CPU_AND(&avail, &v->desired, online);
	if (CPU_COUNT(&avail)) {
		*target = avail;
		*displaced = false;
		return;
	}
	*displaced = true;
	if (p->vm->opts.on_cpu_offline == OFFLINE_PAUSE) {
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

/* Brings every vCPU's real affinity in line with its desired CPUs and what is
 * online. Idempotent: safe to run on any event, or none. Never waits for a
 * vCPU: affinity applies to the thread wherever it is. All affinities are
 * applied first; logging and events come after. */
static void reconcile(struct pinning *p)
{
	struct vm *vm = p->vm;
	const cpu_set_t *online = host_cpu_online(p->mon);
	bool pause_policy = vm->opts.on_cpu_offline == OFFLINE_PAUSE;

	cpuset_repair(p, online); /* first: it rewrites every member's affinity */

	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		p->changes[i] = CH_NONE;
		if (!v->has_pin)
			continue;
		cpu_set_t target, actual;
		bool displaced, was = v->displaced;
		bool parked = vcpu_park_reasons(v) & PARK_CPU_OFFLINE;
		choose(p, (int)i, online, &target, &displaced);
		if (pause_policy && displaced && !parked) {
			vcpu_park(v, PARK_CPU_OFFLINE); /* stop it before anything else */
			p->changes[i] = CH_PAUSED;
		}
		pid_t tid = atomic_load(&v->tid);
		/* sched_getaffinity hides offline CPUs, so a mask the kernel widened
		 * over an offline CPU reads as ours: also compare with what we last
		 * applied. */
		bool have_actual = tid > 0 && sched_getaffinity(tid, sizeof(actual), &actual) == 0;
		if (tid > 0 && (!have_actual || !CPU_EQUAL(&actual, &target) ||
				!CPU_EQUAL(&v->intended, &target))) {
			char who[32];
			snprintf(who, sizeof(who), "vCPU %u", i);
			if (set_affinity(tid, &target, who)) {
				p->retry = true; /* not applied: nothing changed, look again soon */
				continue;
			}
		}
		v->intended = target;
		v->displaced = displaced;
		if (!displaced && parked) {
			vcpu_unpark(v, PARK_CPU_OFFLINE); /* back on its own CPU first */
			p->changes[i] = CH_RESUMED;
		} else if (displaced && !was && !pause_policy) {
			p->changes[i] = CH_MOVED;
		} else if (!displaced && was) {
			p->changes[i] = CH_RESTORED;
		}
	}
	p->applied_ns = now_ns();
	reconcile_vmm(p, online);

	/* Report the policy's decisions, whether or not the kernel had already
	 * put a thread where we want it. */
	char a[256], b[256];
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		const cpu_set_t *t = &v->intended;
		switch (p->changes[i]) {
		case CH_MOVED:
			p->moves++;
			log_info("vCPU %u moved to host CPU %s: its CPUs (%s) are offline", i,
				 cpus_str(t, a, sizeof(a)), cpus_str(&v->desired, b, sizeof(b)));
			emit(p, "vcpu-moved", (int)i, &v->desired, t, p->event_cpu);
			break;
		case CH_RESTORED:
			p->restores++;
			log_info("vCPU %u pinned to host CPU %s again", i,
				 cpus_str(t, a, sizeof(a)));
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
}

static int on_recheck(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pinning *p = userdata;
	(void)usec;
	/* Some kernels (cpuset) rewrite affinities asynchronously after the
	 * event: look again a little later, twice. */
	host_cpu_monitor_resync(p->mon);
	track_cpuset(p); /* off the event's fast path: the VMM may have been moved */
	reconcile(p);
	uint64_t next = p->retry ? RETRY_USEC : p->recheck_stage++ == 0 ? RECHECK2_USEC : 0;
	p->retry = false;
	if (next) {
		sd_event_source_set_time_relative(s, next);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void schedule_recheck(struct pinning *p)
{
	p->recheck_stage = 0;
	sd_event_source_set_time_relative(p->recheck, RECHECK1_USEC);
	sd_event_source_set_enabled(p->recheck, SD_EVENT_ONESHOT);
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
	if (p->recheck)
		schedule_recheck(p);
	if (p->retry && p->recheck) {
		p->retry = false;
		sd_event_source_set_time_relative(p->recheck, RETRY_USEC);
	}
}

int pinning_init(struct pinning *p, struct vm *vm, struct host_cpu_monitor *mon)
{
	memset(p, 0, sizeof(*p));
	p->vm = vm;
	p->mon = mon;
	if (sched_getaffinity(0, sizeof(p->base_affinity), &p->base_affinity))
		p->base_affinity = *host_cpu_online(mon);
	p->event_cpu = -1;
	p->changes = calloc(vm->nr_vcpus ? vm->nr_vcpus : 1, sizeof(*p->changes));
	if (!p->changes)
		return -ENOMEM;
	p->notifier = (struct host_cpu_notifier){.fn = on_host_cpu, .opaque = p};
	track_cpuset(p);
	return host_cpu_notifier_register(mon, &p->notifier);
}

void pinning_destroy(struct pinning *p)
{
	if (p->mon)
		host_cpu_notifier_unregister(p->mon, &p->notifier);
	sd_event_source_disable_unref(p->recheck);
	p->recheck = NULL;
	free(p->changes);
	p->changes = NULL;
	p->mon = NULL;
}

void pinning_set_control(struct pinning *p, struct control *ctl)
{
	p->ctl = ctl;
}

void pinning_apply_initial(struct pinning *p, sd_event *event)
{
	struct vm *vm = p->vm;
	const cpu_set_t *online = host_cpu_online(p->mon);
	if (event)
		sd_event_add_time_relative(event, &p->recheck, CLOCK_MONOTONIC, RECHECK1_USEC, 0,
					   on_recheck, p);
	if (p->recheck)
		sd_event_source_set_enabled(p->recheck, SD_EVENT_OFF);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		CPU_AND(&v->intended, &p->base_affinity, online);
		if (!v->has_pin)
			continue;
		cpu_set_t avail;
		CPU_AND(&avail, &v->desired, online);
		if (CPU_COUNT(&avail))
			continue;
		char a[256];
		log_warn("vCPU %u: host CPU %s is offline; applying --on-cpu-offline %s", i,
			 cpus_str(&v->desired, a, sizeof(a)),
			 vm->opts.on_cpu_offline == OFFLINE_PAUSE ? "pause" : "migrate");
	}
	/* Threads do not exist yet: this only computes `intended` and parks. */
	reconcile(p);
}

const cpu_set_t *pinning_start_affinity(struct pinning *p, int vcpu)
{
	struct vcpu *v = &p->vm->vcpus[vcpu];
	return CPU_COUNT(&v->intended) ? &v->intended : &p->base_affinity;
}

json_object *pinning_ctl(struct pinning *p, json_object *args, char *err, size_t errlen)
{
	struct vm *vm = p->vm;
	json_object *spec;
	if (!args || !json_object_object_get_ex(args, "spec", &spec) ||
	    !json_object_is_type(spec, json_type_string)) {
		snprintf(err, errlen, "pin needs {\"args\":{\"spec\":\"VCPU=HOSTCPU[,...]\"}}");
		return NULL;
	}
	static struct run_options tmp;
	memset(&tmp, 0, sizeof(tmp));
	tmp.max_pinned_vcpu = -1;
	if (parse_cpu_pin(json_object_get_string(spec), &tmp, err, errlen))
		return NULL;
	if (tmp.max_pinned_vcpu >= (int)vm->nr_vcpus) {
		snprintf(err, errlen, "vCPU %d does not exist (the VM has %u)", tmp.max_pinned_vcpu,
			 vm->nr_vcpus);
		return NULL;
	}
	const cpu_set_t *present = host_cpu_present(p->mon);
	for (int i = 0; i <= tmp.max_pinned_vcpu; i++) {
		if (!tmp.pins[i].set)
			continue;
		cpu_set_t missing;
		CPU_XOR(&missing, &tmp.pins[i].cpus, present);
		CPU_AND(&missing, &missing, &tmp.pins[i].cpus);
		if (CPU_COUNT(&missing)) {
			char a[256];
			snprintf(err, errlen, "host CPU %s does not exist",
				 format_cpu_list(&missing, a, sizeof(a)));
			return NULL;
		}
	}
	for (int i = 0; i <= tmp.max_pinned_vcpu; i++) {
		if (!tmp.pins[i].set)
			continue;
		vm->vcpus[i].has_pin = true;
		vm->vcpus[i].desired = tmp.pins[i].cpus;
		vm->vcpus[i].displaced = false;
		CPU_ZERO(&vm->vcpus[i].intended);
	}
	reconcile(p);
	json_object *o = json_object_new_array();
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_int((int)i));
		json_object_object_add(j, "desired",
				       v->has_pin ? protocol_cpu_list_json(&v->desired) : NULL);
		json_object_object_add(j, "displaced", json_object_new_boolean(v->displaced));
		json_object_array_add(o, j);
	}
	return o;
}

void pinning_status(struct pinning *p, json_object *status)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "online", protocol_cpu_list_json(host_cpu_online(p->mon)));
	json_object_object_add(o, "hotplug", json_object_new_boolean(host_cpu_can_hotplug(p->mon)));
	json_object_object_add(o, "events", json_object_new_uint64(p->events));
	json_object_object_add(o, "moves", json_object_new_uint64(p->moves));
	json_object_object_add(o, "restores", json_object_new_uint64(p->restores));
	json_object_object_add(o, "last_reaction_us",
			       json_object_new_double((double)p->last_reaction_ns / 1e3));
	json_object_object_add(o, "cpuset",
			       p->cpuset_dir[0] ? json_object_new_string(p->cpuset_dir) : NULL);
	json_object_object_add(status, "host_cpus", o);
}
