#ifndef KVMHOST_UTIL_H
#define KVMHOST_UTIL_H

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A path made of a directory in a PATH_MAX buffer (the runtime or state
 * directory, a sysfs or cgroup one) and a name of ours in it: "/NAME.EXT"
 * with NAME at most VM_NAME_MAX (64) bytes, plus a save's ".tmp", or
 * "/cpuN/online". 104 bytes over PATH_MAX hold any of them (rundir.c
 * checks it); `ctl save`'s own paths are kept under 4000 bytes. */
#define KVMHOST_PATH_MAX (PATH_MAX + 104)

void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warning", __VA_ARGS__)
#define log_err(...)  log_msg("error", __VA_ARGS__)

/* Strict unsigned parse: the whole string, base 10, no sign, no overflow. */
int parse_u64(const char *s, uint64_t *out);

/* "0-3,5" or "2+4" style lists ('+' or ',' separated); cpus >= CPU_SETSIZE rejected. */
int parse_cpu_list(const char *s, cpu_set_t *set);
/* vCPU -> host CPUs, as `--cpu-pin` and `ctl pin` give it: sets[i] for
 * vCPU i < nr; an empty set means vCPU i is not pinned. */
struct cpu_pins {
	int nr;
	cpu_set_t *sets;
};
#define CPU_PINS_MAX_VCPU 1023
/* Adds "0=1,3,1=2" (vCPU 0 on {1,3}, vCPU 1 on {2}) to pins, growing it;
 * -1 with a message in err. A vCPU named again gets the new set. */
int parse_cpu_pins(const char *s, struct cpu_pins *pins, struct error *err);
void cpu_pins_free(struct cpu_pins *pins);

/* Formats a set as "0-2,5"; returns buf. */
char *format_cpu_list(const cpu_set_t *set, char *buf, size_t len);

uint64_t now_ns(void); /* CLOCK_MONOTONIC */

/* Private futexes: sleep while *addr == val; wake up to n sleepers. */
void futex_wait(atomic_int *addr, int val);
void futex_wake(atomic_int *addr, int n);

int write_full(int fd, const void *buf, size_t len);
/* All of buf at `offset` (pwrite until done); -errno. */
int write_full_at(int fd, const void *buf, uint64_t len, uint64_t offset);
/* All `len` bytes at `offset`; -EIO if the file ends first. */
int read_full_at(int fd, void *buf, uint64_t len, uint64_t offset);
/* Reads a small sysfs/proc file into buf (NUL-terminated); returns length or -errno. */
int read_file(const char *path, char *buf, size_t len);

#endif
