/* A vCPU's thread and how others reach it. The thread loops on KVM_RUN and
 * dispatches exits to the buses; anything else that needs its fd is a
 * request run on that thread after a SIGUSR1 kick (immediate_exit makes the
 * kick race-free). Parking is a set of reason bits, acknowledged and woken
 * through futex words, so no lock is held while anyone waits. */
#include "core/vcpu.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/kvm_state.h"
#include "core/bus.h"
#include "devices/device.h"
#include "sandbox/sandbox.h"
#include "util/event.h"
#include "util/util.h"

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_install_kick_handler(void)
{
	/* No SA_RESTART: the signal must make KVM_RUN return. */
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	return sigaction(KICK_SIGNAL, &sa, NULL) ? -errno : 0;
}

int vcpu_init(struct vcpu *vcpu, const struct vcpu_env *env, int index, struct error *err)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->env = env;
	vcpu->index = index;
	vcpu->fd = -1;
	pthread_mutex_init(&vcpu->lock, NULL);
	vcpu->lock_ready = true;

	vcpu->fd = ioctl(env->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		return error_set_errno(err, errno, "KVM_CREATE_VCPU %d", index);
	int size = ioctl(env->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0)
		return error_set_errno(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
	if (size < (int)sizeof(struct kvm_run))
		return error_setf(err, "KVM_GET_VCPU_MMAP_SIZE: %d bytes is too small", size);
	vcpu->run_size = (size_t)size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return error_set_errno(err, errno, "mmap kvm_run for vCPU %d", index);
	}
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
	if (vcpu->lock_ready)
		pthread_mutex_destroy(&vcpu->lock);
	vcpu->lock_ready = false;
}

/* Wakes a parked vCPU so it looks again at requests, reasons and stop. */
static void vcpu_wake(struct vcpu *vcpu)
{
	atomic_fetch_add(&vcpu->wake_seq, 1);
	futex_wake(&vcpu->wake_seq, 1);
}

void vcpu_kick(struct vcpu *vcpu)
{
	/* immediate_exit covers a vCPU that is about to enter KVM_RUN; the signal
	 * one that is inside it. Set after the pending bit, cleared by the vCPU
	 * before it re-reads pending: no kick is lost. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vcpu->started)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

int vcpu_submit(struct vcpu *vcpu, struct vcpu_request *req)
{
	req->next = NULL;
	atomic_store(&req->done, 0);
	pthread_mutex_lock(&vcpu->lock);
	if (vcpu->exited || !vcpu->started) {
		pthread_mutex_unlock(&vcpu->lock);
		return -ESRCH;
	}
	if (vcpu->req_tail)
		vcpu->req_tail->next = req;
	else
		vcpu->req_head = req;
	vcpu->req_tail = req;
	atomic_fetch_or(&vcpu->pending, VCPU_PENDING_REQ);
	pthread_mutex_unlock(&vcpu->lock);
	vcpu_wake(vcpu); /* a parked vCPU serves requests too */
	vcpu_kick(vcpu);
	return 0;
}

int vcpu_request_wait(struct vcpu_request *req)
{
	int d;
	while ((d = atomic_load(&req->done)) == 0)
		futex_wait(&req->done, 0);
	return d > 0 ? 0 : -ESRCH;
}

int vcpu_run_on(struct vcpu *vcpu, vcpu_fn fn, void *arg, bool wait)
{
	if (wait && vcpu->started && pthread_equal(pthread_self(), vcpu->thread)) {
		fn(vcpu, arg); /* asked from its own thread: waiting would never end */
		return 0;
	}
	if (wait) {
		struct vcpu_request req = {.fn = fn, .arg = arg, .wait = true};
		int r = vcpu_submit(vcpu, &req);
		return r ? r : vcpu_request_wait(&req);
	}
	struct vcpu_request *req = malloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	*req = (struct vcpu_request){.fn = fn, .arg = arg};
	int r = vcpu_submit(vcpu, req);
	if (r)
		free(req);
	return r;
}

static void complete_request(struct vcpu_request *req, int how)
{
	if (!req->wait) {
		free(req);
		return;
	}
	atomic_store(&req->done, how);
	futex_wake(&req->done, 1); /* req may be gone once done is seen */
}

static void serve_requests(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	atomic_fetch_and(&vcpu->pending, ~VCPU_PENDING_REQ);
	struct vcpu_request *req = vcpu->req_head;
	vcpu->req_head = vcpu->req_tail = NULL;
	pthread_mutex_unlock(&vcpu->lock);
	while (req) {
		struct vcpu_request *next = req->next;
		req->fn(vcpu, req->arg);
		complete_request(req, 1);
		req = next;
	}
}

static void complete_pending_io(struct vcpu *vcpu)
{
	if (!vcpu->need_completion)
		return;
	/* Re-enter once with immediate_exit so a half-done IN/MMIO read lands in
	 * guest registers before we park: the guest state is then consistent. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0 && errno != EINTR && errno != EAGAIN)
		log_warn("vCPU %d: completing I/O before park: %s", vcpu->index, strerror(errno));
	vcpu->need_completion = false;
}

void vcpu_guest_stopped(struct vcpu *vcpu, void *arg)
{
	(void)arg;
	/* KVM sets PVCLOCK_GUEST_STOPPED at the next entry, so the guest does
	 * not take the gap for a lockup. EINVAL: the guest has no kvmclock. */
	if (ioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		log_warn("vCPU %d: KVM_KVMCLOCK_CTRL: %s", vcpu->index, strerror(errno));
}

static void set_run_state(struct vcpu *vcpu, int state)
{
	/* Pairs with vcpu_wait_parked: it raises state_waiters before it looks
	 * at run_state, so one of us sees the other (both seq_cst). */
	atomic_store(&vcpu->run_state, state);
	if (atomic_load(&vcpu->state_waiters))
		futex_wake(&vcpu->run_state, INT_MAX);
}

/* Serves requests, parks while asked to; returns false when told to stop. */
static bool vcpu_handle_pending(struct vcpu *vcpu)
{
	bool parked = false;
	for (;;) {
		int seq = atomic_load(&vcpu->wake_seq);
		if (atomic_load(&vcpu->pending) & VCPU_PENDING_REQ)
			serve_requests(vcpu);
		if (atomic_load(&vcpu->stop))
			return false;
		if (!atomic_load(&vcpu->park_reasons))
			break;
		if (!parked) {
			complete_pending_io(vcpu);
			parked = true;
			set_run_state(vcpu, VCPU_PARKED);
			continue; /* look again before sleeping */
		}
		futex_wait(&vcpu->wake_seq, seq);
	}
	if (parked) {
		if (vcpu->env->unparked)
			vcpu->env->unparked(vcpu->env->opaque, (unsigned)vcpu->index);
		/* Here, not at park time, to keep that cost out of pause latency. */
		vcpu_guest_stopped(vcpu, NULL);
		set_run_state(vcpu, VCPU_RUNNING);
	}
	return true;
}

void vcpu_park(struct vcpu *vcpu, unsigned reason)
{
	atomic_fetch_or(&vcpu->park_reasons, reason);
	atomic_fetch_or(&vcpu->pending, VCPU_PENDING_PARK);
	vcpu_kick(vcpu);
}

void vcpu_unpark(struct vcpu *vcpu, unsigned reason)
{
	if (!(atomic_fetch_and(&vcpu->park_reasons, ~reason) & ~reason))
		atomic_fetch_and(&vcpu->pending, ~VCPU_PENDING_PARK);
	/* A reason added meanwhile re-sets the bit: look again. */
	if (atomic_load(&vcpu->park_reasons))
		atomic_fetch_or(&vcpu->pending, VCPU_PENDING_PARK);
	vcpu_wake(vcpu);
}

void vcpu_wait_parked(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	atomic_fetch_add(&vcpu->state_waiters, 1);
	while (atomic_load(&vcpu->park_reasons) && atomic_load(&vcpu->run_state) == VCPU_RUNNING)
		futex_wait(&vcpu->run_state, VCPU_RUNNING);
	atomic_fetch_sub(&vcpu->state_waiters, 1);
}

unsigned vcpu_park_reasons(struct vcpu *vcpu)
{
	return atomic_load(&vcpu->park_reasons);
}

void vcpu_stop(struct vcpu *vcpu)
{
	atomic_store(&vcpu->stop, true);
	atomic_fetch_or(&vcpu->pending, VCPU_PENDING_STOP);
	vcpu_wake(vcpu);
	if (vcpu->run)
		vcpu_kick(vcpu);
}

void vcpu_join(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	pthread_join(vcpu->thread, NULL);
	vcpu->started = false;
}

void vcpu_dump_regs(struct vcpu *vcpu, FILE *out)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(out, "vCPU %d: cannot read registers: %s\n", vcpu->index, strerror(errno));
		return;
	}
	fprintf(out,
		"vCPU %d registers:\n"
		" rip %016llx rsp %016llx rflags %016llx\n"
		" rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
		" rsi %016llx rdi %016llx rbp %016llx\n"
		" r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
		" r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n"
		" cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %016llx\n"
		" cs %04x base %llx  ss %04x  idt %llx/%x  gdt %llx/%x\n",
		vcpu->index, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi,
		r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cr0, s.cr2, s.cr3,
		s.cr4, s.efer, s.cs.selector, s.cs.base, s.ss.selector, s.idt.base, s.idt.limit,
		s.gdt.base, s.gdt.limit);
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	const struct vcpu_env *env = vcpu->env;
	uint64_t size = run->io.size, count = run->io.count;
	if (size == 0 || size > 8 || run->io.data_offset > vcpu->run_size ||
	    count * size > vcpu->run_size - run->io.data_offset) {
		atomic_fetch_add(env->unhandled_pio, 1);
		return;
	}
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint64_t i = 0; i < count; i++, p += size)
		if (!bus_access(env->pio_bus, (unsigned)vcpu->index, run->io.port, p,
				(uint32_t)size, out))
			atomic_fetch_add(env->unhandled_pio, 1);
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data)) {
		atomic_fetch_add(vcpu->env->unhandled_mmio, 1);
		return;
	}
	if (!bus_access(vcpu->env->mmio_bus, (unsigned)vcpu->index, run->mmio.phys_addr,
			run->mmio.data, len, run->mmio.is_write))
		atomic_fetch_add(vcpu->env->unhandled_mmio, 1);
}

static const char *exit_reason_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_SHUTDOWN:
		return "shutdown (triple fault)";
	case KVM_EXIT_FAIL_ENTRY:
		return "entry failed";
	case KVM_EXIT_INTERNAL_ERROR:
		return "KVM internal error";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_UNKNOWN:
		return "unknown";
	default:
		return "unexpected";
	}
}

/* Returns false when the vCPU must stop running the guest. */
static bool handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	const struct device_host *host = vcpu->env->host;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		vcpu->need_completion = true;
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(vcpu);
		vcpu->need_completion = true;
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
			device_request_exit(host, VM_EXIT_RESET, 0);
		} else {
			device_request_exit(host, VM_EXIT_POWEROFF, 0);
		}
		return false;
	default:
		break;
	}
	char extra[128] = "";
	if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		snprintf(extra, sizeof(extra), " (hardware reason %#llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	else if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		snprintf(extra, sizeof(extra), " (suberror %u)", run->internal.suberror);
	log_err("vCPU %d: %s exit, reason %u%s", vcpu->index, exit_reason_name(run->exit_reason),
		run->exit_reason, extra);
	vcpu_dump_regs(vcpu, stderr);
	device_request_exit(
		host, run->exit_reason == KVM_EXIT_SHUTDOWN ? VM_EXIT_CRASH : VM_EXIT_ERROR, 0);
	return false;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	vcpu->tid = gettid();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* fails only for a bad `how` */
	char name[16];
	snprintf(name, sizeof(name), "vcpu%d", vcpu->index);
	(void)pthread_setname_np(pthread_self(), name); /* for ps and audit logs only */
	int sr = sandbox_enter(vcpu->env->sandbox, SANDBOX_VCPU);
	if (sr) {
		log_err("vCPU %d: cannot enter the sandbox: %s", vcpu->index, strerror(-sr));
		device_request_exit(vcpu->env->host, VM_EXIT_ERROR, 0);
	}

	while (!sr) {
		if (atomic_load(&vcpu->pending) && !vcpu_handle_pending(vcpu))
			break;
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&vcpu->pending))
			continue;
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->need_completion = false;
				continue;
			}
			log_err("vCPU %d: KVM_RUN: %s", vcpu->index, strerror(errno));
			device_request_exit(vcpu->env->host, VM_EXIT_ERROR, 0);
			break;
		}
		vcpu->need_completion = false;
		atomic_fetch_add_explicit(&vcpu->exits, 1, memory_order_relaxed);
		if (!handle_exit(vcpu))
			break;
	}

	pthread_mutex_lock(&vcpu->lock);
	vcpu->exited = true;
	/* Requests that can no longer run: fail waiters, free the rest. */
	struct vcpu_request *req = vcpu->req_head;
	vcpu->req_head = vcpu->req_tail = NULL;
	pthread_mutex_unlock(&vcpu->lock);
	while (req) {
		struct vcpu_request *next = req->next;
		complete_request(req, -1);
		req = next;
	}
	atomic_store(&vcpu->run_state, VCPU_EXITED);
	futex_wake(&vcpu->run_state, INT_MAX);
	return NULL;
}

int vcpu_start(struct vcpu *vcpu, const cpu_set_t *affinity)
{
	pthread_attr_t attr;
	int err = pthread_attr_init(&attr);
	if (!err && affinity)
		err = pthread_attr_setaffinity_np(&attr, sizeof(*affinity), affinity);
	if (!err)
		err = pthread_create(&vcpu->thread, &attr, vcpu_thread, vcpu);
	pthread_attr_destroy(&attr); /* cannot fail on Linux */
	if (err) {
		log_err("vCPU %d: cannot start thread: %s", vcpu->index, strerror(err));
		return -err;
	}
	vcpu->started = true;
	char name[16];
	snprintf(name, sizeof(name), "vcpu%d", vcpu->index);
	/* Only a label for ps/top: a failure changes nothing. */
	(void)pthread_setname_np(vcpu->thread, name);
	return 0;
}

int vcpu_thread_last_cpu(pid_t tid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	/* Field 39 (processor); skip past the command name, which may hold spaces. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	int field = 2;
	for (p++; *p && field < 39; p++)
		if (*p == ' ')
			field++;
	return (int)strtol(p, NULL, 10);
}

bool vcpu_get_affinity(struct vcpu *vcpu, cpu_set_t *set)
{
	pid_t tid = atomic_load(&vcpu->tid);
	return tid > 0 && sched_getaffinity(tid, sizeof(*set), set) == 0;
}

static struct x86_vcpu_state state_of(const struct vcpu *vcpu)
{
	return (struct x86_vcpu_state){vcpu->fd, vcpu->index, vcpu->env->xsave_size,
				       vcpu->env->msr_list};
}

int vcpu_save_state(struct vcpu *vcpu, struct state_writer *w)
{
	const struct x86_vcpu_state v = state_of(vcpu);
	return x86_save_vcpu_state(&v, w);
}

int vcpu_restore_state(struct vcpu *vcpu, struct state_reader *r)
{
	const struct x86_vcpu_state v = state_of(vcpu);
	return x86_restore_vcpu_state(&v, r);
}
