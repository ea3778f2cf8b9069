/* Saving a snapshot: every vCPU parked and its state read on its own
 * thread, the devices' and KVM's collected, the disks flushed; then
 * FILE.tmp written (pages never touched, or zero, left as holes), fsynced,
 * renamed over FILE and the directory synced. snapshot_capture is the same
 * without the file, for a migration. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "arch/x86/cpu.h"
#include "core/dirty_log.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void snapshot_write_config(struct vm *vm, struct state_writer *w)
{
	state_put_u32(w, SNAP_CONFIG_VERSION);
	state_put_u32(w, vm->nr_vcpus);
	state_put_u64(w, vm->cfg.memory_mib);
	state_put_u8(w, vm->cfg.linux_guest);
	state_put_u8(w, vm->user_paused);
	state_put_u32(w, (uint32_t)vm->nr_disks);
	for (int i = 0; i < vm->nr_disks; i++) {
		const struct virtio_blk *b = &vm->disks[i].blk;
		uint32_t n = (uint32_t)strlen(b->img.path);
		state_put_u32(w, n);
		state_put(w, b->img.path, n);
		state_put_u8(w, b->img.ro);
		state_put(w, vm->cfg.disks[i].id, sizeof(vm->cfg.disks[i].id));
		state_put_u64(w, b->img.size);
	}
	/* Version 2: the CPUID features the guest was not given. */
	for (int i = 0; i < X86_FEATURE_WORDS; i++)
		state_put_u32(w, vm->cfg.cpu_mask.clear[i]);
	uint32_t n = (uint32_t)strlen(vm->cfg.cpu_mask.spec);
	state_put_u32(w, n);
	state_put(w, vm->cfg.cpu_mask.spec, n);
	/* Version 3: the nets - a bridge's tap is made anew, a named one is
	 * opened by its name; the MAC goes with the guest. */
	state_put_u32(w, (uint32_t)vm->nr_nets);
	for (int i = 0; i < vm->nr_nets; i++) {
		struct net_spec s = vm->cfg.nets[i];
		if (!s.bridge[0])
			snprintf(s.tap, sizeof(s.tap), "%s", vm->nets[i].net.tap.name);
		memcpy(s.mac, vm->nets[i].net.mac, sizeof(s.mac));
		state_put(w, s.tap, sizeof(s.tap));
		state_put(w, s.bridge, sizeof(s.bridge));
		state_put(w, s.mac, sizeof(s.mac));
		state_put(w, s.id, sizeof(s.id));
	}
	/* Version 5: the `--device`s, as given. */
	state_put_u32(w, (uint32_t)vm->cfg.nr_virtio);
	for (int i = 0; i < vm->cfg.nr_virtio; i++) {
		state_put(w, vm->cfg.virtio[i].kind, sizeof(vm->cfg.virtio[i].kind));
		state_put(w, vm->cfg.virtio[i].options, sizeof(vm->cfg.virtio[i].options));
	}
}

struct vcpu_states {
	struct state_writer *w;
	int *result;
};

/* On each vCPU's own thread, parked: only it may touch its fd. */
static void save_vcpu(struct vcpu *vcpu, void *arg)
{
	struct vcpu_states *s = arg;
	s->result[vcpu->index] = vcpu_save_state(vcpu, &s->w[vcpu->index]);
}

/* sections[0..2]: config, vm, devices; then one per vCPU. */
static int collect(struct vm *vm, struct state_writer *sections, struct error *err)
{
	snapshot_write_config(vm, &sections[0]);
	int r = vm_save_kvm_state(vm, &sections[1]);
	if (r)
		return error_set_errno(err, -r, "cannot read the VM's state");
	r = vm_save_devices(vm, &sections[2]);
	if (r)
		return error_set_errno(err, -r, "cannot read the VM's state");
	int *results = calloc(vm->nr_vcpus, sizeof(*results));
	if (!results)
		return error_setf(err, "out of memory");
	struct vcpu_states s = {sections + 3, results};
	r = vm_run_on_all(vm, save_vcpu, &s, true);
	for (uint32_t i = 0; i < vm->nr_vcpus && !r; i++)
		r = results[i] ? results[i] : sections[3 + i].err;
	free(results);
	if (r)
		return error_set_errno(err, -r, "cannot read a vCPU's state");
	return 0;
}

/* What a snapshot holds must be what the disks hold at that moment. */
static int collect_flushed(struct vm *vm, struct state_writer *sections, struct error *err)
{
	int r = collect(vm, sections, err);
	if (r)
		return r;
	r = vm_flush_disks(vm);
	if (r)
		return error_set_errno(err, -r, "flushing the disks");
	return 0;
}

#define PM_CHUNK 2048 /* pages per pagemap read, and at most per write (8 MiB) */

/* Runs of touched, non-zero pages, each written where it is in RAM; the
 * rest stay holes in the file. */
static int write_memory(int fd, const struct vm *vm, uint64_t base, uint64_t *pages)
{
	uint64_t n = vm->ram_size / SNAP_PAGE, flags[PM_CHUNK], run = 0, run_len = 0;
	int pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;
	for (uint64_t c = 0; c < n; c += PM_CHUNK) {
		uint64_t k = n - c < PM_CHUNK ? n - c : PM_CHUNK;
		vm_pages_in_use(vm, pm_fd, c, k, flags);
		for (uint64_t i = 0; i < k; i++) {
			uint64_t p = c + i;
			bool data = (flags[i] & VM_PAGE_IN_USE) &&
				    !gm_page_is_zero(vm->ram + p * SNAP_PAGE);
			if (data && run_len++ == 0)
				run = p;
			/* Moderate writes keep the page cache's writeback going
			 * while we copy, rather than one vast write at the end. */
			if ((data && run_len < PM_CHUNK) || !run_len)
				continue;
			r = write_full_at(fd, vm->ram + run * SNAP_PAGE, run_len * SNAP_PAGE,
					  base + run * SNAP_PAGE);
			*pages += run_len;
			run_len = 0;
			if (r)
				goto out_close;
		}
	}
	if (run_len) {
		r = write_full_at(fd, vm->ram + run * SNAP_PAGE, run_len * SNAP_PAGE,
				  base + run * SNAP_PAGE);
		*pages += run_len;
	}
out_close:
	if (pm_fd >= 0)
		close(pm_fd);
	return r;
}

static uint32_t crc(const void *p, uint64_t n)
{
	return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n);
}

static void cpu_brand(char *out, size_t len)
{
	char buf[4096];
	snprintf(out, len, "unknown");
	if (read_file("/proc/cpuinfo", buf, sizeof(buf)) < 0)
		return;
	char *p = strstr(buf, "model name");
	char *colon = p ? strchr(p, ':') : NULL;
	if (colon)
		snprintf(out, len, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
}

/* Header, table and sections, zero-padded to the page where the memory
 * image starts: what a file holds before it, and a migration sends. */
static int build_meta(struct vm *vm, struct state_writer *sec, uint32_t nr, uint8_t **out,
		      uint64_t *len)
{
	struct snap_header h = {.magic = SNAP_MAGIC,
				.version = SNAP_VERSION,
				.header_size = sizeof(h),
				.nr_sections = nr,
				.memory_size = vm->ram_size,
				.saved_realtime_ns = realtime_ns()};
	cpu_brand(h.host_cpu, sizeof(h.host_cpu));
	uint64_t off = sizeof(h) + (uint64_t)nr * sizeof(struct snap_section);
	for (uint32_t i = 0; i < nr; i++)
		off += (sec[i].len + 7) / 8 * 8; /* each section 8-byte aligned */
	h.memory_offset = (off + SNAP_PAGE - 1) / SNAP_PAGE * SNAP_PAGE;
	uint8_t *buf = calloc(1, h.memory_offset);
	if (!buf)
		return -ENOMEM;
	struct snap_section *table = (struct snap_section *)(buf + sizeof(h));
	off = sizeof(h) + (uint64_t)nr * sizeof(*table);
	for (uint32_t i = 0; i < nr; i++) {
		table[i] = (struct snap_section){
			.type = i < 3 ? (uint32_t[]){SNAP_CONFIG, SNAP_KVM_VM, SNAP_DEVICES}[i]
				      : SNAP_VCPU,
			.index = i < 3 ? 0 : i - 3,
			.offset = off,
			.length = sec[i].len,
			.crc = crc(sec[i].buf, sec[i].len),
		};
		memcpy(buf + off, sec[i].buf, sec[i].len);
		off += (sec[i].len + 7) / 8 * 8;
	}
	h.table_crc = crc(table, (uint64_t)nr * sizeof(*table));
	h.header_crc = crc(&h, sizeof(h));
	memcpy(buf, &h, sizeof(h));
	*out = buf;
	*len = h.memory_offset;
	return 0;
}

/* The sections from offset 0; the memory image from the next page. */
static int write_file(int fd, struct vm *vm, struct state_writer *sec, uint32_t nr,
		      struct snapshot_result *res)
{
	uint8_t *meta;
	uint64_t meta_len;
	int r = build_meta(vm, sec, nr, &meta, &meta_len);
	if (r)
		return r;
	res->bytes = meta_len + vm->ram_size;
	r = write_full_at(fd, meta, meta_len, 0);
	free(meta);
	if (r)
		return r;
	if (ftruncate(fd, (off_t)(meta_len + vm->ram_size)) < 0)
		return -errno;
	return write_memory(fd, vm, meta_len, &res->pages);
}

/* FILE.tmp written and fsynced, renamed over FILE, the directory fsynced:
 * at no point is there a partial FILE. */
static int commit(struct vm *vm, const char *path, struct state_writer *sec, uint32_t nr,
		  struct snapshot_result *res, struct error *err)
{
	char tmp[KVMHOST_PATH_MAX], dir[KVMHOST_PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(dir, sizeof(dir), "%s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set_errno(err, errno, "%s", tmp);
	struct stat st;
	int r = write_file(fd, vm, sec, nr, res);
	if (r)
		goto err_close;
	if (fsync(fd) < 0) {
		r = -errno;
		goto err_close;
	}
	if (fstat(fd, &st) == 0)
		res->allocated = (uint64_t)st.st_blocks * 512;
	close(fd);
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto err_unlink;
	}
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		log_warn("%s: the directory could not be synced: %s", path, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return 0;

err_close:
	close(fd);
err_unlink:
	unlink(tmp);
	return error_set_errno(err, -r, "writing %s", path);
}

int snapshot_save(struct vm *vm, const char *path, bool keep_running, struct snapshot_result *res,
		  struct error *err)
{
	uint64_t t0 = now_ns();
	*res = (struct snapshot_result){0};
	uint32_t nr = 3 + vm->nr_vcpus;
	struct state_writer *sec = calloc(nr, sizeof(*sec));
	if (!sec)
		return error_setf(err, "out of memory");
	vm_park_all(vm, PARK_SNAPSHOT);
	int ret = collect_flushed(vm, sec, err);
	if (ret)
		goto out_free_sections;
	ret = commit(vm, path, sec, nr, res, err);
out_free_sections:
	for (uint32_t i = 0; i < nr; i++)
		state_writer_free(&sec[i]);
	free(sec);
	res->ms = (double)(now_ns() - t0) / 1e6;
	/* A failed save leaves the VM as it was; a finished one without
	 * keep_running stays parked: the guest must not run past its file. */
	if (ret || keep_running)
		vm_unpark_all(vm, PARK_SNAPSHOT);
	return ret;
}

int snapshot_capture(struct vm *vm, uint8_t **meta, uint64_t *len, struct error *err)
{
	uint32_t nr = 3 + vm->nr_vcpus;
	struct state_writer *sec = calloc(nr, sizeof(*sec));
	if (!sec)
		return error_setf(err, "out of memory");
	int ret = collect_flushed(vm, sec, err);
	if (ret)
		goto out_free_sections;
	ret = build_meta(vm, sec, nr, meta, len);
	if (ret)
		ret = error_setf(err, "out of memory");
out_free_sections:
	for (uint32_t i = 0; i < nr; i++)
		state_writer_free(&sec[i]);
	free(sec);
	return ret;
}
