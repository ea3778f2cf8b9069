/* The control protocol: one JSON object per line each way, parsed and built
 * with json-c. Kept apart from sockets and from the VM so it can be tested. */
#ifndef KVMHOST_PROTOCOL_H
#define KVMHOST_PROTOCOL_H

#include <json-c/json.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTOCOL_MAX_LINE 65536

enum ctl_cmd {
	CMD_STATUS,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_QUIT,
	CMD_POWEROFF,
	CMD_SUBSCRIBE,
	CMD_PIN,
	CMD_REGS,
	CMD_HOST_SLEEP,
};

struct ctl_request {
	enum ctl_cmd cmd;
	json_object *root; /* owns the parsed request; put with ctl_request_free */
	json_object *args; /* may be NULL */
	json_object *id;   /* echoed back if present */
};

/* Returns 0 or -1 with a message for the client in err; either way the
 * caller frees req (on error it may still hold the object, for its id). */
int protocol_parse_request(const char *line, size_t len, struct ctl_request *req, char *err,
			   size_t errlen);
void ctl_request_free(struct ctl_request *req);
const char *protocol_cmd_name(enum ctl_cmd cmd);

/* Reply lines, newline-terminated; caller frees. `result` is consumed. */
char *protocol_reply_ok(const struct ctl_request *req, json_object *result);
char *protocol_reply_error(const struct ctl_request *req, const char *msg);

struct vcpu_status {
	int index;
	pid_t tid;
	int host_cpu;
	const char *state;
	bool has_pin;
	cpu_set_t desired; /* the user's request */
	bool has_actual;
	cpu_set_t actual; /* the thread's real affinity */
	bool displaced;	  /* running off its desired CPUs because they went offline */
	uint64_t heartbeats;
	uint64_t clock_backwards;
	uint64_t guest_stopped_seen;
	uint64_t exits;
	uint64_t max_beat_gap_ns;
};

struct disk_status {
	const char *path;
	const char *id;
	bool ro;
	uint64_t capacity_sectors;
	uint64_t reads, writes, flushes, errors;
	uint64_t busy_ns;
	uint64_t host_flushes;
	bool needs_reset;
	uint64_t base;
	uint32_t gsi;
};

struct vm_status {
	const char *name;
	pid_t pid;
	const char *state;
	uint64_t memory_mib;
	double uptime_s;
	uint64_t unhandled_pio;
	uint64_t unhandled_mmio;
	uint32_t nr_vcpus;
	struct vcpu_status *vcpus;
	int nr_disks;
	struct disk_status disks[8];
	/* What the built-in guest's disk workload reported. */
	uint64_t guest_disk_flushed, guest_disk_verified, guest_disk_errors, guest_disk_irqs;
	bool guest_disk_done;
	uint64_t guest_disk_bench_ns[8];
	int nr_disk_bench;
	uint64_t guest_bench_ns; /* pio-bench / ring0-bench result, 0 until done */
};

json_object *protocol_status_json(const struct vm_status *st);
json_object *protocol_cpu_list_json(const cpu_set_t *set);

#endif
