/* Each thread kind's seccomp filter, entered in a forked child: the calls
 * that kind makes succeed, and calls it must never make end the child with
 * STATUS_SANDBOX and a line naming the kind and the call. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "util/exit_status.h"

static struct sandbox *sb;
static int kvm_fd = -1, file_fd = -1;

/* Runs fn in a child under `kind`; returns its exit status and what it
 * wrote to stderr in out. */
static int in_child(enum sandbox_kind kind, void (*fn)(void), char *out, size_t outlen)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		if (sandbox_enter(sb, kind))
			_exit(99);
		fn();
		_exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *noop(void *arg)
{
	return arg;
}

/* Memory, time, locks, output: every kind. */
static void common_work(void)
{
	char buf[64];
	struct timespec ts;
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p, 1 << 20) || clock_gettime(CLOCK_MONOTONIC, &ts))
		_exit(1);
	void *m = malloc(10 << 20); /* big enough for mmap */
	free(m);
	if (lseek(file_fd, 0, SEEK_SET) < 0 || read(file_fd, buf, sizeof(buf)) < 0 ||
	    write(STDERR_FILENO, "", 0) < 0)
		_exit(2);
}

static void vcpu_work(void)
{
	common_work();
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) < 0 || fdatasync(file_fd))
		_exit(3);
}

static void main_work(void)
{
	common_work();
	pthread_t t;
	int fd = open("/proc/self/status", O_RDONLY);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || s < 0 || pthread_create(&t, NULL, noop, NULL) || pthread_join(t, NULL))
		_exit(4);
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) || ioctl(kvm_fd, KVM_CHECK_EXTENSION, 0) < 0)
		_exit(5);
}

static void migration_work(void)
{
	common_work();
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		_exit(6);
}

static void net_work(void)
{
	common_work();
	struct pollfd p = {file_fd, POLLIN, 0};
	char buf[16];
	struct iovec iov = {buf, sizeof(buf)};
	if (poll(&p, 1, 0) < 0 || lseek(file_fd, 0, SEEK_SET) < 0 || readv(file_fd, &iov, 1) < 0)
		_exit(7);
	ioctl(file_fd, TUNSETOFFLOAD, 0); /* allowed; a file is not a tap (ENOTTY) */
}

static void do_execve(void)
{
	char *argv[] = {"/bin/true", NULL};
	execve("/bin/true", argv, NULL);
}
static void do_fork(void)
{
	if (fork() == 0)
		_exit(0);
}
static void do_open(void)
{
	open("/etc/hostname", O_RDONLY);
}
static void do_socket(void)
{
	socket(AF_UNIX, SOCK_STREAM, 0);
}
static void do_packet_socket(void)
{
	socket(AF_PACKET, SOCK_RAW, 0);
}
static void do_ptrace(void)
{
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}
static void do_mount(void)
{
	mount("none", "/mnt", "tmpfs", 0, NULL);
}
static void do_setuid(void)
{
	syscall(SYS_setuid, 0);
}
static void do_create_vm(void)
{
	ioctl(kvm_fd, KVM_CREATE_VM, 0);
}
static void do_create_vcpu(void)
{
	ioctl(kvm_fd, KVM_CREATE_VCPU, 0);
}
static void do_exec_memory(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void denied(enum sandbox_kind kind, void (*fn)(void), const char *call)
{
	char out[512], want[128];
	int st = in_child(kind, fn, out, sizeof(out));
	snprintf(want, sizeof(want), "the %s thread made a system call it may not: %s (",
		 sandbox_kind_name(kind), call);
	if (st != STATUS_SANDBOX || !strstr(out, want))
		fail_msg("%s on a %s thread: status %d, said '%s'", call, sandbox_kind_name(kind),
			 st, out);
}

static void allowed_calls_work(void **unused)
{
	(void)unused;
	char out[512];
	void (*work[])(void) = {main_work, vcpu_work, migration_work, net_work};
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		int st = in_child((enum sandbox_kind)k, work[k], out, sizeof(out));
		if (st)
			fail_msg("%s thread: status %d, said '%s'", sandbox_kind_name(k), st, out);
	}
}

static void vcpu_denied(void **unused)
{
	(void)unused;
	denied(SANDBOX_VCPU, do_execve, "execve");
	denied(SANDBOX_VCPU, do_fork, "clone");
	denied(SANDBOX_VCPU, do_open, "openat");
	denied(SANDBOX_VCPU, do_socket, "socket");
	denied(SANDBOX_VCPU, do_ptrace, "ptrace");
	denied(SANDBOX_VCPU, do_mount, "mount");
	denied(SANDBOX_VCPU, do_setuid, "setuid");
	denied(SANDBOX_VCPU, do_create_vm, "ioctl");
	denied(SANDBOX_VCPU, do_create_vcpu, "ioctl");
	denied(SANDBOX_VCPU, do_exec_memory, "mmap");
}

static void main_denied(void **unused)
{
	(void)unused;
	denied(SANDBOX_MAIN, do_execve, "execve");
	/* An ASan build's main thread may, for the leak check at exit. */
	if (!sandbox_allows_leak_check()) {
		denied(SANDBOX_MAIN, do_fork, "clone");
		denied(SANDBOX_MAIN, do_ptrace, "ptrace");
	}
	denied(SANDBOX_MAIN, do_packet_socket, "socket");
	denied(SANDBOX_MAIN, do_mount, "mount");
	denied(SANDBOX_MAIN, do_setuid, "setuid");
	denied(SANDBOX_MAIN, do_create_vm, "ioctl");
	denied(SANDBOX_MAIN, do_create_vcpu, "ioctl");
	denied(SANDBOX_MAIN, do_exec_memory, "mmap");
}

static void migration_denied(void **unused)
{
	(void)unused;
	denied(SANDBOX_MIGRATION, do_execve, "execve");
	denied(SANDBOX_MIGRATION, do_fork, "clone");
	denied(SANDBOX_MIGRATION, do_open, "openat");
	denied(SANDBOX_MIGRATION, do_packet_socket, "socket");
	denied(SANDBOX_MIGRATION, do_ptrace, "ptrace");
	denied(SANDBOX_MIGRATION, do_setuid, "setuid");
	denied(SANDBOX_MIGRATION, do_create_vm, "ioctl");
}

static int setup(void **unused)
{
	(void)unused;
	struct error err = {0};
	struct sandbox_config cfg = {0};
	char path[] = "/tmp/kvmhost-sandbox-XXXXXX";
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	file_fd = mkstemp(path);
	if (file_fd >= 0)
		unlink(path);
	if (kvm_fd < 0) {
		fprintf(stderr, "no /dev/kvm here: the filters' KVM ioctls cannot be tried\n");
		return -1;
	}
	if (file_fd < 0 || write(file_fd, "kvmhost", 7) != 7 || sandbox_build(&sb, &cfg, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	return 0;
}

static void net_denied(void **unused)
{
	(void)unused;
	denied(SANDBOX_NET, do_execve, "execve");
	denied(SANDBOX_NET, do_fork, "clone");
	denied(SANDBOX_NET, do_open, "openat");
	denied(SANDBOX_NET, do_socket, "socket");
	denied(SANDBOX_NET, do_create_vm, "ioctl");
	denied(SANDBOX_NET, do_exec_memory, "mmap");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(allowed_calls_work), cmocka_unit_test(vcpu_denied),
		cmocka_unit_test(main_denied),	      cmocka_unit_test(migration_denied),
		cmocka_unit_test(net_denied),
	};
	return cmocka_run_group_tests_name("sandbox", tests, setup, NULL);
}
