/* The test device's ports (laid out in guest_abi.h): the built-in guest
 * writes heartbeats, events and two-word results, and reads its
 * configuration by key and the host's commands. Each vCPU's reports go to
 * its own struct testdev_vcpu, written only on that vCPU's thread, so
 * there is no lock; other threads read atomics. */
#include "builtin_guest/testdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"
#include "util/vmstate.h"

void testdev_configure(struct testdev *t, const struct testdev_config *cfg, const uint8_t *blob,
		       uint32_t blob_len)
{
	memset(t, 0, sizeof(*t));
	t->cfg = *cfg;
	t->blob = blob;
	t->blob_len = blob_len;
	atomic_store(&t->cpuid1_ecx, -1);
	atomic_store(&t->cpuid7_ebx, -1);
	atomic_store(&t->stop_gap_ns, -1);
	atomic_store(&t->replayed, -1);
}

static int testdev_attach(void *dev, const struct device_host *host, unsigned nr_vcpus)
{
	struct testdev *t = dev;
	t->host = host;
	t->vcpus = calloc(nr_vcpus ? nr_vcpus : 1, sizeof(*t->vcpus));
	if (!t->vcpus)
		return -ENOMEM;
	t->nr_vcpus = nr_vcpus;
	return 0;
}

static void testdev_detach(void *dev)
{
	struct testdev *t = dev;
	free(t->vcpus);
	t->vcpus = NULL;
	t->nr_vcpus = 0;
	t->host = NULL;
}

static uint32_t get_u32(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;
	memcpy(&v, data, len < 4 ? len : 4);
	return v;
}

static void put_u32(uint8_t *data, uint32_t len, uint32_t v)
{
	memset(data, 0, len);
	memcpy(data, &v, len < 4 ? len : 4);
}

/* A word of the blob: little-endian, zero past its end. */
static uint32_t blob_word(const struct testdev *t, uint32_t index)
{
	uint64_t off = (uint64_t)index * 4;
	uint32_t v = 0;
	if (t->blob && off < t->blob_len)
		memcpy(&v, t->blob + off, t->blob_len - off < 4 ? t->blob_len - off : 4);
	return v;
}

static uint32_t config_value(const struct testdev *t, uint32_t key)
{
	const struct testdev_config *c = &t->cfg;
	if (key & TESTDEV_CFG_BLOB_WORD)
		return blob_word(t, key & ~TESTDEV_CFG_BLOB_WORD);
	switch (key) {
	case TESTDEV_CFG_PERIOD_US:
		return c->period_us;
	case TESTDEV_CFG_MODE:
		return c->mode;
	case TESTDEV_CFG_BENCH_ITERS:
		return c->bench_iters;
	case TESTDEV_CFG_PRINT_EVERY:
		return c->print_every;
	case TESTDEV_CFG_DISKS:
		return c->nr_disks;
	case TESTDEV_CFG_DISK_BLOCKS:
		return c->disk_blocks;
	case TESTDEV_CFG_DISK_REQ_KIB:
		return c->disk_request_kib;
	case TESTDEV_CFG_DISK_FLUSH_EVERY:
		return c->disk_flush_every;
	case TESTDEV_CFG_DISK_GENERATION:
		return c->disk_generation;
	case TESTDEV_CFG_MEMCHECK_MIB:
		return c->memcheck_mib;
	case TESTDEV_CFG_MEMCHECK_DIRTY:
		return c->memcheck_dirty;
	case TESTDEV_CFG_BLOB_LEN:
		return t->blob_len;
	case TESTDEV_CFG_NETS:
		return c->nr_nets;
	case TESTDEV_CFG_GUEST_IP:
		return c->guest_ip;
	case TESTDEV_CFG_GUEST_PEER:
		return c->guest_peer;
	default:
		return 0xffffffffu;
	}
}

static void guest_event(struct testdev *t, struct testdev_vcpu *v, uint32_t ev)
{
	switch (ev) {
	case TESTDEV_EV_BOOTED:
		atomic_fetch_add(&v->booted, 1);
		break;
	case TESTDEV_EV_CLOCK_BACKWARDS:
		atomic_fetch_add(&v->clock_backwards, 1);
		break;
	case TESTDEV_EV_GUEST_STOPPED:
		atomic_fetch_add(&v->guest_stopped_seen, 1);
		break;
	case TESTDEV_EV_BENCH_DONE:
		atomic_store(&t->bench_ns, v->result);
		atomic_store(&t->bench_done, 1);
		break;
	case TESTDEV_EV_DISK_FLUSHED:
		atomic_store(&t->disk_flushed, v->result);
		break;
	case TESTDEV_EV_DISK_VERIFIED:
		atomic_store(&t->disk_verified, v->result);
		break;
	case TESTDEV_EV_DISK_ERROR:
		atomic_store(&t->disk_errors, v->result);
		break;
	case TESTDEV_EV_DISK_IRQS:
		atomic_store(&t->disk_irqs, v->result);
		break;
	case TESTDEV_EV_DISK_DONE:
		atomic_store(&t->disk_done, 1);
		break;
	case TESTDEV_EV_WALLCLOCK: {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t host = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
		atomic_store(&t->wallclock_offset_ns, (int64_t)v->result - host);
		atomic_fetch_add(&t->wallclock_reports, 1);
		break;
	}
	case TESTDEV_EV_MEMCHECK_FILLED:
		atomic_store(&t->memcheck_filled, v->result);
		break;
	case TESTDEV_EV_MEMCHECK_CHECKED:
		atomic_store(&t->memcheck_checked, v->result);
		atomic_fetch_add(&t->memcheck_passes, 1);
		break;
	case TESTDEV_EV_MEMCHECK_ERRORS:
		atomic_store(&t->memcheck_errors, v->result);
		break;
	case TESTDEV_EV_CPUID_1_ECX:
		atomic_store(&t->cpuid1_ecx, (int64_t)(uint32_t)v->result);
		break;
	case TESTDEV_EV_CPUID_7_EBX:
		atomic_store(&t->cpuid7_ebx, (int64_t)(uint32_t)v->result);
		break;
	case TESTDEV_EV_NET_RX:
		atomic_store(&t->net_rx, v->result);
		break;
	case TESTDEV_EV_NET_REPLIES:
		atomic_store(&t->net_replies, v->result);
		break;
	case TESTDEV_EV_NET_PONGS:
		atomic_store(&t->net_pongs, v->result);
		break;
	case TESTDEV_EV_NET_ANNOUNCED:
		atomic_store(&t->net_announced, v->result);
		break;
	case TESTDEV_EV_REPLAY_DONE:
		atomic_store(&t->replayed, (int64_t)(v->result & 0xffff));
		break;
	case TESTDEV_EV_IRQS_IF_OFF:
		atomic_store(&t->irqs_if_off, v->result);
		break;
	case TESTDEV_EV_IRQ_IF_OFF_WHERE:
		atomic_store(&t->irq_if_off_where, v->result);
		break;
	case TESTDEV_EV_STOP_GAP:
		atomic_store(&t->stop_gap_ns, (int64_t)(v->result & INT64_MAX));
		break;
	default:
		if (ev >= TESTDEV_EV_DISK_BENCH && ev < TESTDEV_EV_DISK_BENCH + DISK_BENCH_RESULTS)
			atomic_store(&t->disk_bench_ns[ev - TESTDEV_EV_DISK_BENCH], v->result);
		break; /* unknown events from a guest are ignored */
	}
}

static void heartbeat(struct testdev_vcpu *v, uint32_t count)
{
	atomic_store_explicit(&v->heartbeats, count, memory_order_relaxed);
	uint64_t now = now_ns();
	if (v->last_beat_ns && now - v->last_beat_ns > v->max_beat_gap_ns)
		atomic_store(&v->max_beat_gap_ns, now - v->last_beat_ns);
	v->last_beat_ns = now;
}

static void guest_write(struct testdev *t, struct testdev_vcpu *v, uint16_t port, uint32_t val)
{
	switch (port) {
	case TESTDEV_HEARTBEAT:
		heartbeat(v, val);
		break;
	case TESTDEV_EVENT:
		guest_event(t, v, val);
		v->result_words = 0; /* a half-written result never spills into the next */
		break;
	case TESTDEV_CONFIG:
		v->config_key = val;
		break;
	case TESTDEV_POWEROFF:
		device_request_exit(t->host, VM_EXIT_POWEROFF, 0);
		break;
	case TESTDEV_BENCH:
		atomic_fetch_add_explicit(&t->bench_writes, 1, memory_order_relaxed);
		break;
	case TESTDEV_RESULT:
		if (v->result_words++ % 2 == 0)
			v->result = val;
		else
			v->result |= (uint64_t)val << 32;
		break;
	default:
		break;
	}
}

static void testdev_access(void *opaque, unsigned vcpu, uint64_t offset, uint8_t *data,
			   uint32_t len, bool is_write)
{
	struct testdev *t = opaque;
	uint16_t port = (uint16_t)(TESTDEV_PORT_BASE + offset);
	if (vcpu >= t->nr_vcpus) {
		if (!is_write)
			put_u32(data, len, 0xffffffffu);
		return;
	}
	struct testdev_vcpu *v = &t->vcpus[vcpu];
	if (is_write) {
		guest_write(t, v, port, get_u32(data, len));
		return;
	}
	uint32_t val = 0xffffffffu;
	if (port == TESTDEV_COMMAND)
		val = atomic_exchange(&v->commands, 0);
	else if (port == TESTDEV_CONFIG)
		val = config_value(t, v->config_key);
	put_u32(data, len, val);
}

static void testdev_request_poweroff(void *dev)
{
	struct testdev *t = dev;
	for (unsigned i = 0; i < t->nr_vcpus; i++)
		atomic_fetch_or(&t->vcpus[i].commands, TESTDEV_CMD_POWEROFF);
}

/* A parked vCPU's silence is not a heartbeat gap. */
static void testdev_vcpu_unparked(void *dev, unsigned vcpu)
{
	struct testdev *t = dev;
	if (vcpu < t->nr_vcpus)
		t->vcpus[vcpu].last_beat_ns = 0;
}

/* Version 1's configuration ended at memcheck_mib: ten words. */
#define TESTDEV_V1_CONFIG_BYTES (10 * sizeof(uint32_t))

/* Per vCPU: counters, the pending commands and the half-written result. */
static const struct vmstate_field testdev_vcpu_fields[] = {
	VMS_ATOMIC(struct testdev_vcpu, heartbeats),
	VMS_ATOMIC(struct testdev_vcpu, clock_backwards),
	VMS_ATOMIC(struct testdev_vcpu, guest_stopped_seen),
	VMS_ATOMIC(struct testdev_vcpu, booted),
	VMS_ATOMIC(struct testdev_vcpu, commands),
	VMS_UINT(struct testdev_vcpu, config_key),
	VMS_UINT(struct testdev_vcpu, result),
	VMS_UINT(struct testdev_vcpu, result_words),
};

static const struct vmstate testdev_vcpu_state = {
	.name = "testdev vCPU",
	.fields = testdev_vcpu_fields,
	.nr_fields = ARRAY_SIZE(testdev_vcpu_fields),
};

/* A restored guest's silence meanwhile is no heartbeat gap; a version 1
 * state had no net or memory-dirtying settings: none. */
static int testdev_post_load(void *dev, uint32_t version)
{
	struct testdev *t = dev;
	if (version == 1)
		memset((uint8_t *)&t->cfg + TESTDEV_V1_CONFIG_BYTES, 0,
		       sizeof(t->cfg) - TESTDEV_V1_CONFIG_BYTES);
	for (unsigned i = 0; i < t->nr_vcpus; i++)
		t->vcpus[i].last_beat_ns = 0;
	return 0;
}

/* The configuration travels with the guest: a restored guest goes on with
 * the workload it was given. Then what the guest reported of its disk
 * workload so far (3): one that ends during a migration's pre-copy is done
 * on the destination too. */
static const struct vmstate_field testdev_fields[] = {
	VMS_BYTES(struct testdev, cfg, TESTDEV_V1_CONFIG_BYTES, .until = 1),
	VMS_BYTES(struct testdev, cfg, sizeof(struct testdev_config), .since = 2),
	VMS_UINT(struct testdev, nr_vcpus, .must_match = true),
	VMS_ARRAY(struct testdev, vcpus, nr_vcpus, struct testdev_vcpu, &testdev_vcpu_state),
	VMS_ATOMIC(struct testdev, disk_flushed, .since = 3),
	VMS_ATOMIC(struct testdev, disk_verified, .since = 3),
	VMS_ATOMIC(struct testdev, disk_errors, .since = 3),
	VMS_ATOMIC(struct testdev, disk_irqs, .since = 3),
	VMS_ATOMIC(struct testdev, disk_done, .since = 3),
};

static const struct vmstate testdev_state = {
	.name = "testdev",
	.version = 3,
	.min_version = 1,
	.fields = testdev_fields,
	.nr_fields = ARRAY_SIZE(testdev_fields),
	.post_load = testdev_post_load,
};

const struct device_ops testdev_ops = {
	.name = "testdev",
	.access = testdev_access,
	.state = &testdev_state,
};

struct extra_device testdev_extra(struct testdev *t)
{
	return (struct extra_device){
		.ops = &testdev_ops,
		.dev = t,
		.port = TESTDEV_PORT_BASE,
		.nr_ports = TESTDEV_PORT_LEN,
		.attach = testdev_attach,
		.detach = testdev_detach,
		.request_poweroff = testdev_request_poweroff,
		.vcpu_unparked = testdev_vcpu_unparked,
	};
}

bool testdev_irq_if_off_where(const struct testdev *t, char *buf, size_t len)
{
	static const char *const kinds[IRQ_KINDS] = {
		[IRQ_KIND_TIMER] = "timer", [IRQ_KIND_DISK] = "disk", [IRQ_KIND_NET] = "net"};
	uint64_t w = atomic_load(&t->irq_if_off_where);
	if (!w)
		return false;
	const char *kind = "?";
	for (unsigned k = 0; k < IRQ_KINDS; k++)
		if (w & (1ull << (IRQ_WHERE_KIND_SHIFT + k)))
			kind = kinds[k];
	snprintf(buf, len, "%s at %#llx", kind,
		 (unsigned long long)(w & ((1ull << IRQ_WHERE_KIND_SHIFT) - 1)));
	return true;
}
