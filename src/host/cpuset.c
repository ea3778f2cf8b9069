/* cgroup v1 cpuset repair (cpuset.h): the VMM's cpuset found through
 * /proc/self/mountinfo and /proc/self/cgroup, and a CPU that comes back
 * online written back into it and each ancestor, parents first, since a
 * cpuset may only hold CPUs its parent has. */
#include "host/cpuset.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/host_cpu.h"
#include "util/util.h"

static bool find_cpuset(char *dir, size_t len)
{
	char buf[8192], mnt[PATH_MAX] = "";
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

void cpuset_track(struct cpuset_repair *p)
{
	char dir[PATH_MAX];
	if (!find_cpuset(dir, sizeof(dir))) {
		p->dir[0] = '\0';
		return;
	}
	if (!strcmp(dir, p->dir))
		return;
	if (host_cpu_read_mask(dir, "cpuset.cpus", &p->cpus) == 0)
		snprintf(p->dir, sizeof(p->dir), "%s", dir);
}

/* Gives CPU `cpu` back to our cpuset and every ancestor, parents first. */
static void cpuset_restore(struct cpuset_repair *p, int cpu)
{
	if (!p->dir[0] || !CPU_ISSET(cpu, &p->cpus))
		return;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", p->dir);
	/* Every ancestor below the hierarchy's root, top down. */
	size_t starts[64];
	int n = 0;
	for (char *s = strchr(dir + 1, '/'); s && n < 64; s = strchr(s + 1, '/'))
		starts[n++] = (size_t)(s - dir);
	starts[n++] = strlen(dir);
	for (int i = 0; i < n; i++) {
		char sub[PATH_MAX], path[KVMHOST_PATH_MAX];
		snprintf(sub, sizeof(sub), "%.*s", (int)starts[i], dir);
		snprintf(path, sizeof(path), "%s/cpuset.cpus", sub);
		if (access(path, W_OK))
			continue;
		cpu_set_t cur;
		if (host_cpu_read_mask(sub, "cpuset.cpus", &cur) || CPU_ISSET(cpu, &cur))
			continue;
		char parent[KVMHOST_PATH_MAX];
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
void cpuset_repair(struct cpuset_repair *p, const cpu_set_t *online)
{
	cpu_set_t want, cur;
	if (!p->dir[0] || host_cpu_read_mask(p->dir, "cpuset.cpus", &cur))
		return;
	CPU_AND(&want, &p->cpus, online);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &want) && !CPU_ISSET(c, &cur))
			cpuset_restore(p, c);
}
