/* The seccomp filters (sandbox.h): an allow-list per thread kind, each
 * call with a comment saying who needs it, compiled by libseccomp once on
 * the main thread and loaded by each thread as it starts. A denied call
 * raises SIGSYS, whose handler names the thread kind and the call with
 * async-signal-safe writes and ends the process. */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "util/exit_status.h"
#include "util/util.h"

/* libseccomp's SCMP_An() macros leave datum_b to zero-initialisation. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MAX_SYSCALL 512 /* names kept for the report, x86-64 has ~460 */

struct sandbox {
	struct sock_fprog prog[SANDBOX_KINDS];
	char **names; /* MAX_SYSCALL entries, for the SIGSYS report */
};

/* What the SIGSYS handler needs, which a signal handler can only find in
 * statics: the syscall names (set once, read-only after) and the kind of
 * the thread it interrupted. */
static char *const *report_names;
static _Thread_local int thread_kind = -1;

const char *sandbox_kind_name(enum sandbox_kind kind)
{
	static const char *const names[] = {"main", "vcpu", "migration", "net"};
	return kind < SANDBOX_KINDS ? names[kind] : "unknown";
}

/* Every thread: memory, time, locks, signals, output and its own end. */
static const int common_calls[] = {
	SCMP_SYS(read),		 SCMP_SYS(write),
	SCMP_SYS(readv),	 SCMP_SYS(writev), /* fds it holds */
	SCMP_SYS(close),	 SCMP_SYS(futex),  /* locks, requests, parking */
	SCMP_SYS(brk),		 SCMP_SYS(munmap),
	SCMP_SYS(mremap),	 SCMP_SYS(madvise), /* malloc */
	SCMP_SYS(rt_sigreturn),	 SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(sigaltstack),	 SCMP_SYS(restart_syscall),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep), /* vDSO fallback */
	SCMP_SYS(gettid),	 SCMP_SYS(getpid),
	SCMP_SYS(sched_yield),	 SCMP_SYS(getrandom),
	SCMP_SYS(fstat),	 SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), /* stdio on stderr */
	SCMP_SYS(exit),		 SCMP_SYS(exit_group),
	SCMP_SYS(tgkill), /* ends, abort() */
};

/* A vCPU: KVM_RUN and the devices it serves - disks (preadv/pwritev,
 * fdatasync), the console (write), the VM's exit eventfd (write). */
static const int vcpu_calls[] = {
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv),    SCMP_SYS(pwritev),
	SCMP_SYS(preadv2), SCMP_SYS(pwritev2), SCMP_SYS(fdatasync), SCMP_SYS(fsync),
};

static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,
	/* Saves and `regs` read a vCPU on its own thread. */
	KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_FPU, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_XCRS,
	KVM_GET_MSRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_GET_MP_STATE,
	KVM_GET_CPUID2, KVM_CHECK_EXTENSION,
	KVM_KVMCLOCK_CTRL,			       /* told it was stopped, as it unparks */
	KVM_IRQ_LINE,				       /* devices raise their interrupts */
	KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_MP_STATE, /* a reset re-enters the guest */
};

/* The main thread, once set up: its event loop (control socket, uevents,
 * logind on D-Bus, signals, timers), host events (pinning, cpuset repair
 * through sysfs and cgroup files), saves (files anywhere the user names),
 * and starting a migration's thread. */
static const int main_calls[] = {
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(ppoll),
	SCMP_SYS(poll),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(eventfd2),
	SCMP_SYS(signalfd4), /* sd-event */
	SCMP_SYS(accept4),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendmsg),
	SCMP_SYS(recvfrom),
	SCMP_SYS(sendto),
	SCMP_SYS(connect),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	SCMP_SYS(shutdown), /* control, sd-bus */
	SCMP_SYS(openat),
	SCMP_SYS(unlink),
	SCMP_SYS(unlinkat),
	SCMP_SYS(rename),
	SCMP_SYS(renameat),
	SCMP_SYS(renameat2),
	SCMP_SYS(fsync),
	SCMP_SYS(fdatasync),
	SCMP_SYS(ftruncate),
	SCMP_SYS(pread64),
	SCMP_SYS(pwrite64),
	SCMP_SYS(preadv),
	SCMP_SYS(pwritev),
	SCMP_SYS(mkdir),
	SCMP_SYS(mkdirat),
	SCMP_SYS(fchmod),
	SCMP_SYS(fcntl),
	SCMP_SYS(flock),
	SCMP_SYS(dup),
	SCMP_SYS(dup3),
	SCMP_SYS(statx),
	SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2),
	SCMP_SYS(access),
	SCMP_SYS(readlinkat),
	SCMP_SYS(getdents64),
	SCMP_SYS(umask),
	SCMP_SYS(statfs),
	SCMP_SYS(fstatfs), /* saves */
	SCMP_SYS(sched_setaffinity),
	SCMP_SYS(sched_getaffinity), /* pinning */
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(getgid),
	SCMP_SYS(getegid),
	SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),
	SCMP_SYS(prctl),	/* a new thread's start */
	SCMP_SYS(rt_sigaction), /* glibc's first pthread_create, sd-event's signals */
	SCMP_SYS(uname),
	SCMP_SYS(prlimit64),
	SCMP_SYS(getrlimit),
};

static const unsigned long main_ioctls[] = {
	KVM_GET_CLOCK,
	KVM_SET_CLOCK, /* wake: the guest's clock moves on */
	KVM_GET_IRQCHIP,
	KVM_GET_PIT2,
	KVM_CHECK_EXTENSION, /* saves */
	KVM_IRQ_LINE,	     /* the power button */
	KVM_SET_USER_MEMORY_REGION,
	KVM_GET_DIRTY_LOG, /* migration: its thread inherits these */
	FIONREAD,
	TCGETS,
	TCSETS,
	TCSETSW,
	TCSETSF,
	TIOCGWINSZ, /* the console */
};

/* A migration's copy thread: the connection, dirty logs, guest memory. */
static const int migration_calls[] = {
	SCMP_SYS(connect),	   SCMP_SYS(sendmsg),  SCMP_SYS(sendto),  SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg),	   SCMP_SYS(poll),     SCMP_SYS(ppoll),	  SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),	   SCMP_SYS(shutdown), SCMP_SYS(pread64), /* /proc/self/pagemap,
									     opened for it */
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), /* glibc, as the thread starts */
};

static const unsigned long migration_ioctls[] = {KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION};

/* A network device's receive thread: the tap and its eventfds, guest
 * memory, and the device's interrupt; it also sends what a transmit notify
 * left (writev into the tap, in the base set). */
static const int net_calls[] = {SCMP_SYS(poll), SCMP_SYS(ppoll)};

static const unsigned long net_ioctls[] = {
	KVM_IRQ_LINE,  /* the receive queue's interrupt */
	TUNSETOFFLOAD, /* the offloads the driver took */
};

/* An ASan build's leak check runs at exit on the main thread: a tracer task
 * (clone without CLONE_THREAD) that ptrace-stops every thread and reads
 * /proc with raw open/getdents. Allowed in those builds only, where the
 * tests run; a release build's main thread cannot do any of it. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifdef SANITIZER_BUILD
static const int sanitizer_calls[] = {SCMP_SYS(clone),	 SCMP_SYS(ptrace), SCMP_SYS(wait4),
				      SCMP_SYS(getppid), SCMP_SYS(open),   SCMP_SYS(getdents)};
#endif

bool sandbox_allows_leak_check(void)
{
#ifdef SANITIZER_BUILD
	return true;
#else
	return false;
#endif
}

static int allow_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
		if (r)
			return r;
	}
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)(unsigned)req[i]));
		if (r)
			return r;
	}
	return 0;
}

/* --user on a running VM: glibc has every thread change its ids. */
static int allow_id_changes(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setresuid), 3,
				 SCMP_A0(SCMP_CMP_EQ, cfg->uid), SCMP_A1(SCMP_CMP_EQ, cfg->uid),
				 SCMP_A2(SCMP_CMP_EQ, cfg->uid));
	if (r)
		return r;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setresgid), 3,
			     SCMP_A0(SCMP_CMP_EQ, cfg->gid), SCMP_A1(SCMP_CMP_EQ, cfg->gid),
			     SCMP_A2(SCMP_CMP_EQ, cfg->gid));
	if (r)
		return r;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setgroups), 0);
}

/* Memory may be mapped and protected, never executable; threads only
 * (clone3's flags cannot be seen: ENOSYS makes glibc use clone); sockets of
 * the families we speak. */
static int allow_conditional(scmp_filter_ctx ctx, enum sandbox_kind kind,
			     const struct sandbox_config *cfg)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				 SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r)
		return r;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r)
		return r;
	/* (An ASan build's main thread has clone whole: sanitizer_calls.) */
	if (kind == SANDBOX_MAIN && !sandbox_allows_leak_check()) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
		if (r)
			return r;
	}
	if (kind == SANDBOX_MAIN) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
		if (r)
			return r;
	}
	static const int families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
	bool sockets = kind == SANDBOX_MAIN || kind == SANDBOX_MIGRATION;
	for (size_t i = 0; sockets && i < ARRAY_SIZE(families); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
		if (r)
			return r;
	}
	return cfg->change_ids ? allow_id_changes(ctx, cfg) : 0;
}

static int add_rules(scmp_filter_ctx ctx, enum sandbox_kind kind, const struct sandbox_config *cfg)
{
	int r = allow_all(ctx, common_calls, ARRAY_SIZE(common_calls));
	if (r)
		return r;
	switch (kind) {
	case SANDBOX_VCPU:
		r = allow_all(ctx, vcpu_calls, ARRAY_SIZE(vcpu_calls));
		if (r)
			return r;
		r = allow_ioctls(ctx, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
		break;
	case SANDBOX_MAIN:
		r = allow_all(ctx, main_calls, ARRAY_SIZE(main_calls));
		if (r)
			return r;
		r = allow_ioctls(ctx, main_ioctls, ARRAY_SIZE(main_ioctls));
#ifdef SANITIZER_BUILD
		if (r)
			return r;
		r = allow_all(ctx, sanitizer_calls, ARRAY_SIZE(sanitizer_calls));
#endif
		break;
	case SANDBOX_NET:
		r = allow_all(ctx, net_calls, ARRAY_SIZE(net_calls));
		if (r)
			return r;
		r = allow_ioctls(ctx, net_ioctls, ARRAY_SIZE(net_ioctls));
		break;
	default:
		r = allow_all(ctx, migration_calls, ARRAY_SIZE(migration_calls));
		if (r)
			return r;
		r = allow_ioctls(ctx, migration_ioctls, ARRAY_SIZE(migration_ioctls));
		break;
	}
	if (r)
		return r;
	return allow_conditional(ctx, kind, cfg);
}

/* libseccomp writes the filter to an fd: it goes through a memfd into the
 * program every thread of that kind loads. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	int fd = memfd_create("kvmhost-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t len;
	int r = seccomp_export_bpf(ctx, fd);
	if (r)
		goto out_close;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % sizeof(struct sock_filter)) {
		r = -EINVAL;
		goto out_close;
	}
	prog->filter = malloc((size_t)len);
	prog->len = (unsigned short)(len / sizeof(struct sock_filter));
	r = prog->filter ? read_full_at(fd, prog->filter, (uint64_t)len, 0) : -ENOMEM;
out_close:
	close(fd);
	return r;
}

static int build_kind(struct sandbox *sb, enum sandbox_kind kind, const struct sandbox_config *cfg)
{
	scmp_filter_ctx ctx = seccomp_init(cfg->log_only ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	int r = add_rules(ctx, kind, cfg);
	if (r)
		goto out_release;
	r = export_bpf(ctx, &sb->prog[kind]);
out_release:
	seccomp_release(ctx);
	return r;
}

/* Async-signal-safe: appends s, or n in decimal. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long n)
{
	char digits[24];
	int k = 0;
	unsigned long v = n < 0 ? 0 : (unsigned long)n;
	do
		digits[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < (int)sizeof(digits));
	while (k && at + 1 < cap)
		buf[at++] = digits[--k];
	return at;
}

/* A denied call: one line naming the thread kind and the call, then the
 * whole process ends - nothing after it runs on this thread, so no request
 * it was serving is acknowledged. */
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	(void)sig, (void)ctx;
	char msg[256];
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < MAX_SYSCALL && report_names && report_names[nr]
				   ? report_names[nr]
				   : "unknown";
	size_t n = put_str(msg, 0, sizeof(msg), "kvmhost: error: sandbox: the ");
	n = put_str(msg, n, sizeof(msg),
		    thread_kind >= 0 ? sandbox_kind_name((enum sandbox_kind)thread_kind) : "main");
	n = put_str(msg, n, sizeof(msg), " thread made a system call it may not: ");
	n = put_str(msg, n, sizeof(msg), name);
	n = put_str(msg, n, sizeof(msg), " (");
	n = put_num(msg, n, sizeof(msg), nr);
	n = put_str(msg, n, sizeof(msg), "); the VM is stopped\n");
	(void)!write(STDERR_FILENO, msg, n);
	syscall(SYS_exit_group, STATUS_SANDBOX);
}

static int set_handler(void)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

static int install_handler(struct sandbox *sb)
{
	sb->names = calloc(MAX_SYSCALL, sizeof(*sb->names));
	if (!sb->names)
		return -ENOMEM;
	for (int i = 0; i < MAX_SYSCALL; i++)
		sb->names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
	report_names = sb->names;
	return set_handler();
}

int sandbox_build(struct sandbox **out, const struct sandbox_config *cfg, struct error *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	*out = NULL;
	if (!sb)
		return error_setf(err, "sandbox: out of memory");
	int r;
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		r = build_kind(sb, (enum sandbox_kind)k, cfg);
		if (r)
			goto err_free_sandbox;
	}
	r = install_handler(sb);
	if (r)
		goto err_free_sandbox;
	/* Threads made from here on inherit it; a filter needs it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		goto err_free_sandbox;
	}
	*out = sb;
	return 0;

err_free_sandbox:
	sandbox_free(sb);
	return error_set_errno(err, -r, "sandbox: cannot build the seccomp filters");
}

void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	for (int k = 0; k < SANDBOX_KINDS; k++)
		free(sb->prog[k].filter);
	/* The names stay while a handler may still read them. */
	if (sb->names && report_names != sb->names) {
		for (int i = 0; i < MAX_SYSCALL; i++)
			free(sb->names[i]);
		free(sb->names);
	}
	free(sb);
}

int sandbox_enter(const struct sandbox *sb, enum sandbox_kind kind)
{
	if (!sb)
		return 0;
	thread_kind = (int)kind;
	/* Again: something may have taken SIGSYS over since the build (a test
	 * framework does), and the report is this handler's. */
	int r = set_handler();
	if (r)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sb->prog[kind]) < 0)
		return -errno;
	return 0;
}
