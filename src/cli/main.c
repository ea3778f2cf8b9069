/* kvmhost: a VMM whose VMs survive what happens to the host. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "builtin_guest/guest_blob.h"
#include "builtin_guest/testdev.h"
#include "cli/options.h"
#include "cli/terminal.h"
#include "cli/usage.h"
#include "control/client.h"
#include "control/rundir.h"
#include "control/server.h"
#include "control/vm_commands.h"
#include "core/vm.h"
#include "host/battery.h"
#include "host/host_cpu.h"
#include "host/pinning.h"
#include "host/shutdown.h"
#include "host/sleep.h"
#include "migration/migration.h"
#include "sandbox/sandbox.h"
#include "snapshot/snapshot.h"
#include "util/event.h"
#include "util/exit_status.h"
#include "util/util.h"

/* Everything one `run` sets up around the VM, torn down in reverse. */
struct runtime {
	struct run_options *opts;
	struct rundir_claim claim;
	int console_fd;
	bool console_owned;
	struct vm *vm;
	sd_event *event;
	struct host_cpu_monitor *cpus;
	struct pinning pinning;
	bool pinning_ready;
	struct control *ctl;
	struct vm_commands vm_commands;
	/* The built-in guest's test device: the VM attaches it when it boots
	 * the built-in guest (vm_config.flat_device), not a Linux one. */
	struct testdev testdev;
	struct extra_device testdev_extra;
	struct host_sleep sleep;
	bool sleep_ready;
	bool named; /* --name given: only then is a managed save continued */
	char save_path[KVMHOST_PATH_MAX];
	enum shutdown_policy shutdown_policy;
	bool managed_restore;
	struct host_shutdown shutdown;
	bool shutdown_ready;
	enum battery_policy battery_policy;
	struct battery_watch battery;
	bool battery_ready;
	struct terminal terminal;
	bool restoring;
	struct snapshot snap;
	struct migration *migration;
	struct sandbox *sandbox;
	uid_t uid; /* --user's */
	gid_t gid;
};

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
	(void)s, (void)fd, (void)revents;
	return sd_event_exit(rt->event, 0);
}

/* The console's fd (-1 for none); -errno if the file cannot be opened. */
static int open_console(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	rt->console_fd = -1;
	if (o->console == CONSOLE_STDIO)
		rt->console_fd = STDOUT_FILENO;
	if (o->console != CONSOLE_FILE)
		return 0;
	int fd = open(o->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = errno;
		log_err("--console %s: %s", o->console_path, strerror(err));
		return -err;
	}
	rt->console_fd = fd;
	rt->console_owned = true;
	return 0;
}

/* Each CPU of `set` must exist; one that is offline gets a warning (the
 * policies deal with it once the VM runs). */
static int check_cpus(const char *what, const cpu_set_t *set, const cpu_set_t *present,
		      const cpu_set_t *online)
{
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		if (!CPU_ISSET(c, present)) {
			log_err("%s: host CPU %d does not exist", what, c);
			return -1;
		}
		if (!CPU_ISSET(c, online))
			log_warn("%s: host CPU %d is offline", what, c);
	}
	return 0;
}

/* Every pinned host CPU, and every --vmm-cpus one, must exist. */
static int check_pins(const struct run_options *o)
{
	const char *root = host_cpu_sysfs_root();
	cpu_set_t present, online;
	if (host_cpu_read_mask(root, "present", &present) ||
	    host_cpu_read_mask(root, "online", &online)) {
		log_warn("cannot read host CPUs from %s; pins are not checked", root);
		return 0;
	}
	for (int v = 0; v < o->pins.nr; v++)
		if (check_cpus("--cpu-pin", &o->pins.sets[v], &present, &online))
			return -1;
	return o->has_vmm_cpus ? check_cpus("--vmm-cpus", &o->vmm_cpus, &present, &online) : 0;
}

static enum kvmhost_status claim_name(struct runtime *rt)
{
	const char *name = rt->opts->name;
	if (rundir_path(rt->claim.dir, sizeof(rt->claim.dir), true)) {
		log_err("no runtime directory: set XDG_RUNTIME_DIR or KVMHOST_RUNDIR");
		return STATUS_ERROR;
	}
	int r = rundir_claim(&rt->claim, name);
	if (r == -EADDRINUSE) {
		log_err("a VM named '%s' is already running", name);
		return STATUS_NAME_IN_USE;
	}
	if (r) {
		log_err("cannot claim the name '%s' in %s: %s", name, rt->claim.dir, strerror(-r));
		return STATUS_ERROR;
	}
	return STATUS_OK;
}

/* The control socket and every module's commands on it. */
static int start_control(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	char sock[KVMHOST_PATH_MAX];
	if (o->socket_path) {
		snprintf(sock, sizeof(sock), "%s", o->socket_path);
	} else if (rundir_socket_path(rt->claim.dir, o->name, sock, sizeof(sock))) {
		log_err("runtime directory path too long");
		return -ENAMETOOLONG;
	}
	int r = control_start(&rt->ctl, rt->event, sock);
	if (r)
		return r;
	r = vm_commands_register(&rt->vm_commands, rt->ctl, rt->vm,
				 vm_extra_device(rt->vm) ? &rt->testdev : NULL);
	if (r)
		return r;
	r = pinning_attach_control(&rt->pinning, rt->ctl);
	if (r)
		return r;
	r = host_sleep_attach_control(&rt->sleep, rt->ctl);
	if (r)
		return r;
	if (!o->socket_path)
		return 0;
	r = rundir_link_socket(&rt->claim, o->socket_path);
	if (r)
		log_warn("cannot list this VM in %s: %s", rt->claim.dir, strerror(-r));
	return 0;
}

/* SIGINT and SIGTERM stop the VM. sd-event reads every pending signal at
 * once and then dispatches one source at a time: at a higher priority than
 * the VM's exit, a signal read together with a guest reboot is handled
 * before the loop ends, so a quit racing a reboot is never lost. */
static int add_signal(struct runtime *rt, int signo)
{
	sd_event_source *s = NULL;
	int r = sd_event_add_signal(rt->event, &s, signo, on_signal, rt);
	if (r < 0)
		goto out_unref;
	r = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IMPORTANT);
	if (r < 0)
		goto out_unref;
	r = sd_event_source_set_floating(s, true); /* the loop owns it */
out_unref:
	if (s)
		sd_event_source_unref(s);
	return r;
}

static int add_signals(struct runtime *rt)
{
	static const int signals[] = {SIGINT, SIGTERM};
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
		int r = add_signal(rt, signals[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void on_low_battery(void *opaque, const char *why)
{
	struct runtime *rt = opaque;
	log_warn("%s: saving VM '%s' before the host runs out of power", why, rt->opts->name);
	host_shutdown_save(&rt->shutdown, "low battery");
}

/* Where the vCPUs run: hotplug and pinning, which the start needs. */
static int start_placement(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	struct pinning_config pc = {&o->pins, o->on_cpu_offline, o->has_vmm_cpus, o->vmm_cpus};
	int r = sd_event_new(&rt->event);
	if (r < 0)
		return r;
	r = host_cpu_monitor_new(&rt->cpus, rt->event, host_cpu_sysfs_root(), true);
	if (r)
		return r;
	r = pinning_init(&rt->pinning, rt->vm, rt->cpus, rt->event, &pc);
	if (r)
		return r;
	rt->pinning_ready = true;
	return 0;
}

/* The rest of the host side: sleep, shutdown, battery, control, signals.
 * Set up once the vCPUs run: a migrated guest's downtime does not wait on
 * D-Bus round trips, and nothing here is needed before its first exit. */
static int start_host_side(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	int r = host_sleep_init(&rt->sleep, rt->vm, rt->event, o->on_host_sleep);
	if (r)
		return r;
	rt->sleep_ready = true;
	r = host_shutdown_init(&rt->shutdown, rt->vm, rt->event, rt->shutdown_policy,
			       rt->save_path);
	if (r)
		return r;
	rt->shutdown_ready = true;
	r = battery_watch_init(&rt->battery, rt->event, rt->battery_policy, on_low_battery, rt);
	if (r)
		return r;
	rt->battery_ready = true;
	r = start_control(rt);
	if (r)
		return r;
	r = snapshot_attach_control(rt->ctl, rt->vm);
	if (r)
		return r;
	r = migration_init(&rt->migration, rt->vm, rt->event, rt->ctl);
	if (r)
		return r;
	r = host_shutdown_attach_control(&rt->shutdown, rt->ctl);
	if (r)
		return r;
	r = battery_watch_attach_control(&rt->battery, rt->ctl);
	if (r)
		return r;
	r = add_signals(rt);
	if (r < 0)
		goto err_loop;
	r = sd_event_add_io(rt->event, NULL, rt->vm->exit_efd, EPOLLIN, on_vm_exit, rt);
	if (r < 0)
		goto err_loop;
	/* A Linux guest reads its console: stdin goes to the UART. */
	if (o->vm.linux_guest && o->console == CONSOLE_STDIO &&
	    terminal_start(&rt->terminal, rt->vm, rt->event, STDIN_FILENO) < 0)
		log_warn("no console input: stdin cannot be watched");
	return 0;

err_loop:
	log_err("cannot set up the event loop: %s", strerror(-r));
	return r;
}

/* Runs the VM until it ends; returns the status its end calls for. */
static enum kvmhost_status run_vm(struct runtime *rt)
{
	int r;
	/* For a Type=notify service: the socket listens and the guest runs. No
	 * NOTIFY_SOCKET, nothing sent; a failure to tell is not the VM's. */
	/* Running again: the managed save is spent, never restored twice. */
	if (rt->managed_restore && unlink(rt->save_path) < 0)
		log_warn("cannot remove the managed save %s: %s", rt->save_path, strerror(errno));
	(void)sd_notifyf(false, "READY=1\nMAINPID=%d\nSTATUS=VM %s running", (int)getpid(),
			 rt->opts->name);
	r = sd_event_loop(rt->event);
	if (r < 0)
		log_err("event loop: %s", strerror(-r));
	(void)sd_notifyf(false, "STOPPING=1\nSTATUS=VM %s stopping", rt->opts->name);
	vm_stop(rt->vm);
	enum vm_exit_reason why = (enum vm_exit_reason)atomic_load(&rt->vm->exit_reason);
	enum kvmhost_status status = vm_exit_status(rt->vm);
	/* A quit that raced with a guest reboot wins: stop, do not restart. */
	if (atomic_load(&rt->vm->quit_requested)) {
		why = VM_EXIT_QUIT;
		status = STATUS_OK;
	}
	if (status == STATUS_GUEST_RESET && rt->opts->on_reboot_restart)
		return status; /* said by the caller as it restarts */
	if (status != STATUS_OK)
		log_err("VM '%s': %s", rt->opts->name, vm_exit_reason_name(why));
	else
		log_info("VM '%s': %s", rt->opts->name, vm_exit_reason_name(why));
	return status;
}

static void teardown(struct runtime *rt)
{
	terminal_stop(&rt->terminal); /* the terminal back as it was, on every path */
	migration_destroy(rt->migration);
	control_stop(rt->ctl);
	if (rt->battery_ready)
		battery_watch_destroy(&rt->battery);
	if (rt->shutdown_ready)
		host_shutdown_destroy(&rt->shutdown);
	if (rt->sleep_ready)
		host_sleep_destroy(&rt->sleep);
	if (rt->pinning_ready)
		pinning_destroy(&rt->pinning);
	host_cpu_monitor_free(rt->cpus);
	vm_destroy(rt->vm);
	sd_event_unref(rt->event);
	if (rt->console_owned)
		close(rt->console_fd);
	if (rt->restoring)
		snapshot_close(&rt->snap);
	rundir_release(&rt->claim);
	sandbox_free(rt->sandbox);
	rt->sandbox = NULL;
}

/* What the host going down, or its battery running out, does to this VM:
 * save by default, where there is a state directory to save into. */
static void choose_host_policies(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	char dir[PATH_MAX];
	rt->shutdown_policy = o->shutdown_policy_given ? o->on_host_shutdown : SHUTDOWN_SAVE;
	rt->battery_policy = o->battery_policy_given ? o->on_low_battery : BATTERY_SAVE;
	if (rt->shutdown_policy != SHUTDOWN_SAVE && rt->battery_policy != BATTERY_SAVE)
		return;
	bool asked = (o->shutdown_policy_given && rt->shutdown_policy == SHUTDOWN_SAVE) ||
		     (o->battery_policy_given && rt->battery_policy == BATTERY_SAVE);
	int r = statedir_path(dir, sizeof(dir), true);
	if (r)
		goto err_no_statedir;
	r = statedir_save_path(o->name, rt->save_path, sizeof(rt->save_path));
	if (r)
		goto err_no_statedir;
	return;

err_no_statedir:
	log_msg(asked ? "warning" : "info",
		"no state directory (%s): VM '%s' is not saved when the host goes down or its "
		"battery runs out",
		strerror(-r), o->name);
	rt->save_path[0] = '\0';
	if (rt->shutdown_policy == SHUTDOWN_SAVE)
		rt->shutdown_policy = SHUTDOWN_IGNORE;
	rt->battery_policy = BATTERY_IGNORE;
}

/* NAME's managed save: continued, as libvirt does, unless --discard-saved
 * (removed) or --restore (kept for later). What a save that never finished
 * left is removed, never used. */
static int find_managed_save(struct runtime *rt)
{
	struct run_options *o = rt->opts;
	char path[KVMHOST_PATH_MAX], tmp[KVMHOST_PATH_MAX + sizeof(".tmp")];
	if (!rt->named || o->has_incoming || statedir_save_path(o->name, path, sizeof(path)))
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!unlink(tmp))
		log_warn("VM '%s': its last managed save did not complete (removed %s)", o->name,
			 tmp);
	if (access(path, F_OK) < 0)
		return 0;
	if (o->restore_path) {
		log_warn("VM '%s': --restore given; its managed save %s is kept", o->name, path);
		return 0;
	}
	if (o->discard_saved) {
		if (unlink(path) < 0) {
			log_err("--discard-saved: %s: %s", path, strerror(errno));
			return -1;
		}
		log_info("VM '%s': managed save discarded; booting afresh", o->name);
		return 0;
	}
	snprintf(rt->save_path, sizeof(rt->save_path), "%s", path);
	run_options_forget_guest(o); /* the saved guest's settings win */
	o->restore_path = rt->save_path;
	rt->managed_restore = true;
	log_info("VM '%s': continuing from its managed save %s", o->name, path);
	return 0;
}

/* A snapshot that cannot be used, said as what the user gave: --restore
 * FILE, or the managed save that `run --name NAME` found. `err` names the
 * file itself when err_has_path. */
static enum kvmhost_status bad_snapshot(const struct runtime *rt, const char *err,
					bool err_has_path)
{
	const char *name = rt->opts->name, *path = err_has_path ? "" : rt->opts->restore_path;
	const char *sep = err_has_path ? "" : ": ";
	if (rt->managed_restore)
		log_err("VM '%s': its managed save cannot be used: %s%s%s ('kvmhost discard %s' "
			"or --discard-saved boots afresh)",
			name, path, sep, err, name);
	else if (err_has_path)
		log_err("--restore: %s", err);
	else
		log_err("--restore %s: %s", path, err);
	return STATUS_BAD_SNAPSHOT;
}

#define GUEST_BLOB_MAX (1u << 20)

/* --guest-blob: the bytes the built-in guest's replay mode reads. */
static int load_guest_blob(struct run_options *o)
{
	int fd = open(o->guest_blob_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	uint8_t *buf = NULL;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > GUEST_BLOB_MAX || !(buf = malloc(st.st_size ? st.st_size : 1)) ||
	    read_full_at(fd, buf, (uint64_t)st.st_size, 0)) {
		log_err("--guest-blob %s: %s", o->guest_blob_path,
			fd < 0 ? strerror(errno) : "not a regular file of at most 1 MiB");
		free(buf);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	o->guest_blob = buf;
	o->guest_blob_len = (uint32_t)st.st_size;
	return 0;
}

/* The built-in guest, for a VM without a kernel (or, restoring or migrating
 * in, one that turns out to be the built-in guest): its image and its test
 * device. A restored device takes the saved workload instead of this one. */
static void offer_builtin_guest(struct runtime *rt)
{
	struct run_options *o = rt->opts;
	struct testdev_config cfg = o->guest;
	cfg.nr_disks = (uint32_t)o->vm.nr_disks;
	cfg.nr_nets = (uint32_t)o->vm.nr_nets;
	testdev_configure(&rt->testdev, &cfg, o->guest_blob, o->guest_blob_len);
	rt->testdev_extra = testdev_extra(&rt->testdev);
	o->vm.flat_image = (struct x86_flat_image){kvmhost_guest_blob, kvmhost_guest_blob_size,
						   builtin_guest_footprint()};
	o->vm.flat_device = &rt->testdev_extra;
}

/* --incoming: the VM comes from a migration; SIGINT or SIGTERM (blocked,
 * so read through a signalfd) stops the wait. */
static enum kvmhost_status receive_vm(struct runtime *rt)
{
	struct incoming in;
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	int sfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return STATUS_ERROR;
	}
	enum kvmhost_status status = migration_incoming(&rt->opts->incoming, sfd, &rt->opts->vm,
							rt->console_fd, &rt->vm, &in);
	close(sfd);
	if (status == STATUS_OK)
		log_info("VM '%s' migrated in from %s (%llu bytes, %.1f ms)", rt->opts->name,
			 rt->opts->incoming.text, (unsigned long long)in.bytes, in.ms);
	return status;
}

/* --user: a name or a uid, looked up while /etc/passwd can be read. */
static int find_user(struct runtime *rt)
{
	const char *u = rt->opts->user;
	uint64_t id;
	struct passwd *pw = getpwnam(u);
	if (!pw && !parse_u64(u, &id) && id < 0xffffffffu)
		pw = getpwuid((uid_t)id);
	if (!pw) {
		log_err("--user %s: no such user", u);
		return -1;
	}
	if (geteuid() != 0) {
		log_err("--user %s: only root can change to another user", u);
		return -1;
	}
	rt->uid = pw->pw_uid;
	rt->gid = pw->pw_gid;
	return 0;
}

/* The filters every thread will enter; vCPUs as they start. */
static enum kvmhost_status build_sandbox(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	struct error err = {0};
	if (o->user && find_user(rt))
		return STATUS_USAGE;
	if (o->sandbox_off) {
		log_warn("--sandbox off: NO seccomp filter on any thread; a guest that finds a bug "
			 "in kvmhost gets every system call this process may make");
		return STATUS_OK;
	}
	struct sandbox_config sc = {.log_only = getenv("KVMHOST_SANDBOX_LOG") != NULL,
				    .change_ids = o->user != NULL,
				    .uid = rt->uid,
				    .gid = rt->gid};
	if (sandbox_build(&rt->sandbox, &sc, &err)) {
		log_err("%s", err.msg);
		return error_status(&err, STATUS_ERROR);
	}
	vm_set_sandbox(rt->vm, rt->sandbox);
	return STATUS_OK;
}

/* --user, once everything that needs root is open: the control socket goes
 * to the user (root may still connect), then groups, gid, uid - for every
 * thread, as glibc does it; with no_new_privs set and uid 0 gone, no
 * capability is left. */
static int drop_privileges(struct runtime *rt)
{
	const struct run_options *o = rt->opts;
	char sock[KVMHOST_PATH_MAX];
	if (o->socket_path)
		snprintf(sock, sizeof(sock), "%s", o->socket_path);
	else if (rundir_socket_path(rt->claim.dir, o->name, sock, sizeof(sock)))
		return -ENAMETOOLONG;
	if (chown(sock, rt->uid, rt->gid) < 0 || initgroups(o->user, rt->gid) < 0 ||
	    setresgid(rt->gid, rt->gid, rt->gid) < 0 || setresuid(rt->uid, rt->uid, rt->uid) < 0) {
		int e = errno;
		log_err("--user %s: %s", o->user, strerror(e));
		return -e;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	log_info("VM '%s' runs as %s (uid %u, gid %u)", o->name, o->user, (unsigned)rt->uid,
		 (unsigned)rt->gid);
	return 0;
}

/* Not root: what is off, and why, said once at start. */
static void note_unprivileged(const struct runtime *rt)
{
	cpu_set_t allowed;
	char list[512] = "?";
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		format_cpu_list(&allowed, list, sizeof(list));
	log_info("VM '%s' runs as uid %u: cgroup v1 cpuset repair is off (only root may write "
		 "cpuset files), and vCPUs are pinned and re-pinned only within this process's "
		 "allowed CPUs (%s)",
		 rt->opts->name, (unsigned)geteuid(), list);
}

/* From the vCPUs' placement to the main thread in its sandbox. */
static int start_running(struct runtime *rt)
{
	int r = start_placement(rt);
	if (r)
		return r;
	r = vm_start(rt->vm, pinning_start_affinity, &rt->pinning);
	if (r) {
		log_err("cannot start the vCPUs: %s", strerror(-r));
		return r;
	}
	/* Back from a file or another host: its neighbours learn where it is. */
	if (rt->restoring || rt->opts->has_incoming)
		vm_announce(rt->vm);
	r = start_host_side(rt);
	if (r)
		return r;
	if (rt->opts->user) {
		r = drop_privileges(rt);
		if (r)
			return r;
	}
	if (geteuid() != 0)
		note_unprivileged(rt);
	r = sandbox_enter(rt->sandbox, SANDBOX_MAIN);
	if (r)
		log_err("cannot enter the sandbox: %s", strerror(-r));
	return r;
}

/* Name, console, VM, host side; then the VM runs until it ends. */
static enum kvmhost_status run(struct runtime *rt)
{
	struct error err = {0};
	if (find_managed_save(rt))
		return STATUS_ERROR;
	choose_host_policies(rt);
	/* A snapshot is checked whole before anything is claimed or built. */
	if (rt->opts->restore_path) {
		if (snapshot_open(&rt->snap, rt->opts->restore_path, &err))
			return bad_snapshot(rt, err.msg, true);
		rt->restoring = true;
	}
	enum kvmhost_status status = claim_name(rt);
	if (status != STATUS_OK)
		return status;
	if (open_console(rt))
		return STATUS_USAGE;
	/* Signals go to sd-event's signalfd; every thread inherits this mask. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* fails only for a bad `how` */
	if (rt->restoring && snapshot_config(&rt->snap, &rt->opts->vm, &err))
		return bad_snapshot(rt, err.msg, false);
	if (rt->opts->guest_blob_path && load_guest_blob(rt->opts))
		return STATUS_USAGE;
	offer_builtin_guest(rt);
	if (rt->opts->has_incoming) {
		status = receive_vm(rt);
		if (status != STATUS_OK)
			return status;
	} else if (vm_create(&rt->opts->vm, rt->console_fd, &rt->vm, &err)) {
		log_err("%s", err.msg);
		return error_status(&err, STATUS_ERROR);
	}
	if (rt->restoring) {
		if (snapshot_restore(&rt->snap, rt->vm, &err))
			return bad_snapshot(rt, err.msg, false);
		log_info("VM '%s' restored from %s", rt->opts->name, rt->opts->restore_path);
	}
	status = build_sandbox(rt);
	if (status != STATUS_OK)
		return status;
	int r = start_running(rt);
	if (r) /* a socket path another VM holds is a name in use */
		return r == -EADDRINUSE ? STATUS_NAME_IN_USE : STATUS_ERROR;
	return run_vm(rt);
}

/* --on-reboot restart: each boot runs in a child of this process, which
 * stays outside the sandbox - a seccomp filter outlives execve, so a
 * sandboxed VMM cannot start afresh by itself. The child's pid is kept
 * where the handler that passes SIGINT and SIGTERM on can find it. */
static volatile pid_t restart_child;

static void pass_signal(int sig)
{
	if (restart_child > 0)
		kill(restart_child, sig);
}

static enum kvmhost_status run_restarting(struct runtime *rt)
{
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	for (;;) {
		pthread_sigmask(SIG_BLOCK, &stop, &old);
		pid_t pid = fork();
		if (pid == 0) {
			signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL);
			enum kvmhost_status status = run(rt);
			teardown(rt);
			_exit(status);
		}
		restart_child = pid;
		signal(SIGINT, pass_signal), signal(SIGTERM, pass_signal);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (pid < 0) {
			log_err("cannot start the VM: %s", strerror(errno));
			return STATUS_ERROR;
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		restart_child = 0;
		enum kvmhost_status status =
			WIFEXITED(st) ? (enum kvmhost_status)WEXITSTATUS(st) : STATUS_ERROR;
		if (status != STATUS_GUEST_RESET)
			return status;
		/* A reboot as a fresh start: same name, same options. */
		log_info("VM '%s': the guest rebooted; restarting it", rt->opts->name);
	}
}

static int cmd_run(int argc, char **argv)
{
	struct run_options opts;
	struct error err = {0};
	run_options_default(&opts);
	struct runtime rt = {.opts = &opts, .claim = {.lock_fd = -1}, .console_fd = -1};
	enum kvmhost_status status = STATUS_USAGE;
	if (run_options_parse(&opts, argc, argv, &err)) {
		fprintf(stderr, "kvmhost run: %s\nTry 'kvmhost help'.\n", err.msg);
		if (opts.net_error)
			status = STATUS_NET;
		goto out;
	}
	if (opts.help) {
		usage_print(stdout);
		status = STATUS_OK;
		goto out;
	}
	if (check_pins(&opts))
		goto out;
	rt.named = opts.name[0] != '\0';
	if (!opts.name[0])
		snprintf(opts.name, sizeof(opts.name), "vm-%d", (int)getpid());
	opts.vm.name = opts.name;
	if (opts.on_reboot_restart) {
		status = run_restarting(&rt);
	} else {
		status = run(&rt);
		teardown(&rt);
	}
out:
	run_options_free(&opts);
	return status;
}

int main(int argc, char **argv)
{
	/* A console reader or a control peer that goes away is an error to
	 * handle where it happens, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage_print(stderr);
		return STATUS_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "ctl"))
		return client_ctl(argc - 1, argv + 1);
	if (!strcmp(cmd, "list"))
		return client_list(argc - 1, argv + 1);
	if (!strcmp(cmd, "discard"))
		return client_discard(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage_print(stdout);
		return STATUS_OK;
	}
	fprintf(stderr, "kvmhost: unknown command '%s'\n", cmd);
	usage_print(stderr);
	return STATUS_USAGE;
}
