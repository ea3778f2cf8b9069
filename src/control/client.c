#include "control/client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control/rundir.h"
#include "util/exit_status.h"
#include "util/util.h"

#define REPLY_TIMEOUT_MS 5000
#define SAVE_TIMEOUT_MS	 (10 * 60 * 1000)

static json_object *request_within(int fd, const char *cmd, json_object *args, int timeout_ms,
				   char *err, size_t errlen);

static int connect_socket(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Reads one line; returns it (caller frees) or NULL on timeout/EOF. */
static char *read_line(int fd, int timeout_ms)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	while (buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (len + 1 >= cap) {
			if (cap > (64u << 20))
				break;
			char *g = realloc(buf, cap *= 2);
			if (!g)
				break;
			buf = g;
		}
		ssize_t n = recv(fd, buf + len, 1, 0);
		if (n <= 0)
			break;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return buf;
		}
		len++;
	}
	free(buf);
	return NULL;
}

/* Sends one request and parses the reply; returns the reply object or NULL. */
static json_object *request(int fd, const char *cmd, json_object *args, char *err, size_t errlen)
{
	/* A save writes all of guest memory before it answers. */
	int timeout = !strcmp(cmd, "save") ? SAVE_TIMEOUT_MS : REPLY_TIMEOUT_MS;
	return request_within(fd, cmd, args, timeout, err, errlen);
}

static json_object *request_within(int fd, const char *cmd, json_object *args, int timeout_ms,
				   char *err, size_t errlen)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "args", args);
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	int r = write_full(fd, s, strlen(s));
	if (!r)
		r = write_full(fd, "\n", 1);
	json_object_put(req);
	if (r) {
		snprintf(err, errlen, "sending request: %s", strerror(-r));
		return NULL;
	}
	char *line = read_line(fd, timeout_ms);
	if (!line) {
		snprintf(err, errlen, "no reply from the VM");
		return NULL;
	}
	json_object *reply = json_tokener_parse(line);
	free(line);
	if (!reply || !json_object_is_type(reply, json_type_object)) {
		json_object_put(reply);
		snprintf(err, errlen, "malformed reply from the VM");
		return NULL;
	}
	return reply;
}

static int vm_connect(const char *dir, const char *name)
{
	char path[4200];
	if (rundir_socket_path(dir, name, path, sizeof(path)))
		return -ENAMETOOLONG;
	return connect_socket(path);
}

static void print_cpu_array(json_object *a, char *buf, size_t len)
{
	if (!a || !json_object_is_type(a, json_type_array)) {
		snprintf(buf, len, "-");
		return;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		int c = json_object_get_int(json_object_array_get_idx(a, i));
		if (c >= 0 && c < CPU_SETSIZE)
			CPU_SET(c, &set);
	}
	format_cpu_list(&set, buf, len);
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static void print_status_human(json_object *st, bool header)
{
	json_object *vcpus = NULL;
	json_object_object_get_ex(st, "vcpus", &vcpus);
	size_t n = vcpus ? json_object_array_length(vcpus) : 0;
	if (header)
		printf("%-20s %8s %-9s %5s\n", "NAME", "PID", "STATE", "VCPUS");
	printf("%-20s %8s %-9s %5zu\n", jstr(st, "name"), jstr(st, "pid"), jstr(st, "state"), n);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vcpus, i), *p = NULL, *d = NULL;
		json_object_object_get_ex(v, "pinned", &p);
		json_object_object_get_ex(v, "desired", &d);
		char pinned[64], desired[64];
		print_cpu_array(p, pinned, sizeof(pinned));
		print_cpu_array(d, desired, sizeof(desired));
		printf("  vcpu%-3s tid %-7s host_cpu %-3s pinned %-8s desired %-8s %-8s "
		       "heartbeats %s%s\n",
		       jstr(v, "index"), jstr(v, "tid"), jstr(v, "host_cpu"), pinned, desired,
		       jstr(v, "state"), jstr(v, "heartbeats"),
		       strcmp(jstr(v, "displaced"), "true") ? "" : " (displaced)");
	}
}

struct all_ctx {
	const char *dir;
	int fds[256];
	char names[256][80];
	int n;
};

static void connect_one(const char *name, void *opaque)
{
	struct all_ctx *ctx = opaque;
	if (ctx->n >= 256)
		return;
	int fd = vm_connect(ctx->dir, name);
	if (fd < 0)
		return;
	ctx->fds[ctx->n] = fd;
	snprintf(ctx->names[ctx->n], sizeof(ctx->names[0]), "%s", name);
	ctx->n++;
}

/* For sleep hooks: every VM on the host quiesces at once; returns when all
 * have answered (prepare: paused and flushed). */
static enum kvmhost_status ctl_all_host_sleep(const char *phase)
{
	struct all_ctx ctx = {0};
	char dir[4096];
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost ctl: no runtime directory\n");
		return STATUS_ERROR;
	}
	ctx.dir = dir;
	rundir_for_each(dir, connect_one, &ctx);
	char line[128];
	int n = snprintf(line, sizeof(line),
			 "{\"cmd\":\"host-sleep\",\"args\":{\"phase\":\"%s\"}}\n", phase);
	for (int i = 0; i < ctx.n; i++)
		if (write_full(ctx.fds[i], line, (size_t)n)) {
			close(ctx.fds[i]);
			ctx.fds[i] = -1;
		}
	enum kvmhost_status status = STATUS_OK;
	for (int i = 0; i < ctx.n; i++) {
		if (ctx.fds[i] < 0) {
			fprintf(stderr, "kvmhost ctl: %s: cannot send\n", ctx.names[i]);
			status = STATUS_ERROR;
			continue;
		}
		char *reply = read_line(ctx.fds[i], REPLY_TIMEOUT_MS);
		json_object *o = reply ? json_tokener_parse(reply) : NULL;
		json_object *ok;
		if (!o || !json_object_object_get_ex(o, "ok", &ok) ||
		    !json_object_get_boolean(ok)) {
			fprintf(stderr, "kvmhost ctl: %s: %s\n", ctx.names[i],
				o ? jstr(o, "error") : "no reply");
			status = STATUS_ERROR;
		} else {
			printf("%s: host-sleep %s done\n", ctx.names[i], phase);
		}
		json_object_put(o);
		free(reply);
		close(ctx.fds[i]);
	}
	return status;
}

static void usage_ctl(void)
{
	fprintf(stderr, "usage: kvmhost ctl NAME status|pause|resume|quit|poweroff|regs|events "
			"[--json]\n"
			"       kvmhost ctl NAME pin VCPU=HOSTCPU[,...]\n"
			"       kvmhost ctl NAME save FILE [--keep-running] [--json]\n"
			"       kvmhost ctl NAME|--all host-sleep prepare|resume\n");
}

/* What `ctl` was asked to do. */
struct ctl_args {
	const char *name; /* "--all" with all */
	const char *cmd;
	const char *arg; /* pin's spec, host-sleep's phase, save's file */
	bool all;
	bool json;
	bool keep_running;
};

static bool takes_arg(const char *cmd)
{
	return cmd && (!strcmp(cmd, "pin") || !strcmp(cmd, "host-sleep") || !strcmp(cmd, "save"));
}

static int parse_ctl_args(int argc, char **argv, struct ctl_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--json")) {
			a->json = true;
		} else if (!strcmp(s, "--keep-running")) {
			a->keep_running = true;
		} else if (!strcmp(s, "--all") && !a->name) {
			a->all = true, a->name = "--all";
		} else if (s[0] == '-') {
			fprintf(stderr, "kvmhost ctl: unknown option '%s'\n", s);
			return -1;
		} else if (!a->name) {
			a->name = s;
		} else if (!a->cmd) {
			a->cmd = s;
		} else if (!a->arg && takes_arg(a->cmd)) {
			a->arg = s;
		} else {
			fprintf(stderr, "kvmhost ctl: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (!a->name || !a->cmd || (takes_arg(a->cmd) && !a->arg))
		return -1;
	return 0;
}

/* Checks what the arguments can be checked for without a VM. */
static enum kvmhost_status check_ctl_args(const struct ctl_args *a)
{
	static const char *const known[] = {"status", "pause", "resume", "quit",       "poweroff",
					    "events", "regs",  "pin",	 "host-sleep", "save"};
	if (!strcmp(a->cmd, "host-sleep") && strcmp(a->arg, "prepare") &&
	    strcmp(a->arg, "resume")) {
		fprintf(stderr, "kvmhost ctl: host-sleep takes prepare or resume\n");
		return STATUS_USAGE;
	}
	if (a->all && strcmp(a->cmd, "host-sleep")) {
		fprintf(stderr, "kvmhost ctl: --all is for host-sleep\n");
		return STATUS_USAGE;
	}
	if (!a->all && !valid_vm_name(a->name)) {
		fprintf(stderr, "kvmhost ctl: '%s' is not a valid VM name\n", a->name);
		return STATUS_USAGE;
	}
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(a->cmd, known[i]))
			return STATUS_OK;
	fprintf(stderr, "kvmhost ctl: unknown command '%s'\n", a->cmd);
	usage_ctl();
	return STATUS_USAGE;
}

/* Prints a successful reply as the command calls for. */
static void print_result(const struct ctl_args *a, int fd, json_object *result)
{
	if (!strcmp(a->cmd, "events")) {
		char *line;
		fflush(stdout);
		while ((line = read_line(fd, -1))) {
			printf("%s\n", line);
			fflush(stdout);
			free(line);
		}
	} else if (a->json || (takes_arg(a->cmd) && strcmp(a->cmd, "save")) ||
		   !strcmp(a->cmd, "regs")) {
		printf("%s\n", json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
	} else if (!strcmp(a->cmd, "status")) {
		print_status_human(result, true);
	} else if (!strcmp(a->cmd, "pause") || !strcmp(a->cmd, "resume")) {
		printf("%s: %s\n", a->name, jstr(result, "state"));
	} else if (!strcmp(a->cmd, "save")) {
		json_object *ms = NULL;
		json_object_object_get_ex(result, "ms", &ms);
		printf("%s: saved to %s in %.1f ms\n", a->name, jstr(result, "path"),
		       json_object_get_double(ms));
	}
}

/* The request's args; save's file is made absolute here, where the user's
 * working directory is. NULL with errno if that fails. */
static json_object *ctl_request_args(const struct ctl_args *a)
{
	if (!a->arg)
		return NULL;
	json_object *args = json_object_new_object();
	if (strcmp(a->cmd, "save")) {
		json_object_object_add(args, !strcmp(a->cmd, "pin") ? "spec" : "phase",
				       json_object_new_string(a->arg));
		return args;
	}
	char cwd[4096], path[8200];
	if (a->arg[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		json_object_put(args);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s%s%s", a->arg[0] == '/' ? "" : cwd,
		 a->arg[0] == '/' ? "" : "/", a->arg);
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "keep_running", json_object_new_boolean(a->keep_running));
	return args;
}

static enum kvmhost_status ctl_one(const struct ctl_args *a)
{
	char dir[4096], err[256];
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost ctl: no runtime directory (set XDG_RUNTIME_DIR)\n");
		return STATUS_ERROR;
	}
	int fd = vm_connect(dir, a->name);
	if (fd < 0) {
		rundir_reap_if_dead(dir, a->name);
		fprintf(stderr, "kvmhost ctl: no VM named '%s' is running (%s)\n", a->name,
			strerror(-fd));
		return STATUS_ERROR;
	}
	json_object *args = ctl_request_args(a);
	if (!args && a->arg) {
		fprintf(stderr, "kvmhost ctl: %s: %s\n", a->arg, strerror(errno));
		close(fd);
		return STATUS_ERROR;
	}
	bool events = !strcmp(a->cmd, "events");
	json_object *reply = request(fd, events ? "subscribe" : a->cmd, args, err, sizeof(err));
	enum kvmhost_status status = STATUS_ERROR;
	json_object *okv, *result = NULL;
	if (!reply)
		fprintf(stderr, "kvmhost ctl: %s\n", err);
	else if (!json_object_object_get_ex(reply, "ok", &okv) || !json_object_get_boolean(okv))
		fprintf(stderr, "kvmhost ctl: %s\n", jstr(reply, "error"));
	else
		status = STATUS_OK;
	if (status == STATUS_OK) {
		json_object_object_get_ex(reply, "result", &result);
		print_result(a, fd, result);
	}
	json_object_put(reply);
	close(fd);
	return status;
}

int cmd_ctl(int argc, char **argv)
{
	struct ctl_args a = {0};
	if (parse_ctl_args(argc, argv, &a)) {
		usage_ctl();
		return STATUS_USAGE;
	}
	enum kvmhost_status status = check_ctl_args(&a);
	if (status != STATUS_OK)
		return status;
	return a.all ? ctl_all_host_sleep(a.arg) : ctl_one(&a);
}

struct list_ctx {
	const char *dir;
	json_object *all;
};

static void list_one(const char *name, void *opaque)
{
	struct list_ctx *ctx = opaque;
	int fd = vm_connect(ctx->dir, name);
	if (fd < 0)
		return; /* went away between readdir and connect */
	char err[256];
	json_object *reply = request(fd, "status", NULL, err, sizeof(err));
	close(fd);
	json_object *result;
	if (reply && json_object_object_get_ex(reply, "result", &result))
		json_object_array_add(ctx->all, json_object_get(result));
	else
		fprintf(stderr, "kvmhost list: %s: %s\n", name, reply ? jstr(reply, "error") : err);
	json_object_put(reply);
}

int cmd_list(int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			fprintf(stderr,
				"kvmhost list: unknown argument '%s'\nusage: kvmhost list "
				"[--json]\n",
				argv[i]);
			return STATUS_USAGE;
		}
	}
	char dir[4096];
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost list: no runtime directory (set XDG_RUNTIME_DIR)\n");
		return STATUS_ERROR;
	}
	struct list_ctx ctx = {.dir = dir, .all = json_object_new_array()};
	int r = rundir_for_each(dir, list_one, &ctx);
	if (r) {
		fprintf(stderr, "kvmhost list: %s: %s\n", dir, strerror(-r));
		json_object_put(ctx.all);
		return STATUS_ERROR;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(ctx.all, JSON_C_TO_STRING_PLAIN));
	} else {
		size_t n = json_object_array_length(ctx.all);
		for (size_t i = 0; i < n; i++)
			print_status_human(json_object_array_get_idx(ctx.all, i), i == 0);
		if (!n)
			printf("no VMs running\n");
	}
	json_object_put(ctx.all);
	return STATUS_OK;
}
