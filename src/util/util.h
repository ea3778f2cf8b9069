#ifndef KVMHOST_UTIL_H
#define KVMHOST_UTIL_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warning", __VA_ARGS__)
#define log_err(...)  log_msg("error", __VA_ARGS__)

/* Strict unsigned parse: the whole string, base 10, no sign, no overflow. */
int parse_u64(const char *s, uint64_t *out);

/* "0-3,5" or "2+4" style lists ('+' or ',' separated); cpus >= CPU_SETSIZE rejected. */
int parse_cpu_list(const char *s, cpu_set_t *set);
/* Formats a set as "0-2,5"; returns buf. */
char *format_cpu_list(const cpu_set_t *set, char *buf, size_t len);

uint64_t now_ns(void); /* CLOCK_MONOTONIC */

/* Private futexes: sleep while *addr == val; wake up to n sleepers. */
void futex_wait(atomic_int *addr, int val);
void futex_wake(atomic_int *addr, int n);

int write_full(int fd, const void *buf, size_t len);
/* Reads a small sysfs/proc file into buf (NUL-terminated); returns length or -errno. */
int read_file(const char *path, char *buf, size_t len);

#endif
