/* The main thread's side of a migration: `migrate` and its status, and
 * the steps the copy thread asks for. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "control/server.h"
#include "migration/migration_impl.h"
#include "snapshot/snapshot.h"
#include "util/event.h"
#include "util/util.h"

#define DEFAULT_MAX_DOWNTIME_MS 50

static const char *phase_name(int phase)
{
	static const char *const names[] = {"none",    "setup",	    "precopy",
					    "stopped", "completed", "failed"};
	return phase >= 0 && phase < (int)ARRAY_SIZE(names) ? names[phase] : "unknown";
}

static void answer(struct migration *m, int r)
{
	pthread_mutex_lock(&m->lock);
	m->answer = r;
	m->answered = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* The guest stops here: from now on its downtime counts. */
static int do_stop(struct migration *m)
{
	vm_park_all(m->vm, PARK_MIGRATION);
	m->parked = true;
	m->pause_ns = now_ns();
	struct error err = {0};
	free(m->meta);
	m->meta = NULL;
	if (snapshot_capture(m->vm, &m->meta, &m->meta_len, &err)) {
		pthread_mutex_lock(&m->lock);
		m->err = err;
		pthread_mutex_unlock(&m->lock);
		return -EIO;
	}
	return 0;
}

static json_object *result_json(struct migration *m, bool ok, const char *err)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string(ok ? "completed" : "failed"));
	json_object_object_add(o, "addr", json_object_new_string(m->addr.text));
	if (!ok)
		json_object_object_add(o, "error", json_object_new_string(err));
	json_object_object_add(o, "downtime_ms", json_object_new_double(m->downtime_ns / 1e6));
	json_object_object_add(o, "total_ms",
			       json_object_new_double((now_ns() - m->start_ns) / 1e6));
	json_object_object_add(o, "bytes", json_object_new_uint64(atomic_load(&m->bytes)));
	json_object_object_add(o, "rounds", json_object_new_uint64(atomic_load(&m->rounds)));
	json_object_object_add(o, "pages", json_object_new_uint64(atomic_load(&m->pages_sent)));
	json_object_object_add(o, "zero_pages",
			       json_object_new_uint64(atomic_load(&m->zero_pages)));
	json_object_object_add(o, "converged", json_object_new_boolean(m->converged));
	return o;
}

/* Running on here after a failure: unless the destination already holds the
 * disks, which means it runs the guest. */
static bool take_back(struct migration *m)
{
	struct error err = {0};
	if (m->disks_released && vm_lock_disks(m->vm, &err)) {
		log_err("migration: %s: the destination holds the disks and runs the guest",
			err.msg);
		return false;
	}
	m->disks_released = false;
	if (m->go_sent && !m->vm->nr_disks) {
		log_err("migration: the destination did not confirm it runs the guest; it stays "
			"paused here (resume it only if the destination does not run it)");
		if (!m->vm->user_paused)
			vm_pause(m->vm);
	}
	if (m->parked)
		vm_unpark_all(m->vm, PARK_MIGRATION);
	m->parked = false;
	return true;
}

static void finish(struct migration *m, bool ok)
{
	pthread_join(m->thread, NULL);
	m->thread_running = false;
	pthread_mutex_lock(&m->lock);
	struct error err = m->err;
	pthread_mutex_unlock(&m->lock);
	if (!ok && !take_back(m))
		ok = true; /* the guest went: end as a migration that finished */
	atomic_store(&m->phase, ok ? MIG_PHASE_COMPLETED : MIG_PHASE_FAILED);
	json_object_put(m->last);
	m->last = result_json(m, ok, err.msg);
	vm_release_migration(m->vm);
	if (ok)
		log_info("VM '%s' migrated to %s: downtime %.1f ms, %.1f ms in all, %llu bytes",
			 m->vm->cfg.name, m->addr.text, m->downtime_ns / 1e6,
			 (now_ns() - m->start_ns) / 1e6,
			 (unsigned long long)atomic_load(&m->bytes));
	else
		log_warn("VM '%s': migration to %s failed: %s; it runs on here", m->vm->cfg.name,
			 m->addr.text, err.msg);
	control_emit_event(m->ctl, "migration", json_object_get(m->last));
	if (ok)
		vm_request_exit(m->vm, VM_EXIT_MIGRATED, 0);
}

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct migration *m = userdata;
	(void)s, (void)revents;
	uint64_t n;
	(void)!read(fd, &n, sizeof(n)); /* EAGAIN: nothing new */
	pthread_mutex_lock(&m->lock);
	enum mig_request req = m->answered ? MIG_REQ_NONE : m->request;
	m->request = MIG_REQ_NONE;
	pthread_mutex_unlock(&m->lock);
	switch (req) {
	case MIG_REQ_STOP:
		answer(m, do_stop(m));
		break;
	case MIG_REQ_HANDOVER:
		vm_unlock_disks(m->vm);
		m->disks_released = true;
		answer(m, 0);
		break;
	case MIG_REQ_DONE:
	case MIG_REQ_FAILED:
		finish(m, req == MIG_REQ_DONE);
		break;
	default:
		break;
	}
	return 0;
}

struct cpuid_fetch {
	struct kvm_cpuid2 *cpuid;
};

/* Only a vCPU's own thread may touch its fd while it runs. */
static void fetch_cpuid(struct vcpu *vcpu, void *arg)
{
	struct cpuid_fetch *f = arg;
	if (vcpu->index == 0)
		f->cpuid = x86_vcpu_cpuid(vcpu->fd);
}

/* What the destination checks before anything moves. */
static int build_hello(struct migration *m, struct error *err)
{
	struct state_writer cfg = {0};
	struct cpuid_fetch f = {0};
	snapshot_write_config(m->vm, &cfg);
	int r = vm_run_on_all(m->vm, fetch_cpuid, &f, true);
	if (!r && !cfg.err && f.cpuid) {
		struct mig_hello h = {
			.version = MIG_VERSION,
			.nr_vcpus = m->vm->nr_vcpus,
			.memory_size = m->vm->ram_size,
			.config = cfg.buf,
			.config_len = (uint32_t)cfg.len,
			.cpuid = (const uint8_t *)f.cpuid,
			.cpuid_len = (uint32_t)(sizeof(*f.cpuid) +
						f.cpuid->nent * sizeof(f.cpuid->entries[0])),
		};
		if (gethostname(h.host_cpu, sizeof(h.host_cpu) - 1) < 0)
			snprintf(h.host_cpu, sizeof(h.host_cpu), "unknown");
		r = mig_hello_build(&h, &m->hello, &m->hello_len);
	} else {
		r = -EIO;
	}
	free(f.cpuid);
	state_writer_free(&cfg);
	return r ? error_setf(err, "migrate: cannot read the VM's configuration") : 0;
}

static int migrate_args(struct migration *m, json_object *args, struct error *err)
{
	json_object *addr, *dt;
	if (!args || !json_object_object_get_ex(args, "addr", &addr) ||
	    !json_object_is_type(addr, json_type_string))
		return error_setf(
			err, "migrate needs {\"args\":{\"addr\":\"unix:PATH|tcp:HOST:PORT\"}}");
	if (mig_addr_parse(json_object_get_string(addr), &m->addr, err))
		return error_prepend(err, "migrate: ");
	int64_t ms = DEFAULT_MAX_DOWNTIME_MS;
	if (json_object_object_get_ex(args, "max_downtime_ms", &dt)) {
		ms = json_object_get_int64(dt);
		if (!json_object_is_type(dt, json_type_int) || ms < 1 || ms > 60000)
			return error_setf(err, "migrate: max_downtime_ms is 1 to 60000");
	}
	m->max_downtime_ns = (uint64_t)ms * 1000000;
	return 0;
}

static void reset_progress(struct migration *m)
{
	atomic_store(&m->cancelled, false);
	atomic_store(&m->bytes, 0);
	atomic_store(&m->rounds, 0);
	atomic_store(&m->dirty_rate, 0);
	atomic_store(&m->remaining, 0);
	atomic_store(&m->pages_sent, 0);
	atomic_store(&m->zero_pages, 0);
	m->go_sent = false;
	m->converged = true;
	m->downtime_ns = 0;
	m->err = (struct error){0};
	free(m->hello);
	m->hello = NULL;
	uint64_t n;
	(void)!read(m->cancel_efd, &n, sizeof(n)); /* a cancel of the last one */
}

static json_object *cmd_migrate(void *opaque, json_object *args, struct error *err)
{
	struct migration *m = opaque;
	if (m->thread_running || vm_migrating(m->vm)) {
		error_setf(err, "migrate: a migration is in flight already");
		return NULL;
	}
	if (vm_stopping(m->vm)) {
		error_setf(err, "migrate: the VM is stopping");
		return NULL;
	}
	reset_progress(m);
	if (migrate_args(m, args, err) || mig_resolve(&m->addr, &m->target, err) ||
	    build_hello(m, err))
		return NULL;
	if (m->pagemap_fd < 0)
		m->pagemap_fd =
			open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC); /* -1: every page */
	m->start_ns = now_ns();
	atomic_store(&m->phase, MIG_PHASE_SETUP);
	if (!vm_claim_migration(m->vm)) {
		atomic_store(&m->phase, MIG_PHASE_NONE);
		error_setf(err, "migrate: a migration is in flight already");
		return NULL;
	}
	int r = pthread_create(&m->thread, NULL, migration_thread, m);
	if (r) {
		vm_release_migration(m->vm);
		atomic_store(&m->phase, MIG_PHASE_NONE);
		error_set_errno(err, r, "migrate: cannot start a thread");
		return NULL;
	}
	m->thread_running = true;
	log_info("VM '%s': migrating to %s (max downtime %llu ms)", m->vm->cfg.name, m->addr.text,
		 (unsigned long long)(m->max_downtime_ns / 1000000));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "started", json_object_new_boolean(true));
	return o;
}

static void status_part(void *opaque, json_object *status)
{
	struct migration *m = opaque;
	if (!m->thread_running) {
		json_object_object_add(status, "migration", json_object_get(m->last));
		return;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("active"));
	json_object_object_add(o, "phase", json_object_new_string(phase_name(m->phase)));
	json_object_object_add(o, "addr", json_object_new_string(m->addr.text));
	json_object_object_add(o, "bytes", json_object_new_uint64(atomic_load(&m->bytes)));
	json_object_object_add(o, "rounds", json_object_new_uint64(atomic_load(&m->rounds)));
	json_object_object_add(o, "dirty_pages_per_s",
			       json_object_new_uint64(atomic_load(&m->dirty_rate)));
	json_object_object_add(o, "remaining_pages",
			       json_object_new_uint64(atomic_load(&m->remaining)));
	json_object_object_add(o, "elapsed_ms",
			       json_object_new_double((now_ns() - m->start_ns) / 1e6));
	json_object_object_add(status, "migration", o);
}

int migration_init(struct migration **out, struct vm *vm, sd_event *event, struct control *ctl)
{
	struct migration *m = calloc(1, sizeof(*m));
	*out = m;
	if (!m)
		return -ENOMEM;
	*m = (struct migration){
		.vm = vm, .event = event, .ctl = ctl, .converged = true, .pagemap_fd = -1};
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->notify_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->notify_efd < 0 || m->cancel_efd < 0)
		return -errno;
	int r = sd_event_add_io(event, &m->notify_src, m->notify_efd, EPOLLIN, on_notify, m);
	if (r < 0)
		return r;
	r = control_register(ctl, "migrate", cmd_migrate, m);
	if (r)
		return r;
	return control_add_status(ctl, status_part, m);
}

bool migration_active(const struct migration *m)
{
	return m && m->thread_running;
}

void migration_destroy(struct migration *m)
{
	if (!m)
		return;
	if (m->thread_running) {
		uint64_t one = 1;
		atomic_store(&m->cancelled, true);
		(void)!write(m->cancel_efd, &one, sizeof(one));
		pthread_mutex_lock(&m->lock);
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		/* Ended before the main loop heard: gone, or to be taken back. */
		if (m->request != MIG_REQ_DONE) {
			take_back(m);
			log_info("VM '%s': migration to %s cancelled", m->vm->cfg.name,
				 m->addr.text);
		}
		vm_release_migration(m->vm);
	}
	sd_event_source_disable_unref(m->notify_src);
	if (m->notify_efd >= 0)
		close(m->notify_efd);
	if (m->cancel_efd >= 0)
		close(m->cancel_efd);
	if (m->pagemap_fd >= 0)
		close(m->pagemap_fd);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->hello);
	free(m->meta);
	json_object_put(m->last);
	free(m);
}
