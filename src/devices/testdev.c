#include "devices/testdev.h"

#include <string.h>

#include "core/vm.h"
#include "guest_abi.h"
#include "util/util.h"

void testdev_init(struct testdev *t, struct vm *vm, uint32_t period_us, uint32_t print_every)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->period_us = period_us;
	t->print_every = print_every;
	t->mode = GUEST_MODE_HEARTBEAT;
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

static uint32_t config_value(struct testdev *t, uint32_t key)
{
	switch (key) {
	case TESTDEV_CFG_PERIOD_US:
		return t->period_us;
	case TESTDEV_CFG_MODE:
		return t->mode;
	case TESTDEV_CFG_BENCH_ITERS:
		return t->bench_iters;
	case TESTDEV_CFG_PRINT_EVERY:
		return t->print_every;
	case TESTDEV_CFG_DISKS:
		return (uint32_t)t->vm->opts.nr_disks;
	case TESTDEV_CFG_DISK_BLOCKS:
		return t->vm->opts.disk_blocks;
	case TESTDEV_CFG_DISK_REQ_KIB:
		return t->vm->opts.disk_request_kib;
	case TESTDEV_CFG_DISK_FLUSH_EVERY:
		return t->vm->opts.disk_flush_every;
	case TESTDEV_CFG_DISK_GENERATION:
		return t->vm->opts.disk_generation;
	default:
		return 0xffffffffu;
	}
}

static void guest_event(struct testdev *t, struct vcpu *vcpu, uint32_t ev)
{
	switch (ev) {
	case TESTDEV_EV_BOOTED:
		atomic_fetch_add(&vcpu->booted, 1);
		break;
	case TESTDEV_EV_CLOCK_BACKWARDS:
		atomic_fetch_add(&vcpu->clock_backwards, 1);
		break;
	case TESTDEV_EV_GUEST_STOPPED:
		atomic_fetch_add(&vcpu->guest_stopped_seen, 1);
		break;
	case TESTDEV_EV_BENCH_DONE:
		atomic_store(&t->bench_ns, vcpu->result);
		atomic_store(&t->bench_done, 1);
		break;
	case TESTDEV_EV_DISK_FLUSHED:
		atomic_store(&t->disk_flushed, vcpu->result);
		break;
	case TESTDEV_EV_DISK_VERIFIED:
		atomic_store(&t->disk_verified, vcpu->result);
		break;
	case TESTDEV_EV_DISK_ERROR:
		atomic_store(&t->disk_errors, vcpu->result);
		break;
	case TESTDEV_EV_DISK_IRQS:
		atomic_store(&t->disk_irqs, vcpu->result);
		break;
	case TESTDEV_EV_DISK_DONE:
		atomic_store(&t->disk_done, 1);
		break;
	default:
		if (ev >= TESTDEV_EV_DISK_BENCH && ev < TESTDEV_EV_DISK_BENCH + DISK_BENCH_RESULTS)
			atomic_store(&t->disk_bench_ns[ev - TESTDEV_EV_DISK_BENCH], vcpu->result);
		break; /* unknown events from a guest are ignored */
	}
}

void testdev_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct testdev *t = opaque;
	uint16_t port = (uint16_t)(TESTDEV_PORT_BASE + offset);
	if (!is_write) {
		uint32_t v = 0xffffffffu;
		if (port == TESTDEV_COMMAND)
			v = atomic_exchange(&vcpu->commands, 0);
		else if (port == TESTDEV_CONFIG)
			v = config_value(t, vcpu->config_key);
		put_u32(data, len, v);
		return;
	}
	uint32_t v = get_u32(data, len);
	switch (port) {
	case TESTDEV_HEARTBEAT: {
		atomic_store_explicit(&vcpu->heartbeats, v, memory_order_relaxed);
		uint64_t now = now_ns();
		if (vcpu->last_beat_ns && now - vcpu->last_beat_ns > vcpu->max_beat_gap_ns)
			atomic_store(&vcpu->max_beat_gap_ns, now - vcpu->last_beat_ns);
		vcpu->last_beat_ns = now;
		break;
	}
	case TESTDEV_EVENT:
		guest_event(t, vcpu, v);
		break;
	case TESTDEV_CONFIG:
		vcpu->config_key = v;
		break;
	case TESTDEV_POWEROFF:
		vm_request_exit(t->vm, VM_EXIT_POWEROFF, 0);
		break;
	case TESTDEV_BENCH:
		atomic_fetch_add_explicit(&t->bench_writes, 1, memory_order_relaxed);
		break;
	case TESTDEV_RESULT:
		if (vcpu->result_words++ % 2 == 0)
			vcpu->result = v;
		else
			vcpu->result |= (uint64_t)v << 32;
		break;
	default:
		break;
	}
}

void testdev_request_poweroff(struct testdev *t)
{
	for (uint32_t i = 0; i < t->vm->nr_vcpus; i++)
		atomic_fetch_or(&t->vm->vcpus[i].commands, TESTDEV_CMD_POWEROFF);
}
