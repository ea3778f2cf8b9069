/* The paravirtual test device the built-in guest reports through: its
 * configuration (what the guest should do), and per vCPU what the guest
 * said (heartbeats, clock checks, results). */
#ifndef KVMHOST_BUILTIN_GUEST_TESTDEV_H
#define KVMHOST_BUILTIN_GUEST_TESTDEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "guest_abi.h"

/* What the guest reads through TESTDEV_CONFIG. */
struct testdev_config {
	uint32_t period_us;
	uint32_t print_every;
	uint32_t mode; /* GUEST_MODE_* */
	uint32_t bench_iters;
	uint32_t nr_disks;
	uint32_t disk_blocks;
	uint32_t disk_request_kib;
	uint32_t disk_flush_every;
	uint32_t disk_generation;
	uint32_t memcheck_mib;
	uint32_t memcheck_dirty; /* pages per second */
	uint32_t nr_nets;
	uint32_t guest_ip;   /* IPv4, network byte order; 0: none */
	uint32_t guest_peer; /* --guest-ping's, likewise */
};

/* One vCPU's reports. Counters are read by any thread. */
struct testdev_vcpu {
	atomic_uint_fast64_t heartbeats;
	atomic_uint_fast64_t max_beat_gap_ns;
	atomic_uint_fast64_t clock_backwards;
	atomic_uint_fast64_t guest_stopped_seen;
	atomic_uint_fast64_t booted;
	atomic_uint commands; /* TESTDEV_CMD_* for the guest to read */
	/* The vCPU's own thread only. */
	uint64_t last_beat_ns; /* 0: the next beat starts a new run */
	uint32_t config_key;
	uint64_t result;
	unsigned result_words;
};

struct testdev {
	struct testdev_config cfg;
	const struct device_host *host;
	unsigned nr_vcpus;
	struct testdev_vcpu *vcpus;
	atomic_uint_fast64_t bench_ns; /* guest-measured, set once BENCH_DONE arrives */
	atomic_uint bench_done;
	atomic_uint_fast64_t bench_writes;
	/* The disk workload, as the guest reports it. */
	atomic_uint_fast64_t disk_flushed, disk_verified, disk_errors, disk_irqs;
	atomic_uint disk_done;
	atomic_uint_fast64_t disk_bench_ns[DISK_BENCH_RESULTS];
	/* The guest's wall clock minus ours when it last said (ns), and how often. */
	atomic_int_fast64_t wallclock_offset_ns;
	atomic_uint_fast64_t wallclock_reports;
	/* The memory check, as the guest reports it. */
	atomic_uint_fast64_t memcheck_filled, memcheck_checked, memcheck_errors, memcheck_passes;
	/* CPUID.1:ECX and CPUID.(7,0):EBX as the guest sees them; -1 until said. */
	atomic_int_fast64_t cpuid1_ecx, cpuid7_ebx;
	/* Interrupts the guest took with IF off in the interrupted context. */
	atomic_uint_fast64_t irqs_if_off;
	atomic_uint_fast64_t irq_if_off_where; /* TESTDEV_EV_IRQ_IF_OFF_WHERE's */
	/* The last stop's length in the guest's clock (ns); -1 until said. */
	atomic_int_fast64_t stop_gap_ns;
	/* --guest-blob, for the replay mode (borrowed; not in snapshots). */
	const uint8_t *blob;
	uint32_t blob_len;
	atomic_int_fast64_t replayed; /* script operations replayed; -1 until done */
	/* The guest's network stack, as it reports it. */
	atomic_uint_fast64_t net_rx, net_replies, net_announced, net_pongs;
};

/* The device with the guest's settings and --guest-blob's bytes
 * (borrowed); its vCPU table comes when a VM attaches it. */
void testdev_configure(struct testdev *t, const struct testdev_config *cfg, const uint8_t *blob,
		       uint32_t blob_len);
/* What vm_config.flat.device points at for the built-in guest. */
struct extra_device testdev_extra(struct testdev *t);
/* Where the last interrupt the guest took with IF clear came in, as
 * "HANDLER at RIP" in buf; false if none did. Any thread. */
bool testdev_irq_if_off_where(const struct testdev *t, char *buf, size_t len);
extern const struct device_ops testdev_ops;

#endif
