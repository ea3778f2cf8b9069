/* The VM as JSON, for `status` and `list`: its vCPUs, disks and nets, and
 * what the built-in guest reported. Here rather than in core/, which knows
 * nothing of JSON; the counters are atomics, read on the main thread while
 * the vCPUs run. */
#include "control/vm_status.h"

#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "builtin_guest/testdev.h"
#include "core/vm.h"
#include "util/util.h"

static json_object *u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

/* What the built-in guest said on vCPU i. */
static void guest_vcpu_json(const struct testdev_vcpu *t, json_object *j)
{
	json_object_object_add(j, "heartbeats", u64(atomic_load(&t->heartbeats)));
	json_object_object_add(j, "clock_backwards", u64(atomic_load(&t->clock_backwards)));
	json_object_object_add(j, "guest_stopped_seen", u64(atomic_load(&t->guest_stopped_seen)));
	json_object_object_add(
		j, "max_heartbeat_gap_ms",
		json_object_new_double((double)atomic_load(&t->max_beat_gap_ns) / 1e6));
}

static json_object *vcpu_json(struct vm *vm, const struct testdev *guest, unsigned i)
{
	struct vcpu *v = &vm->vcpus[i];
	pid_t tid = atomic_load(&v->tid);
	int rs = atomic_load(&v->run_state);
	json_object *j = json_object_new_object();
	json_object_object_add(j, "index", json_object_new_int(v->index));
	json_object_object_add(j, "tid", json_object_new_int(tid));
	json_object_object_add(j, "host_cpu",
			       json_object_new_int(tid > 0 ? vcpu_thread_last_cpu(tid) : -1));
	json_object_object_add(j, "state",
			       json_object_new_string(rs == VCPU_EXITED	     ? "stopped"
						      : vcpu_park_reasons(v) ? "paused"
									     : "running"));
	json_object_object_add(j, "exits", u64(atomic_load(&v->exits)));
	if (guest && i < guest->nr_vcpus)
		guest_vcpu_json(&guest->vcpus[i], j);
	return j;
}

static json_object *disk_json(struct vm_disk *d)
{
	struct virtio_blk *b = &d->blk;
	json_object *j = json_object_new_object();
	json_object_object_add(j, "path", json_object_new_string(b->img.path));
	json_object_object_add(j, "id", json_object_new_string(b->id));
	json_object_object_add(j, "ro", json_object_new_boolean(b->img.ro));
	json_object_object_add(j, "capacity_sectors", u64(b->capacity));
	json_object_object_add(j, "reads", u64(atomic_load(&b->reads)));
	json_object_object_add(j, "writes", u64(atomic_load(&b->writes)));
	json_object_object_add(j, "flushes", u64(atomic_load(&b->flushes)));
	json_object_object_add(j, "errors", u64(atomic_load(&b->errors)));
	json_object_object_add(j, "busy_us", u64(atomic_load(&b->busy_ns) / 1000));
	json_object_object_add(j, "host_flushes", u64(atomic_load(&b->host_flushes)));
	json_object_object_add(j, "needs_reset",
			       json_object_new_boolean(virtio_mmio_needs_reset(&d->mmio)));
	json_object_object_add(j, "mmio_base", u64(d->base));
	json_object_object_add(j, "irq", json_object_new_int((int)d->gsi));
	return j;
}

static json_object *net_json(struct vm_net *n)
{
	struct virtio_net_stats *s = &n->net.stats;
	char mac[18];
	const uint8_t *m = n->net.mac;
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
	json_object *j = json_object_new_object();
	json_object_object_add(j, "id", json_object_new_string(n->net.id));
	json_object_object_add(j, "tap", json_object_new_string(n->net.tap.name));
	json_object_object_add(j, "mac", json_object_new_string(mac));
	json_object_object_add(j, "link",
			       json_object_new_string(virtio_net_link_up(&n->net) ? "up" : "down"));
	json_object_object_add(j, "rx_packets", u64(atomic_load(&s->rx_packets)));
	json_object_object_add(j, "rx_bytes", u64(atomic_load(&s->rx_bytes)));
	json_object_object_add(j, "tx_packets", u64(atomic_load(&s->tx_packets)));
	json_object_object_add(j, "tx_bytes", u64(atomic_load(&s->tx_bytes)));
	json_object_object_add(j, "rx_waits", u64(atomic_load(&s->rx_waits)));
	json_object_object_add(j, "rx_kicks", u64(atomic_load(&s->rx_kicks)));
	json_object_object_add(j, "notifies", u64(atomic_load(&n->mmio.notifies)));
	json_object_object_add(j, "interrupts", u64(atomic_load(&n->mmio.interrupts)));
	json_object_object_add(j, "event_idx",
			       json_object_new_boolean(
				       virtio_mmio_has_feature(&n->mmio, VIRTIO_RING_F_EVENT_IDX)));
	json_object_object_add(j, "tx_dropped", u64(atomic_load(&s->tx_dropped)));
	json_object_object_add(j, "bad_chains", u64(atomic_load(&s->bad_chains)));
	json_object_object_add(j, "announces", u64(atomic_load(&s->announces)));
	json_object_object_add(j, "needs_reset",
			       json_object_new_boolean(virtio_mmio_needs_reset(&n->mmio)));
	json_object_object_add(j, "mmio_base", u64(n->base));
	json_object_object_add(j, "irq", json_object_new_int((int)n->gsi));
	return j;
}

/* What the built-in guest's workloads reported through the test device. */
static json_object *guest_disk_json(const struct testdev *t)
{
	json_object *g = json_object_new_object();
	json_object_object_add(g, "flushed_blocks", u64(atomic_load(&t->disk_flushed)));
	json_object_object_add(g, "verified_blocks", u64(atomic_load(&t->disk_verified)));
	json_object_object_add(g, "errors", u64(atomic_load(&t->disk_errors)));
	json_object_object_add(g, "interrupts", u64(atomic_load(&t->disk_irqs)));
	json_object_object_add(g, "done", json_object_new_boolean(atomic_load(&t->disk_done)));
	json_object *bench = json_object_new_array();
	for (int i = 0; i < DISK_BENCH_RESULTS; i++)
		json_object_array_add(bench, u64(atomic_load(&t->disk_bench_ns[i])));
	json_object_object_add(g, "bench_ns", bench);
	return g;
}

/* The built-in guest's workloads, as it reported them. */
static void guest_json(const struct testdev *t, json_object *o)
{
	json_object *gn = json_object_new_object();
	json_object_object_add(gn, "rx", u64(atomic_load(&t->net_rx)));
	json_object_object_add(gn, "replies", u64(atomic_load(&t->net_replies)));
	json_object_object_add(gn, "announced", u64(atomic_load(&t->net_announced)));
	json_object_object_add(gn, "pongs", u64(atomic_load(&t->net_pongs)));
	json_object_object_add(o, "guest_net", gn);
	json_object_object_add(o, "guest_disk", guest_disk_json(t));
	json_object_object_add(
		o, "wallclock_offset_ms",
		atomic_load(&t->wallclock_reports)
			? json_object_new_double((double)atomic_load(&t->wallclock_offset_ns) / 1e6)
			: NULL);
	json_object *m = json_object_new_object();
	json_object_object_add(m, "pages", u64(atomic_load(&t->memcheck_filled)));
	json_object_object_add(m, "checked", u64(atomic_load(&t->memcheck_checked)));
	json_object_object_add(m, "passes", u64(atomic_load(&t->memcheck_passes)));
	json_object_object_add(m, "errors", u64(atomic_load(&t->memcheck_errors)));
	json_object_object_add(o, "guest_memcheck", m);
	json_object *c = json_object_new_object();
	int64_t ecx = atomic_load(&t->cpuid1_ecx), ebx = atomic_load(&t->cpuid7_ebx);
	json_object_object_add(c, "leaf1_ecx", ecx < 0 ? NULL : json_object_new_int64(ecx));
	json_object_object_add(c, "leaf7_ebx", ebx < 0 ? NULL : json_object_new_int64(ebx));
	json_object_object_add(o, "guest_cpuid", c);
	int64_t replayed = atomic_load(&t->replayed);
	json_object_object_add(o, "guest_replayed_ops",
			       replayed < 0 ? NULL : json_object_new_int64(replayed));
	int64_t gap = atomic_load(&t->stop_gap_ns);
	json_object_object_add(o, "guest_stop_gap_ms",
			       gap < 0 ? NULL : json_object_new_double((double)gap / 1e6));
	json_object_object_add(o, "guest_irqs_if_off", u64(atomic_load(&t->irqs_if_off)));
	char where[64];
	json_object_object_add(o, "guest_irq_if_off_where",
			       testdev_irq_if_off_where(t, where, sizeof(where))
				       ? json_object_new_string(where)
				       : NULL);
	json_object_object_add(o, "guest_bench_ns",
			       u64(atomic_load(&t->bench_done) ? atomic_load(&t->bench_ns) : 0));
}

/* A `--device`: what the transport knows, and the kind's own figures. */
static json_object *virtio_json(struct vm_virtio *v)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "kind", json_object_new_string(v->kind->name));
	json_object_object_add(o, "base", u64(v->slot.base));
	json_object_object_add(o, "gsi", u64(v->slot.gsi));
	json_object_object_add(o, "notifies", u64(atomic_load(&v->mmio.notifies)));
	json_object_object_add(o, "interrupts", u64(atomic_load(&v->mmio.interrupts)));
	struct virtio_figure f[VIRTIO_FIGURES_MAX];
	unsigned n = v->kind->figures ? v->kind->figures(v->dev, f) : 0;
	for (unsigned i = 0; i < n; i++)
		json_object_object_add(o, f[i].name, u64(f[i].value));
	return o;
}

void vm_status_json(struct vm *vm, const struct testdev *guest, json_object *o)
{
	json_object_object_add(o, "name", json_object_new_string(vm->cfg.name));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "state", json_object_new_string(vm_state_name(vm)));
	json_object_object_add(o, "memory_mib", u64(vm->cfg.memory_mib));
	json_object_object_add(o, "uptime_s",
			       json_object_new_double((double)(now_ns() - vm->start_ns) / 1e9));
	json_object_object_add(o, "unhandled_pio", u64(atomic_load(&vm->unhandled_pio)));
	json_object_object_add(o, "unhandled_mmio", u64(atomic_load(&vm->unhandled_mmio)));
	json_object *vcpus = json_object_new_array();
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		json_object_array_add(vcpus, vcpu_json(vm, guest, i));
	json_object_object_add(o, "vcpus", vcpus);
	json_object *disks = json_object_new_array();
	for (int i = 0; i < vm->nr_disks; i++)
		json_object_array_add(disks, disk_json(&vm->disks[i]));
	json_object_object_add(o, "disks", disks);
	json_object *nets = json_object_new_array();
	for (int i = 0; i < vm->nr_nets; i++)
		json_object_array_add(nets, net_json(&vm->nets[i]));
	json_object_object_add(o, "nets", nets);
	json_object *devices = json_object_new_array();
	for (int i = 0; i < vm->nr_virtio; i++)
		json_object_array_add(devices, virtio_json(&vm->virtio[i]));
	json_object_object_add(o, "devices", devices);
	if (guest)
		guest_json(guest, o);
}
