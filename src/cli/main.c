/* kvmhost: a VMM whose VMs survive what happens to the host. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "cli/options.h"
#include "cli/terminal.h"
#include "control/client.h"
#include "control/protocol.h"
#include "control/rundir.h"
#include "control/server.h"
#include "core/vm.h"
#include "host/host_cpu.h"
#include "host/pinning.h"
#include "host/sleep.h"
#include "util/util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmhost run [--name NAME] [--cpus N] [--memory MIB]\n"
		"                   [--cpu-pin VCPU=HOSTCPU[,...]] [--vmm-cpus LIST]\n"
		"                   [--on-cpu-offline migrate|pause] [--on-host-sleep pause|ignore]\n"
		"                   [--console stdio|none|FILE] [--socket PATH]\n"
		"                   [--heartbeat-us N] [--print-every N]\n"
		"                   [--disk FILE[,ro][,id=NAME]]...\n"
		"                   [--guest-mode heartbeat|crash|wild-io|pio-bench|disk|disk-bench]\n"
		"                   [--disk-blocks N] [--disk-request-kib K] [--disk-flush-every N]\n"
		"                   [--kernel FILE [--initrd FILE] [--cmdline STR]\n"
		"                    [--kernel-decompress host|guest] [--on-reboot exit|restart]]\n"
		"       kvmhost ctl NAME status|pause|resume|quit|poweroff|regs|events [--json]\n"
		"       kvmhost ctl NAME|--all host-sleep prepare|resume\n"
		"       kvmhost list [--json]\n"
		"\n"
		"Exit status of run: 0 guest powered off or VM stopped on request, 1 error,\n"
		"2 bad usage, 3 /dev/kvm missing or not permitted, 4 name in use,\n"
		"5 a disk cannot be used (missing, a directory, read-only, locked),\n"
		"6 the kernel or initrd cannot be booted,\n"
		"10 guest crashed (triple fault), 11 unexpected exit, 12 guest reset.\n");
}

struct runtime {
	struct vm *vm;
	struct control *ctl;
	sd_event *event;
	struct host_cpu_monitor *cpus;
	struct pinning pinning;
	bool pinning_ready;
	struct host_sleep sleep;
	bool sleep_ready;
	struct console console;
};

/* Commands owned by concerns other than the core. */
static json_object *extra_command(void *opaque, int cmd, json_object *args, char *err,
				  size_t errlen)
{
	struct runtime *rt = opaque;
	if (cmd == CMD_PIN)
		return pinning_ctl(&rt->pinning, args, err, errlen);
	if (cmd == CMD_HOST_SLEEP)
		return host_sleep_ctl(&rt->sleep, args, err, errlen);
	snprintf(err, errlen, "'%s' is not available in this VM",
		 protocol_cmd_name((enum ctl_cmd)cmd));
	return NULL;
}

static void extra_status(void *opaque, json_object *status)
{
	struct runtime *rt = opaque;
	pinning_status(&rt->pinning, status);
	host_sleep_status(&rt->sleep, status);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct runtime *rt = userdata;
	(void)s;
	log_info("%s: stopping the VM", strsignal((int)si->ssi_signo));
	vm_request_exit(rt->vm, VM_EXIT_QUIT, 0);
	return 0;
}

static int on_vm_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct runtime *rt = userdata;
	(void)s;
	(void)fd;
	(void)revents;
	return sd_event_exit(rt->event, 0);
}

static int open_console(const struct run_options *o, bool *owned)
{
	*owned = false;
	switch (o->console) {
	case CONSOLE_NONE:
		return -1;
	case CONSOLE_STDIO:
		return STDOUT_FILENO;
	case CONSOLE_FILE: {
		int fd = open(o->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno - 1000; /* distinguish from "none" */
		*owned = true;
		return fd;
	}
	}
	return -1;
}

/* Every pinned host CPU must exist; one that is offline follows the
 * --on-cpu-offline policy once the VM runs. */
static int check_pins(const struct run_options *o)
{
	const char *root = host_cpu_sysfs_root();
	cpu_set_t present, online;
	if (host_cpu_read_mask(root, "present", &present) ||
	    host_cpu_read_mask(root, "online", &online)) {
		log_warn("cannot read host CPUs from %s; pins are not checked", root);
		return 0;
	}
	for (int v = 0; v <= o->max_pinned_vcpu; v++) {
		if (!o->pins[v].set)
			continue;
		for (int c = 0; c < CPU_SETSIZE; c++) {
			if (!CPU_ISSET(c, &o->pins[v].cpus))
				continue;
			if (!CPU_ISSET(c, &present)) {
				log_err("--cpu-pin: host CPU %d does not exist", c);
				return -1;
			}
			if (!CPU_ISSET(c, &online))
				log_warn("--cpu-pin: host CPU %d is offline", c);
		}
	}
	return 0;
}

static int status_for_create_error(int r)
{
	if (r == -ENODEV || r == -EACCES)
		return STATUS_NO_KVM;
	if (r == -EBADF)
		return STATUS_DISK;
	if (r == -ENOEXEC)
		return STATUS_BAD_KERNEL;
	/* Options that this host cannot honour (too many vCPUs, more RAM than it has). */
	return r == -E2BIG || r == -EFBIG ? STATUS_USAGE : STATUS_ERROR;
}

static int cmd_run(int argc, char **argv, char **full_argv)
{
	static struct run_options opts; /* large: keep it off the stack */
	char err[512];
	run_options_default(&opts);
	if (run_options_parse(&opts, argc, argv, err, sizeof(err))) {
		if (!strcmp(err, "help")) {
			usage(stdout);
			return STATUS_OK;
		}
		fprintf(stderr, "kvmhost run: %s\nTry 'kvmhost help'.\n", err);
		return STATUS_USAGE;
	}
	if (check_pins(&opts))
		return STATUS_USAGE;
	if (!opts.name[0])
		snprintf(opts.name, sizeof(opts.name), "vm-%d", (int)getpid());

	struct rundir_claim claim = {.lock_fd = -1};
	if (rundir_path(claim.dir, sizeof(claim.dir), true)) {
		log_err("no runtime directory: set XDG_RUNTIME_DIR or KVMHOST_RUNDIR");
		return STATUS_ERROR;
	}
	int r = rundir_claim(&claim, opts.name);
	if (r == -EADDRINUSE) {
		log_err("a VM named '%s' is already running", opts.name);
		return STATUS_NAME_IN_USE;
	}
	if (r) {
		log_err("cannot claim the name '%s' in %s: %s", opts.name, claim.dir, strerror(-r));
		return STATUS_ERROR;
	}

	int status = STATUS_ERROR;
	bool console_owned;
	int console_fd = open_console(&opts, &console_owned);
	if (console_fd <= -1000) {
		log_err("--console %s: %s", opts.console_path, strerror(-(console_fd + 1000)));
		rundir_release(&claim);
		return STATUS_USAGE;
	}

	/* Signals go to sd-event's signalfd; every thread inherits this mask. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	struct runtime rt = {0};
	char sock[4200];
	if ((r = vm_create(&opts, console_fd, &rt.vm))) {
		status = status_for_create_error(r);
		goto out;
	}
	if (sd_event_new(&rt.event) < 0)
		goto out;
	if (opts.socket_path[0]) {
		snprintf(sock, sizeof(sock), "%s", opts.socket_path);
	} else if (rundir_socket_path(claim.dir, opts.name, sock, sizeof(sock))) {
		log_err("runtime directory path too long");
		goto out;
	}
	if (host_cpu_monitor_new(&rt.cpus, rt.event, host_cpu_sysfs_root(), true) ||
	    pinning_init(&rt.pinning, rt.vm, rt.cpus))
		goto out;
	rt.pinning_ready = true;
	pinning_apply_initial(&rt.pinning, rt.event);
	if (control_start(&rt.ctl, rt.vm, rt.event, sock))
		goto out;
	pinning_set_control(&rt.pinning, rt.ctl);
	if (host_sleep_init(&rt.sleep, rt.vm, rt.event,
			    opts.on_host_sleep == SLEEP_IGNORE ? HOST_SLEEP_IGNORE
							       : HOST_SLEEP_PAUSE))
		goto out;
	rt.sleep_ready = true;
	host_sleep_set_control(&rt.sleep, rt.ctl);
	control_set_handler(rt.ctl, extra_command, &rt);
	control_set_status_hook(rt.ctl, extra_status, &rt);
	if (opts.socket_path[0] && (r = rundir_link_socket(&claim, opts.socket_path)))
		log_warn("cannot list this VM in %s: %s", claim.dir, strerror(-r));
	if (sd_event_add_signal(rt.event, NULL, SIGINT, on_signal, &rt) < 0 ||
	    sd_event_add_signal(rt.event, NULL, SIGTERM, on_signal, &rt) < 0 ||
	    sd_event_add_io(rt.event, NULL, rt.vm->exit_efd, EPOLLIN, on_vm_exit, &rt) < 0) {
		log_err("cannot set up the event loop");
		goto out;
	}
	/* A Linux guest reads its console: stdin goes to the UART. */
	if (opts.kernel_path[0] && opts.console == CONSOLE_STDIO &&
	    console_start(&rt.console, rt.vm, rt.event, STDIN_FILENO) < 0)
		log_warn("no console input: stdin cannot be watched");
	if (vm_start(rt.vm))
		goto out;
	if ((r = sd_event_loop(rt.event)) < 0)
		log_err("event loop: %s", strerror(-r));
	vm_stop(rt.vm);
	enum vm_exit_reason why = (enum vm_exit_reason)atomic_load(&rt.vm->exit_reason);
	status = vm_exit_status(rt.vm);
	/* A quit that raced with a guest reboot wins: stop, do not restart. */
	if (atomic_load(&rt.vm->quit_requested)) {
		why = VM_EXIT_QUIT;
		status = STATUS_OK;
	}
	if (status == STATUS_GUEST_RESET && opts.on_reboot_restart)
		; /* said below */
	else if (status != STATUS_OK)
		log_err("VM '%s': %s", opts.name, vm_exit_reason_name(why));
	else
		log_info("VM '%s': %s", opts.name, vm_exit_reason_name(why));
out:
	console_stop(&rt.console); /* the terminal back as it was, on every path */
	if (rt.sleep_ready)
		host_sleep_destroy(&rt.sleep);
	control_stop(rt.ctl);
	if (rt.pinning_ready)
		pinning_destroy(&rt.pinning);
	host_cpu_monitor_free(rt.cpus);
	vm_destroy(rt.vm);
	sd_event_unref(rt.event);
	if (console_owned)
		close(console_fd);
	rundir_release(&claim);
	if (status == STATUS_GUEST_RESET && opts.on_reboot_restart) {
		/* A reboot as a fresh start: same process, same name, same options. */
		log_info("VM '%s': the guest rebooted; restarting it", opts.name);
		execv("/proc/self/exe", full_argv);
		log_err("cannot restart: %s", strerror(errno));
		return STATUS_ERROR;
	}
	return status;
}

int main(int argc, char **argv)
{
	/* A console reader or a control peer that goes away is an error to
	 * handle where it happens, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return STATUS_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1, argv);
	if (!strcmp(cmd, "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	if (!strcmp(cmd, "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return STATUS_OK;
	}
	fprintf(stderr, "kvmhost: unknown command '%s'\n", cmd);
	usage(stderr);
	return STATUS_USAGE;
}
