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

#include "snapshot/snapshot.h"
#include "util/util.h"

#define CONFIG_VERSION 1

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What the guest was given; restore builds the same VM from it. */
static void save_config(struct vm *vm, struct state_writer *w)
{
	state_put_u32(w, CONFIG_VERSION);
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
static int collect(struct vm *vm, struct state_writer *sections, char *err, size_t errlen)
{
	save_config(vm, &sections[0]);
	int r = vm_save_kvm_state(vm, &sections[1]);
	if (!r)
		r = vm_save_devices(vm, &sections[2]);
	if (r)
		FAIL("cannot read the VM's state: %s", strerror(-r));
	int *results = calloc(vm->nr_vcpus, sizeof(*results));
	if (!results)
		FAIL("out of memory");
	struct vcpu_states s = {sections + 3, results};
	r = vm_run_on_all(vm, save_vcpu, &s, true);
	for (uint32_t i = 0; i < vm->nr_vcpus && !r; i++)
		r = results[i] ? results[i] : sections[3 + i].err;
	free(results);
	if (r)
		FAIL("cannot read a vCPU's state: %s", strerror(-r));
	return 0;
fail:
	return -1;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (size_t i = 0; i < SNAP_PAGE / sizeof(*q); i++)
		if (q[i])
			return false;
	return true;
}

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_CHUNK   2048 /* pages per pagemap read, and at most per write (8 MiB) */

/* Which of [first, first+n) pages of RAM may hold data: for anonymous
 * memory, a page neither present nor swapped was never touched, and reading
 * it would only fault in the zero page (most of a large, idle guest). A
 * restored guest's memory is the snapshot file's: every page may. */
static void pages_in_use(const struct vm *vm, int pm_fd, uint64_t first, uint64_t n,
			 uint64_t *flags)
{
	uint64_t vpage = ((uintptr_t)vm->ram >> 12) + first;
	if (vm->cfg.image || pm_fd < 0 ||
	    read_full_at(pm_fd, flags, n * sizeof(*flags), vpage * sizeof(*flags)))
		for (uint64_t i = 0; i < n; i++)
			flags[i] = PM_PRESENT;
}

/* Runs of touched, non-zero pages, each written where it is in RAM; the
 * rest stay holes in the file. */
static int write_memory(int fd, const struct vm *vm, uint64_t base, uint64_t *pages)
{
	static_assert(SNAP_PAGE == 4096, "pagemap has one entry per 4 KiB page");
	uint64_t n = vm->ram_size / SNAP_PAGE, flags[PM_CHUNK], run = 0, run_len = 0;
	int pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;
	for (uint64_t c = 0; c < n && !r; c += PM_CHUNK) {
		uint64_t k = n - c < PM_CHUNK ? n - c : PM_CHUNK;
		pages_in_use(vm, pm_fd, c, k, flags);
		for (uint64_t i = 0; i < k && !r; i++) {
			uint64_t p = c + i;
			bool data = (flags[i] & (PM_PRESENT | PM_SWAPPED)) &&
				    !page_is_zero(vm->ram + p * SNAP_PAGE);
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
		}
	}
	if (!r && run_len) {
		r = write_full_at(fd, vm->ram + run * SNAP_PAGE, run_len * SNAP_PAGE,
				  base + run * SNAP_PAGE);
		*pages += run_len;
	}
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

/* Header, table and sections from offset 0; the memory image from the next
 * page boundary. */
static int write_file(int fd, struct vm *vm, struct state_writer *sec, uint32_t nr,
		      struct snapshot_result *res)
{
	struct snap_header h = {.magic = SNAP_MAGIC,
				.version = SNAP_VERSION,
				.header_size = sizeof(h),
				.nr_sections = nr,
				.memory_size = vm->ram_size,
				.saved_realtime_ns = realtime_ns()};
	cpu_brand(h.host_cpu, sizeof(h.host_cpu));
	struct snap_section *table = calloc(nr, sizeof(*table));
	if (!table)
		return -ENOMEM;
	uint64_t off = sizeof(h) + (uint64_t)nr * sizeof(*table);
	for (uint32_t i = 0; i < nr; i++) {
		table[i] = (struct snap_section){
			.type = i < 3 ? (uint32_t[]){SNAP_CONFIG, SNAP_KVM_VM, SNAP_DEVICES}[i]
				      : SNAP_VCPU,
			.index = i < 3 ? 0 : i - 3,
			.offset = off,
			.length = sec[i].len,
			.crc = crc(sec[i].buf, sec[i].len),
		};
		off += (sec[i].len + 7) / 8 * 8; /* each section 8-byte aligned */
	}
	h.memory_offset = (off + SNAP_PAGE - 1) / SNAP_PAGE * SNAP_PAGE;
	h.table_crc = crc(table, (uint64_t)nr * sizeof(*table));
	h.header_crc = crc(&h, sizeof(h));
	int r = write_full_at(fd, &h, sizeof(h), 0);
	if (!r)
		r = write_full_at(fd, table, (uint64_t)nr * sizeof(*table), sizeof(h));
	for (uint32_t i = 0; i < nr && !r; i++)
		r = write_full_at(fd, sec[i].buf, sec[i].len, table[i].offset);
	free(table);
	if (!r && ftruncate(fd, (off_t)(h.memory_offset + h.memory_size)) < 0)
		r = -errno;
	if (!r)
		r = write_memory(fd, vm, h.memory_offset, &res->pages);
	res->bytes = h.memory_offset + h.memory_size;
	return r;
}

/* FILE.tmp written and fsynced, renamed over FILE, the directory fsynced:
 * at no point is there a partial FILE. */
static int commit(struct vm *vm, const char *path, struct state_writer *sec, uint32_t nr,
		  struct snapshot_result *res, char *err, size_t errlen)
{
	char tmp[4200], dir[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(dir, sizeof(dir), "%s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		FAIL("%s: %s", tmp, strerror(errno));
	int r = write_file(fd, vm, sec, nr, res);
	if (!r && fsync(fd) < 0)
		r = -errno;
	struct stat st;
	if (!r && fstat(fd, &st) == 0)
		res->allocated = (uint64_t)st.st_blocks * 512;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		FAIL("writing %s: %s", path, strerror(-r));
	}
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		log_warn("%s: the directory could not be synced: %s", path, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return 0;
fail:
	return -1;
}

int snapshot_save(struct vm *vm, const char *path, bool keep_running, struct snapshot_result *res,
		  char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	*res = (struct snapshot_result){0};
	uint32_t nr = 3 + vm->nr_vcpus;
	struct state_writer *sec = calloc(nr, sizeof(*sec));
	if (!sec)
		return errorf(err, errlen, "out of memory");
	vm_park_all(vm, PARK_SNAPSHOT);
	int ret = collect(vm, sec, err, errlen);
	if (!ret && (ret = vm_flush_disks(vm)))
		ret = errorf(err, errlen, "flushing the disks: %s", strerror(-ret));
	if (!ret)
		ret = commit(vm, path, sec, nr, res, err, errlen);
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
