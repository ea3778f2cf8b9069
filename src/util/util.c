/* Helpers for every layer: one-line logging to stderr, strict number and
 * CPU-list parsing, reads and writes of whole buffers, and futex waits.
 * Nothing here knows of KVM or the VM. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void log_msg(const char *level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "kvmhost: %s: %s\n", level, buf);
}

int parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_cpu_list(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (!s || !*s)
		return -EINVAL;
	char *copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	int ret = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",+", &save); tok; tok = strtok_r(NULL, ",+", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t lo, hi;
		if (dash) {
			*dash = '\0';
			if (parse_u64(tok, &lo) || parse_u64(dash + 1, &hi) || lo > hi) {
				ret = -EINVAL;
				break;
			}
		} else if (parse_u64(tok, &lo)) {
			ret = -EINVAL;
			break;
		} else {
			hi = lo;
		}
		if (hi >= CPU_SETSIZE) {
			ret = -ERANGE;
			break;
		}
		for (uint64_t c = lo; c <= hi; c++)
			CPU_SET(c, set);
	}
	free(copy);
	if (!ret && CPU_COUNT(set) == 0)
		ret = -EINVAL;
	return ret;
}

static int cpu_pins_grow(struct cpu_pins *pins, int vcpu)
{
	if (vcpu < pins->nr)
		return 0;
	cpu_set_t *grown = realloc(pins->sets, sizeof(*grown) * (size_t)(vcpu + 1));
	if (!grown)
		return -ENOMEM;
	for (int i = pins->nr; i <= vcpu; i++)
		CPU_ZERO(&grown[i]);
	pins->sets = grown;
	pins->nr = vcpu + 1;
	return 0;
}

/* One "VCPU=LIST" or a bare "LIST" continuing the last vCPU. */
static int pin_token(char *tok, struct cpu_pins *pins, int *vcpu, struct error *err)
{
	char *eq = strchr(tok, '=');
	const char *cpus = tok;
	if (eq) {
		*eq = '\0';
		uint64_t v;
		if (parse_u64(tok, &v) || v > CPU_PINS_MAX_VCPU) {
			return error_setf(err, "'%s' is not a vCPU index", tok);
		}
		*vcpu = (int)v;
		cpus = eq + 1;
		if (cpu_pins_grow(pins, *vcpu)) {
			return error_setf(err, "out of memory");
		}
		CPU_ZERO(&pins->sets[*vcpu]);
	} else if (*vcpu < 0) {
		return error_setf(err, "expected VCPU=HOSTCPU, got '%s'", tok);
	}
	cpu_set_t add;
	if (parse_cpu_list(cpus, &add)) {
		return error_setf(err, "'%s' is not a host CPU list", cpus);
	}
	CPU_OR(&pins->sets[*vcpu], &pins->sets[*vcpu], &add);
	return 0;
}

int parse_cpu_pins(const char *s, struct cpu_pins *pins, struct error *err)
{
	char *copy = strdup(s);
	if (!copy) {
		return error_setf(err, "out of memory");
	}
	int vcpu = -1, ret = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save))
		ret = pin_token(tok, pins, &vcpu, err);
	if (!ret && vcpu < 0) {
		error_setf(err, "empty pin list");
		ret = -1;
	}
	free(copy);
	return ret;
}

void cpu_pins_free(struct cpu_pins *pins)
{
	free(pins->sets);
	*pins = (struct cpu_pins){0};
}

char *format_cpu_list(const cpu_set_t *set, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int end = c;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, set))
			end++;
		int w = end > c ? snprintf(buf + n, len - n, "%s%d-%d", n ? "," : "", c, end)
				: snprintf(buf + n, len - n, "%s%d", n ? "," : "", c);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
		c = end;
	}
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int write_full_at(int fd, const void *buf, uint64_t len, uint64_t offset)
{
	const char *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)offset);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (uint64_t)w;
		offset += (uint64_t)w;
	}
	return 0;
}

int read_full_at(int fd, void *buf, uint64_t len, uint64_t offset)
{
	char *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (uint64_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	return (int)n;
}

void futex_wait(atomic_int *addr, int val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void futex_wake(atomic_int *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
