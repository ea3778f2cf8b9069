/* Restoring a snapshot: the file opened and checked whole before anything
 * is built, the guest's configuration read back (its disks must be there as
 * they were), and every vCPU's, device's and KVM's state put into a VM
 * created from it before any vCPU runs. A migration's received state goes
 * through the same checks (snapshot_open_buffer). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/cpu.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

int snapshot_open(struct snapshot *s, const char *path, struct error *err)
{
	memset(s, 0, sizeof(*s));
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	struct snap_header h;
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		error_set_errno(err, errno, "%s", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		error_setf(err, "%s is not a regular file", path);
		goto fail;
	}
	s->file_size = (uint64_t)st.st_size;
	/* The header says where the memory image starts; everything before it
	 * is read and checked whole. */
	if (s->file_size < sizeof(h) || read_full_at(s->fd, &h, sizeof(h), 0)) {
		error_setf(err, "%s: truncated: %llu bytes, less than a snapshot header", path,
			   (unsigned long long)s->file_size);
		goto fail;
	}
	uint64_t meta = h.memory_offset;
	if (meta < sizeof(h) || meta > s->file_size || meta > SNAP_MAX_METADATA)
		meta = s->file_size < SNAP_MAX_METADATA ? s->file_size : SNAP_MAX_METADATA;
	if (!(s->meta = malloc(meta)) || read_full_at(s->fd, s->meta, meta, 0)) {
		error_setf(err, "%s: cannot read %llu bytes", path, (unsigned long long)meta);
		goto fail;
	}
	if (snap_parse(s->meta, meta, s->file_size, &s->idx, err)) {
		error_prepend(err, "%s: ", path);
		goto fail;
	}
	s->image = (struct vm_image){s->fd, s->idx.header.memory_offset};
	return 0;
fail:
	snapshot_close(s);
	return -EINVAL;
}

void snapshot_close(struct snapshot *s)
{
	if (s->fd > 0)
		close(s->fd);
	s->fd = -1;
	free(s->meta);
	s->meta = NULL;
}

/* A disk the guest had must be there, with the size it had. */
static int check_disk(const char *path, uint64_t size, struct error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return error_set_errno(err, errno, "disk %s is missing", path);
	uint64_t now = 0;
	if (fstat(fd, &st) == 0)
		now = (uint64_t)st.st_size;
	close(fd);
	if (S_ISREG(st.st_mode) && now != size)
		return error_setf(err,
				  "disk %s changed size since the snapshot (%llu bytes, "
				  "was %llu)",
				  path, (unsigned long long)now, (unsigned long long)size);
	return 0;
}

static int read_disk(struct state_reader *r, int i, struct disk_spec *d, struct error *err)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n > 0 && n < 4096 && n <= r->len - r->off))
		return error_setf(err, "config section: disk %d's path is malformed", i);
	if (!(d->path = calloc(1, n + 1)))
		return error_setf(err, "out of memory");
	state_get(r, d->path, n);
	d->ro = state_get_u8(r);
	state_get(r, d->id, sizeof(d->id));
	d->id[sizeof(d->id) - 1] = '\0';
	uint64_t size = state_get_u64(r);
	if (r->err || memchr(d->path, '\0', n))
		return error_setf(err, "config section: disk %d is malformed", i);
	return check_disk(d->path, size, err);
}

static int read_cpu_mask(struct state_reader *r, struct x86_cpu_mask *m, struct error *err)
{
	for (int i = 0; i < X86_FEATURE_WORDS; i++)
		m->clear[i] = state_get_u32(r);
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n < sizeof(m->spec) && n <= r->len - r->off))
		return error_setf(err, "config section: the CPU feature mask is malformed");
	state_get(r, m->spec, n);
	m->spec[n] = '\0';
	return 0;
}

static int read_nets(struct state_reader *r, struct vm_config *cfg, struct error *err)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n <= VM_MAX_NETS))
		return error_setf(err, "config section: %u nets (at most %d)", n, VM_MAX_NETS);
	for (uint32_t i = 0; i < n && !r->err; i++) {
		struct net_spec *s = &cfg->nets[i];
		memset(s, 0, sizeof(*s));
		state_get(r, s->tap, sizeof(s->tap));
		state_get(r, s->bridge, sizeof(s->bridge));
		state_get(r, s->mac, sizeof(s->mac));
		state_get(r, s->id, sizeof(s->id));
		s->tap[sizeof(s->tap) - 1] = s->bridge[sizeof(s->bridge) - 1] = '\0';
		s->id[sizeof(s->id) - 1] = '\0';
		s->mac_given = true;
		if (!state_check(r, !s->tap[0] != !s->bridge[0] && !strchr(s->tap, '/') &&
					    !(s->mac[0] & 1)))
			return error_setf(err, "config section: net %u is malformed", i);
	}
	cfg->nr_nets = (int)n;
	return r->err ? error_setf(err, "config section: the nets are malformed") : 0;
}

/* Checked again, kind by kind, when the VM is built from them. */
static int read_virtio(struct state_reader *r, struct vm_config *cfg, struct error *err)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n <= VM_MAX_VIRTIO))
		return error_setf(err, "config section: %u devices (at most %d)", n, VM_MAX_VIRTIO);
	for (uint32_t i = 0; i < n && !r->err; i++) {
		struct virtio_spec *d = &cfg->virtio[i];
		state_get(r, d->kind, sizeof(d->kind));
		state_get(r, d->options, sizeof(d->options));
		d->kind[sizeof(d->kind) - 1] = d->options[sizeof(d->options) - 1] = '\0';
		if (!r->err && !(d->type = pc_virtio_kind(d->kind, err)))
			return error_prepend(err, "config section: device %u: ", i);
	}
	cfg->nr_virtio = (int)n;
	return r->err ? error_setf(err, "config section: the devices are malformed") : 0;
}

int snapshot_parse_config(const uint8_t *buf, uint64_t len, uint32_t nr_vcpus, uint64_t memory_size,
			  struct vm_config *cfg, bool *user_paused, struct error *err)
{
	struct state_reader r = state_reader_init(buf, len);
	uint32_t version = state_get_u32(&r), cpus = state_get_u32(&r);
	uint64_t memory_mib = state_get_u64(&r);
	bool linux_guest = state_get_u8(&r);
	*user_paused = state_get_u8(&r);
	uint32_t nr_disks = state_get_u32(&r);
	if (r.err || version < 1 || version > SNAP_CONFIG_VERSION || cpus != nr_vcpus ||
	    cpus == 0 || cpus > VM_MAX_VCPUS || memory_mib > (1ull << 40) ||
	    memory_mib << 20 != memory_size || nr_disks > VM_MAX_DISKS)
		return error_setf(err,
				  "config section: malformed (version %u, %u vCPUs, %llu "
				  "MiB, %u disks)",
				  version, cpus, (unsigned long long)memory_mib, nr_disks);
	cfg->cpus = cpus;
	cfg->memory_mib = memory_mib;
	cfg->linux_guest = linux_guest;
	cfg->flat_device_with_linux = version < 4;
	/* Each path is allocated as --disk's are; whoever owns cfg frees them. */
	for (uint32_t i = 0; i < nr_disks; i++) {
		cfg->nr_disks = (int)i + 1;
		if (read_disk(&r, (int)i, &cfg->disks[i], err))
			return -EINVAL;
	}
	if (version >= 2 && read_cpu_mask(&r, &cfg->cpu_mask, err))
		return -EINVAL;
	if (version >= 3 && read_nets(&r, cfg, err))
		return -EINVAL;
	if (version >= 5 && read_virtio(&r, cfg, err))
		return -EINVAL;
	if (state_reader_done(&r))
		return error_setf(err, "config section: malformed (trailing bytes)");
	return 0;
}

int snapshot_config(struct snapshot *s, struct vm_config *cfg, struct error *err)
{
	if (snapshot_parse_config(s->idx.config, s->idx.config_len, s->idx.nr_vcpus,
				  s->idx.header.memory_size, cfg, &s->user_paused, err))
		return -EINVAL;
	cfg->image = &s->image;
	return 0;
}

int snapshot_open_buffer(struct snapshot *s, uint8_t *meta, uint64_t len, struct error *err)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->meta = meta;
	struct snap_header h;
	if (len < sizeof(h))
		return error_setf(err, "the VM's state: truncated (%llu bytes)",
				  (unsigned long long)len);
	memcpy(&h, meta, sizeof(h));
	/* The memory came before, over the stream; the sections end where a
	 * file's memory image would start. */
	if (h.memory_offset != len || h.memory_size > UINT64_MAX - len)
		return error_setf(err, "the VM's state: %llu bytes, but its header says %llu",
				  (unsigned long long)len, (unsigned long long)h.memory_offset);
	s->file_size = len + h.memory_size;
	if (snap_parse(meta, len, s->file_size, &s->idx, err))
		return -EINVAL;
	s->image = (struct vm_image){-1, 0};
	/* Paused by its user when it stopped: the config's 5th field. */
	struct state_reader r = state_reader_init(s->idx.config, s->idx.config_len);
	state_get_u32(&r), state_get_u32(&r), state_get_u64(&r), state_get_u8(&r);
	s->user_paused = state_get_u8(&r);
	return 0;
}

int snapshot_check_cpu(struct vm *vm, const struct kvm_cpuid2 *guest, size_t len,
		       const char *saved_on, struct error *err)
{
	char missing[512];
	struct kvm_cpuid2 *here = x86_vcpu_cpuid(vm->vcpus[0].fd);
	if (!here)
		return error_setf(err, "cannot read this host's CPUID for a guest");
	bool lacks = x86_cpuid_missing(guest, len, here, missing, sizeof(missing));
	free(here);
	if (lacks)
		return error_setf(err,
				  "made for a CPU with features this host lacks: %s (saved on %s)",
				  missing, saved_on);
	return 0;
}

/* The guest's CPUID as saved, the first part of vCPU 0's state, copied out
 * (sections need not be aligned for it). Caller frees. */
static struct kvm_cpuid2 *saved_cpuid(const struct snapshot *s, uint32_t *len)
{
	struct state_reader r = state_reader_init(s->idx.vcpu[0], s->idx.vcpu_len[0]);
	state_get_u32(&r); /* parts */
	uint32_t tag = state_get_u32(&r);
	*len = state_get_u32(&r);
	if (r.err || tag != 0 || *len < sizeof(struct kvm_cpuid2) || *len > r.len - r.off)
		return NULL;
	struct kvm_cpuid2 *c = malloc(*len);
	if (c)
		state_get(&r, c, *len);
	return c;
}

int snapshot_restore(struct snapshot *s, struct vm *vm, struct error *err)
{
	uint32_t len;
	struct kvm_cpuid2 *cpuid = saved_cpuid(s, &len);
	if (!cpuid)
		return error_setf(err, "section vcpu 0: no CPUID");
	int bad = snapshot_check_cpu(vm, cpuid, len, s->idx.header.host_cpu, err);
	free(cpuid);
	if (bad)
		return -EINVAL;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t elapsed = (int64_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec -
				    s->idx.header.saved_realtime_ns);
	struct state_reader r = state_reader_init(s->idx.kvm_vm, s->idx.kvm_vm_len);
	if (vm_restore_kvm_state(vm, &r, elapsed) || state_reader_done(&r))
		return error_setf(
			err, "section vm: cannot restore the interrupt controllers, PIT or clock");
	r = state_reader_init(s->idx.devices, s->idx.devices_len);
	if (vm_restore_devices(vm, &r) || state_reader_done(&r))
		return error_setf(err, "section devices: does not fit this VM's devices");
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		r = state_reader_init(s->idx.vcpu[i], s->idx.vcpu_len[i]);
		if (vcpu_restore_state(&vm->vcpus[i], &r) || state_reader_done(&r))
			return error_setf(err, "section vcpu %u: cannot restore it", i);
		/* Not started yet, so this thread may: at its first entry the
		 * guest sees PVCLOCK_GUEST_STOPPED and does not take the time
		 * it spent saved for a lockup. */
		vcpu_guest_stopped(&vm->vcpus[i], NULL);
	}
	if (s->user_paused)
		vm_pause(vm);
	return 0;
}
