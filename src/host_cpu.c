#include "host_cpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *host_cpu_sysfs_root(void)
{
	const char *env = getenv("KVMHOST_SYSFS_CPU");
	return env && *env ? env : "/sys/devices/system/cpu";
}

int host_cpu_read_mask(const char *root, const char *name, cpu_set_t *set)
{
	char path[4200], buf[4096];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	int n = read_file(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	buf[strcspn(buf, "\n")] = '\0';
	if (!buf[0]) {
		CPU_ZERO(set); /* e.g. "offline" when every CPU is online */
		return 0;
	}
	return parse_cpu_list(buf, set);
}
