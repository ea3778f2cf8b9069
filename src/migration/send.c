/* The source's side. The copy runs on a thread of its own, so the VM's main
 * loop keeps answering its control socket; the steps that touch the VM as a
 * whole (park it and take its state, give up the disk locks, resume or end
 * it) are asked of the main thread through an eventfd, as every other
 * event reaches the VM. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/dirty_log.h"
#include "migration/migration_impl.h"
#include "sandbox/sandbox.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

#define MAX_ROUNDS 30 /* then stop-and-copy whatever is left */
#define PM_CHUNK   2048

static void add_bytes(struct migration *m, uint64_t n)
{
	atomic_fetch_add(&m->bytes, n);
}

/* One run of pages: all zero (a marker) or data sent from guest RAM as it
 * is (no copy here; the kernel copies once into the socket). */
struct page_run {
	uint64_t first, n;
	bool zero;
};

static int flush_run(struct migration *m, struct mig_conn *c, struct page_run *run)
{
	if (!run->n)
		return 0;
	if (atomic_load(&m->cancelled))
		return -ECANCELED;
	int r;
	if (run->zero) {
		uint64_t p[2] = {run->first, run->n};
		r = mig_send(c, MIG_ZERO, p, sizeof(p));
		add_bytes(m, sizeof(struct mig_msg_hdr) + sizeof(p));
		atomic_fetch_add(&m->zero_pages, run->n);
	} else {
		uint64_t len = run->n * MIG_PAGE;
		struct mig_msg_hdr h = {.type = MIG_PAGES, .len = 8 + len};
		struct iovec iov[3] = {{&h, sizeof(h)},
				       {&run->first, 8},
				       {m->vm->ram + run->first * MIG_PAGE, len}};
		r = mig_conn_writev(c, iov, 3);
		add_bytes(m, sizeof(h) + 8 + len);
		atomic_fetch_add(&m->pages_sent, run->n);
	}
	run->n = 0;
	return r;
}

static int add_page(struct migration *m, struct mig_conn *c, struct page_run *run, uint64_t p)
{
	bool zero = gm_page_is_zero(m->vm->ram + p * MIG_PAGE);
	int r = 0;
	if (run->n && (run->zero != zero || run->first + run->n != p || run->n == MIG_MAX_RUN))
		r = flush_run(m, c, run);
	if (!run->n)
		*run = (struct page_run){p, 0, zero};
	run->n++;
	return r;
}

/* The first round: every page the guest may have touched; the rest is
 * zero on the destination already. */
static int send_all(struct migration *m, struct mig_conn *c)
{
	uint64_t n = m->vm->ram_size / MIG_PAGE, flags[PM_CHUNK];
	int pm_fd = m->pagemap_fd;
	struct page_run run = {0};
	for (uint64_t base = 0; base < n; base += PM_CHUNK) {
		uint64_t k = n - base < PM_CHUNK ? n - base : PM_CHUNK;
		vm_pages_in_use(m->vm, pm_fd, base, k, flags);
		for (uint64_t i = 0; i < k; i++) {
			if (!(flags[i] & VM_PAGE_IN_USE))
				continue;
			int r = add_page(m, c, &run, base + i);
			if (r)
				return r;
		}
	}
	return flush_run(m, c, &run);
}

static int send_dirty(struct migration *m, struct mig_conn *c, const uint64_t *bitmap)
{
	uint64_t words = vm_dirty_bitmap_words(m->vm);
	struct page_run run = {0};
	for (uint64_t w = 0; w < words; w++) {
		for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
			int r = add_page(m, c, &run, w * 64 + (uint64_t)__builtin_ctzll(bits));
			if (r)
				return r;
		}
	}
	return flush_run(m, c, &run);
}

static uint64_t count_dirty(uint64_t *bitmap, uint64_t words, struct migration *m, int *r)
{
	memset(bitmap, 0, words * sizeof(*bitmap));
	*r = vm_dirty_log_fetch(m->vm, bitmap);
	uint64_t n = 0;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(bitmap[w]);
	return n;
}

/* Rounds until what is left would go in max_downtime at the bandwidth seen
 * so far, or MAX_ROUNDS. Leaves in bitmap what is dirty now. */
static int precopy(struct migration *m, struct mig_conn *c, uint64_t *bitmap, struct error *err)
{
	uint64_t words = vm_dirty_bitmap_words(m->vm), t0 = now_ns(), last = t0;
	atomic_store(&m->phase, MIG_PHASE_PRECOPY);
	int r = send_all(m, c);
	for (uint32_t round = 1; !r; round++) {
		atomic_store(&m->rounds, round);
		uint64_t dirty = count_dirty(bitmap, words, m, &r), now = now_ns();
		if (r)
			break;
		double secs = (double)(now - last) / 1e9, total = (double)(now - t0) / 1e9;
		double bandwidth = (double)atomic_load(&m->bytes) / (total > 1e-6 ? total : 1e-6);
		atomic_store(&m->dirty_rate,
			     (uint64_t)((double)dirty / (secs > 1e-6 ? secs : 1e-6)));
		atomic_store(&m->remaining, dirty);
		last = now;
		double left_ns = (double)dirty * MIG_PAGE / bandwidth * 1e9;
		if (left_ns <= (double)m->max_downtime_ns)
			return 0;
		if (round >= MAX_ROUNDS) {
			m->converged = false;
			log_warn("migration: the guest dirties memory faster than it can be sent "
				 "(%llu pages left after %u rounds); stopping it to copy the rest",
				 (unsigned long long)dirty, round);
			return 0;
		}
		r = send_dirty(m, c, bitmap);
	}
	return error_setf(err, "sending memory to %s: %s", m->addr.text,
			  r == -ECANCELED ? "cancelled" : strerror(-r));
}

/* Asks the main thread for a step and waits for its answer (or a cancel). */
static int ask_main(struct migration *m, enum mig_request req)
{
	pthread_mutex_lock(&m->lock);
	m->request = req;
	m->answered = false;
	uint64_t one = 1;
	(void)!write(m->notify_efd, &one, sizeof(one)); /* a counter: cannot fill */
	while (!m->answered && !atomic_load(&m->cancelled))
		pthread_cond_wait(&m->cond, &m->lock);
	int r = m->answered ? m->answer : -ECANCELED;
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* The guest stopped: the last pages, its state; then the disks change hands. */
static int switch_over(struct migration *m, struct mig_conn *c, uint64_t *bitmap, struct error *err)
{
	uint64_t words = vm_dirty_bitmap_words(m->vm);
	int r = ask_main(m, MIG_REQ_STOP);
	if (r)
		return error_setf(err, "%s", r == -ECANCELED ? "cancelled" : m->err.msg);
	atomic_store(&m->phase, MIG_PHASE_STOPPED);
	uint64_t *more = calloc(words, sizeof(*more));
	if (!more)
		return error_setf(err, "out of memory");
	count_dirty(more, words, m, &r);
	for (uint64_t w = 0; w < words; w++)
		bitmap[w] |= more[w];
	free(more);
	if (r)
		goto err_send_last;
	r = send_dirty(m, c, bitmap);
	if (r)
		goto err_send_last;
	r = mig_send(c, MIG_STATE, m->meta, m->meta_len);
	if (r)
		goto err_send_last;
	add_bytes(m, sizeof(struct mig_msg_hdr) + m->meta_len);
	if (mig_expect(mig_conn_read, c, MIG_STATE_OK, err))
		return error_prepend(err, "the destination did not take the state: ");
	r = ask_main(m, MIG_REQ_HANDOVER);
	if (r)
		return error_setf(err, "cancelled");
	r = mig_send(c, MIG_GO, NULL, 0);
	if (r)
		return error_set_errno(err, -r, "telling the destination to run");
	m->go_sent = true;
	if (mig_expect(mig_conn_read, c, MIG_RUNNING, err))
		return error_prepend(err, "the destination did not confirm it runs: ");
	m->downtime_ns = now_ns() - m->pause_ns;
	return 0;

err_send_last:
	return error_set_errno(err, -r, "sending the last pages and the state to %s", m->addr.text);
}

static int migrate(struct migration *m, struct mig_conn *c, struct error *err)
{
	int sr = sandbox_enter(m->vm->sandbox, SANDBOX_MIGRATION);
	if (sr)
		return error_set_errno(err, -sr, "cannot enter the sandbox");
	if (mig_connect(&m->addr, &m->target, c, err))
		return -EINVAL;
	int r = mig_send(c, MIG_HELLO, m->hello, m->hello_len);
	if (r)
		return error_set_errno(err, -r, "%s", m->addr.text);
	c->timeout_ms = MIG_SETUP_TIMEOUT_MS; /* the destination builds the VM */
	if (mig_expect(mig_conn_read, c, MIG_READY, err))
		return error_prepend(err, "the destination refused: ");
	c->timeout_ms = MIG_IO_TIMEOUT_MS;
	uint64_t words = vm_dirty_bitmap_words(m->vm);
	uint64_t *bitmap = calloc(words, sizeof(*bitmap));
	if (!bitmap)
		return error_setf(err, "out of memory");
	r = vm_dirty_log_start(m->vm);
	if (r) {
		free(bitmap);
		return error_set_errno(err, -r, "dirty page logging");
	}
	r = precopy(m, c, bitmap, err);
	if (r)
		goto out_stop_log;
	r = switch_over(m, c, bitmap, err);
out_stop_log:
	vm_dirty_log_stop(m->vm);
	free(bitmap);
	return r;
}

void *migration_thread(void *arg)
{
	struct migration *m = arg;
	struct mig_conn c = {.fd = -1, .cancel_fd = m->cancel_efd, .timeout_ms = MIG_IO_TIMEOUT_MS};
	struct error err = {0};
	int r = migrate(m, &c, &err);
	if (r && atomic_load(&m->cancelled))
		error_set(&err, STATUS_ERROR, ECANCELED, "cancelled");
	/* A refusal the destination should hear about; it may be gone. */
	if (r && c.fd >= 0)
		(void)mig_send_error(&c, err.msg);
	mig_conn_close(&c);
	pthread_mutex_lock(&m->lock);
	m->err = err;
	m->request = r ? MIG_REQ_FAILED : MIG_REQ_DONE;
	m->answered = false;
	pthread_mutex_unlock(&m->lock);
	uint64_t one = 1;
	(void)!write(m->notify_efd, &one, sizeof(one));
	return NULL;
}
