/* `kvmhost ctl`, `list` and `discard`: the client side of the control
 * socket. A VM's socket is found by name in the runtime directory; every
 * step goes through control/conn.c with a deadline (--timeout), so a
 * stopped VM costs its timeout and never hangs the client, and `list` and
 * `ctl --all` ask every VM at once. */
#include "control/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control/conn.h"
#include "control/rundir.h"
#include "util/exit_status.h"
#include "util/util.h"

#define DEFAULT_TIMEOUT_MS 5000
#define SAVE_TIMEOUT_MS	   (10 * 60 * 1000) /* a save writes all of memory first */

/* Opens NAME's socket; -errno with why in err, naming the owner when the
 * VM is not ours, -ETIMEDOUT when it does not accept connections. */
static int vm_open(const char *dir, const char *name, struct conn *c, uint64_t deadline,
		   struct error *err)
{
	char path[KVMHOST_PATH_MAX];
	if (rundir_socket_path(dir, name, path, sizeof(path))) {
		error_setf(err, "runtime directory path too long");
		return -ENAMETOOLONG;
	}
	int r = conn_open(c, path, deadline);
	struct stat st;
	if (r == -EACCES && stat(path, &st) == 0)
		error_setf(err, "permission denied: this VM belongs to uid %u",
			   (unsigned)st.st_uid);
	else if (r == -ETIMEDOUT)
		error_setf(err, "VM '%s' did not answer (not accepting connections)", name);
	else if (r && rundir_reap_if_dead(dir, name))
		error_setf(err, "no VM named '%s' is running", name);
	else if (r)
		error_set_errno(err, -r, "VM '%s'", name);
	return r;
}

static char *request_line(const char *cmd, json_object *args)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "args", args);
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	if (line) {
		memcpy(line, s, n);
		memcpy(line + n, "\n", 2);
	}
	json_object_put(req);
	return line;
}

/* A reply line as an object, or NULL with why in err. */
static json_object *parse_reply(const char *line, int r, struct error *err)
{
	if (r == -ETIMEDOUT) {
		error_setf(err, "no reply from the VM in time (stopped or busy)");
		return NULL;
	}
	if (r || !line) {
		error_setf(err, "the VM closed the connection (%s)", strerror(r ? -r : EIO));
		return NULL;
	}
	json_object *reply = json_tokener_parse(line);
	if (!reply || !json_object_is_type(reply, json_type_object)) {
		json_object_put(reply);
		error_setf(err, "malformed reply from the VM");
		return NULL;
	}
	return reply;
}

/* Sends one request and parses the reply, both within the deadline. */
static json_object *request(struct conn *c, const char *cmd, json_object *args, uint64_t deadline,
			    struct error *err)
{
	char *line = request_line(cmd, args), *reply = NULL;
	int r = line ? conn_send(c, line, deadline) : -ENOMEM;
	free(line);
	if (r)
		return parse_reply(NULL, r, err);
	r = conn_read_line(c, &reply, deadline);
	json_object *o = parse_reply(reply, r, err);
	free(reply);
	return o;
}

static bool reply_ok(json_object *o)
{
	json_object *ok;
	return o && json_object_object_get_ex(o, "ok", &ok) && json_object_get_boolean(ok);
}

/* The names of every VM in the runtime directory. */
struct names {
	char **v;
	size_t n;
};

static void add_name(const char *name, void *opaque)
{
	struct names *ns = opaque;
	char **g = realloc(ns->v, sizeof(*g) * (ns->n + 1));
	if (!g)
		return;
	ns->v = g;
	g[ns->n] = strdup(name);
	if (!g[ns->n])
		return;
	ns->n++;
}

/* Connects (one attempt) and sends; -EAGAIN while the VM's backlog is full. */
static int try_ask(const char *dir, struct conn_ask *a, const char *line, uint64_t deadline)
{
	/* A deadline already passed: exactly one connect attempt. */
	int r = vm_open(dir, a->name, &a->c, 1, NULL);
	if (r)
		return r == -ETIMEDOUT ? -EAGAIN : r;
	return conn_send(&a->c, line, deadline);
}

/* Every VM asked `line` at once. A VM whose backlog is full (stopped, say)
 * is tried again while the others' replies come in; none is waited on
 * alone, and all of it ends by the deadline. */
static struct conn_ask *ask_every_vm(const char *dir, const struct names *ns, const char *line,
				     uint64_t deadline)
{
	struct conn_ask *asks = calloc(ns->n ? ns->n : 1, sizeof(*asks));
	if (!asks)
		return NULL;
	for (size_t i = 0; i < ns->n; i++)
		asks[i] = (struct conn_ask){.name = ns->v[i], .c = {.fd = -1}, .err = -EAGAIN};
	for (;;) {
		bool connecting = false;
		for (size_t i = 0; i < ns->n; i++) {
			if (asks[i].err == -EAGAIN)
				asks[i].err = try_ask(dir, &asks[i], line, deadline);
			connecting |= asks[i].err == -EAGAIN;
		}
		uint64_t now = now_ns();
		int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000);
		bool waiting = conn_ask_collect(asks, ns->n, connecting && left > 5 ? 5 : left);
		if ((!waiting && !connecting) || now_ns() >= deadline)
			break;
		if (!waiting)
			usleep(5000); /* only backlogs to retry: do not spin */
	}
	for (size_t i = 0; i < ns->n; i++)
		if (!asks[i].reply && (!asks[i].err || asks[i].err == -EAGAIN))
			asks[i].err = -ETIMEDOUT;
	return asks;
}

static void free_asks(struct conn_ask *asks, struct names *ns)
{
	for (size_t i = 0; asks && i < ns->n; i++) {
		conn_close(&asks[i].c);
		free(asks[i].reply);
	}
	free(asks);
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
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

static int parse_timeout(const char *s, int *ms);

static void usage_ctl(void)
{
	fprintf(stderr,
		"usage: kvmhost ctl NAME status|pause|resume|quit|poweroff|regs|events "
		"[--json]\n"
		"       kvmhost ctl NAME pin VCPU=HOSTCPU[,...]\n"
		"       kvmhost ctl NAME save FILE [--keep-running] [--json]\n"
		"       kvmhost ctl NAME migrate unix:PATH|tcp:HOST:PORT [--max-downtime MS] "
		"[--json]\n"
		"       kvmhost ctl NAME|--all host-sleep prepare|resume\n"
		"       (each also takes --timeout SEC, default 5)\n");
}

/* What `ctl` was asked to do. */
struct ctl_args {
	const char *name; /* "--all" with all */
	const char *cmd;
	const char *arg;  /* pin's spec, host-sleep's phase, save's file, net-link's net */
	const char *arg2; /* net-link's up|down */
	bool all;
	bool json;
	bool keep_running;
	int timeout_ms;
	bool timeout_given;
	int max_downtime_ms; /* 0: the VM's default */
};

static bool takes_arg(const char *cmd)
{
	return cmd && (!strcmp(cmd, "pin") || !strcmp(cmd, "host-sleep") || !strcmp(cmd, "save") ||
		       !strcmp(cmd, "migrate") || !strcmp(cmd, "net-link"));
}

static int parse_ctl_args(int argc, char **argv, struct ctl_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--json")) {
			a->json = true;
		} else if (!strcmp(s, "--keep-running")) {
			a->keep_running = true;
		} else if (!strcmp(s, "--timeout") && i + 1 < argc) {
			if (parse_timeout(argv[++i], &a->timeout_ms)) {
				fprintf(stderr, "kvmhost ctl: --timeout takes 1-3600 seconds\n");
				return -1;
			}
			a->timeout_given = true;
		} else if (!strcmp(s, "--max-downtime") && i + 1 < argc) {
			uint64_t v;
			if (parse_u64(argv[++i], &v) || v < 1 || v > 60000) {
				fprintf(stderr, "kvmhost ctl: --max-downtime takes 1-60000 ms\n");
				return -1;
			}
			a->max_downtime_ms = (int)v;
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
		} else if (!a->arg2 && a->cmd && !strcmp(a->cmd, "net-link")) {
			a->arg2 = s;
		} else {
			fprintf(stderr, "kvmhost ctl: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (!a->name || !a->cmd || (takes_arg(a->cmd) && !a->arg) ||
	    (!strcmp(a->cmd, "net-link") && !a->arg2))
		return -1;
	return 0;
}

/* Checks what the arguments can be checked for without a VM. */
static enum kvmhost_status check_ctl_args(const struct ctl_args *a)
{
	static const char *const known[] = {"status",	  "pause",  "resume",  "quit",
					    "poweroff",	  "events", "regs",    "pin",
					    "host-sleep", "save",   "migrate", "net-link"};
	if (!strcmp(a->cmd, "host-sleep") && strcmp(a->arg, "prepare") &&
	    strcmp(a->arg, "resume")) {
		fprintf(stderr, "kvmhost ctl: host-sleep takes prepare or resume\n");
		return STATUS_USAGE;
	}
	if (!strcmp(a->cmd, "net-link") && strcmp(a->arg2, "up") && strcmp(a->arg2, "down")) {
		fprintf(stderr,
			"kvmhost ctl: net-link takes a net's id (or index) and up or down\n");
		return STATUS_USAGE;
	}
	if (a->all && strcmp(a->cmd, "host-sleep")) {
		fprintf(stderr, "kvmhost ctl: --all is for host-sleep\n");
		return STATUS_USAGE;
	}
	if (!a->all && !rundir_valid_name(a->name)) {
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
static void print_result(const struct ctl_args *a, struct conn *c, json_object *result)
{
	if (!strcmp(a->cmd, "events")) {
		char *line;
		fflush(stdout);
		while (conn_read_line(c, &line, CONN_NO_DEADLINE) == 0) {
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
	if (!strcmp(a->cmd, "net-link")) {
		json_object_object_add(args, "id", json_object_new_string(a->arg));
		json_object_object_add(args, "up", json_object_new_boolean(!strcmp(a->arg2, "up")));
		return args;
	}
	if (strcmp(a->cmd, "save")) {
		json_object_object_add(args, !strcmp(a->cmd, "pin") ? "spec" : "phase",
				       json_object_new_string(a->arg));
		return args;
	}
	char cwd[PATH_MAX], path[8200];
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

/* For sleep hooks: every VM on the host quiesces at once, however many;
 * returns within the deadline whatever they do, naming those that did not. */
static enum kvmhost_status ctl_all_host_sleep(const char *phase, int timeout_ms)
{
	char dir[PATH_MAX];
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost ctl: no runtime directory\n");
		return STATUS_ERROR;
	}
	struct names ns = {0};
	rundir_for_each(dir, add_name, &ns);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "phase", json_object_new_string(phase));
	char *line = request_line("host-sleep", args);
	struct conn_ask *asks =
		line ? ask_every_vm(dir, &ns, line, conn_deadline(timeout_ms)) : NULL;
	free(line);
	enum kvmhost_status status = asks ? STATUS_OK : STATUS_ERROR;
	for (size_t i = 0; asks && i < ns.n; i++) {
		struct error err = {0};
		json_object *o = parse_reply(asks[i].reply, asks[i].err, &err);
		if (reply_ok(o)) {
			printf("%s: host-sleep %s done\n", asks[i].name, phase);
		} else {
			fprintf(stderr, "kvmhost ctl: %s: host-sleep %s failed: %s\n", asks[i].name,
				phase, o ? jstr(o, "error") : err.msg);
			status = STATUS_ERROR;
		}
		json_object_put(o);
	}
	free_asks(asks, &ns);
	return status;
}

static enum kvmhost_status ctl_one(const struct ctl_args *a)
{
	char dir[PATH_MAX];
	struct error err = {0};
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost ctl: no runtime directory (set XDG_RUNTIME_DIR)\n");
		return STATUS_ERROR;
	}
	bool save = !strcmp(a->cmd, "save"), events = !strcmp(a->cmd, "events");
	uint64_t deadline = conn_deadline(save ? SAVE_TIMEOUT_MS : a->timeout_ms);
	struct conn c;
	if (vm_open(dir, a->name, &c, conn_deadline(a->timeout_ms), &err)) {
		fprintf(stderr, "kvmhost ctl: %s\n", err.msg);
		return STATUS_ERROR;
	}
	json_object *args = ctl_request_args(a);
	if (!args && a->arg) {
		fprintf(stderr, "kvmhost ctl: %s: %s\n", a->arg, strerror(errno));
		conn_close(&c);
		return STATUS_ERROR;
	}
	json_object *reply = request(&c, events ? "subscribe" : a->cmd, args, deadline, &err);
	enum kvmhost_status status = STATUS_ERROR;
	json_object *result = NULL;
	if (!reply)
		fprintf(stderr, "kvmhost ctl: %s\n", err.msg);
	else if (!reply_ok(reply))
		fprintf(stderr, "kvmhost ctl: %s\n", jstr(reply, "error"));
	else
		status = STATUS_OK;
	if (status == STATUS_OK) {
		json_object_object_get_ex(reply, "result", &result);
		print_result(a, &c, result);
	}
	json_object_put(reply);
	conn_close(&c);
	return status;
}

static void print_migration(const struct ctl_args *a, json_object *ev)
{
	json_object_object_del(ev, "event");
	if (a->json) {
		printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
		return;
	}
	json_object *dt = NULL, *total = NULL, *bytes = NULL, *rounds = NULL;
	json_object_object_get_ex(ev, "downtime_ms", &dt);
	json_object_object_get_ex(ev, "total_ms", &total);
	json_object_object_get_ex(ev, "bytes", &bytes);
	json_object_object_get_ex(ev, "rounds", &rounds);
	printf("%s: migrated to %s: downtime %.1f ms, %.1f ms in all, %llu bytes in %d rounds\n",
	       a->name, jstr(ev, "addr"), json_object_get_double(dt), json_object_get_double(total),
	       (unsigned long long)json_object_get_uint64(bytes), json_object_get_int(rounds));
}

/* The reply to `migrate`, then its `migration` event: the result. Other
 * events on the way are skipped. */
static enum kvmhost_status migrate_wait(const struct ctl_args *a, struct conn *c, uint64_t deadline)
{
	bool replied = false;
	for (;;) {
		char *line = NULL;
		struct error err = {0};
		int r = conn_read_line(c, &line, deadline);
		json_object *o = parse_reply(line, r, &err), *ev;
		free(line);
		if (!o) {
			fprintf(stderr, "kvmhost ctl: migrate: %s\n",
				replied ? "the VM ended without saying how its migration went"
					: err.msg);
			return STATUS_ERROR;
		}
		bool is_event = json_object_object_get_ex(o, "event", &ev);
		if (!is_event && !reply_ok(o)) {
			fprintf(stderr, "kvmhost ctl: %s\n", jstr(o, "error"));
			json_object_put(o);
			return STATUS_ERROR;
		}
		replied |= !is_event;
		if (is_event && !strcmp(json_object_get_string(ev), "migration")) {
			bool ok = !strcmp(jstr(o, "status"), "completed");
			if (ok)
				print_migration(a, o);
			else
				fprintf(stderr, "kvmhost ctl: %s: migration failed: %s\n", a->name,
					jstr(o, "error"));
			json_object_put(o);
			return ok ? STATUS_OK : STATUS_ERROR;
		}
		json_object_put(o);
	}
}

static enum kvmhost_status ctl_migrate(const struct ctl_args *a)
{
	char dir[PATH_MAX];
	struct error err = {0};
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost ctl: no runtime directory (set XDG_RUNTIME_DIR)\n");
		return STATUS_ERROR;
	}
	struct conn c;
	if (vm_open(dir, a->name, &c, conn_deadline(a->timeout_ms), &err)) {
		fprintf(stderr, "kvmhost ctl: %s\n", err.msg);
		return STATUS_ERROR;
	}
	/* Subscribed first: the result comes as an event, however long it takes. */
	json_object *sub = request(&c, "subscribe", NULL, conn_deadline(a->timeout_ms), &err);
	enum kvmhost_status status = STATUS_ERROR;
	if (!reply_ok(sub)) {
		fprintf(stderr, "kvmhost ctl: %s\n", sub ? jstr(sub, "error") : err.msg);
	} else {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "addr", json_object_new_string(a->arg));
		if (a->max_downtime_ms)
			json_object_object_add(args, "max_downtime_ms",
					       json_object_new_int(a->max_downtime_ms));
		char *line = request_line("migrate", args);
		uint64_t deadline =
			conn_deadline(a->timeout_given ? a->timeout_ms : SAVE_TIMEOUT_MS);
		if (line && !conn_send(&c, line, deadline))
			status = migrate_wait(a, &c, deadline);
		else
			fprintf(stderr, "kvmhost ctl: cannot send the request\n");
		free(line);
	}
	json_object_put(sub);
	conn_close(&c);
	return status;
}

int client_ctl(int argc, char **argv)
{
	struct ctl_args a = {.timeout_ms = DEFAULT_TIMEOUT_MS};
	if (parse_ctl_args(argc, argv, &a)) {
		usage_ctl();
		return STATUS_USAGE;
	}
	enum kvmhost_status status = check_ctl_args(&a);
	if (status != STATUS_OK)
		return status;
	if (!strcmp(a.cmd, "migrate"))
		return ctl_migrate(&a);
	return a.all ? ctl_all_host_sleep(a.arg, a.timeout_ms) : ctl_one(&a);
}

/* `--timeout SEC`: how long every step may take. */
static int parse_timeout(const char *s, int *ms)
{
	uint64_t v;
	if (parse_u64(s, &v) || v == 0 || v > 3600)
		return -1;
	*ms = (int)v * 1000;
	return 0;
}

static int parse_list_args(int argc, char **argv, bool *json, bool *saved, int *timeout_ms)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "--all")) {
			*saved = true;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
			   !parse_timeout(argv[i + 1], timeout_ms)) {
			i++;
		} else {
			fprintf(stderr,
				"kvmhost list: unknown argument '%s'\nusage: kvmhost list "
				"[--all] [--json] [--timeout SEC]\n",
				argv[i]);
			return -1;
		}
	}
	return 0;
}

/* The VMs that answered, in the status format; those that did not, as
 * {"name", "state": "unresponsive"}. */
static json_object *list_json(struct conn_ask *asks, size_t n, size_t *unresponsive)
{
	json_object *all = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct error err = {0};
		json_object *o = parse_reply(asks[i].reply, asks[i].err, &err), *result;
		if (reply_ok(o) && json_object_object_get_ex(o, "result", &result)) {
			json_object_array_add(all, json_object_get(result));
		} else {
			json_object *u = json_object_new_object();
			json_object_object_add(u, "name", json_object_new_string(asks[i].name));
			json_object_object_add(u, "state", json_object_new_string("unresponsive"));
			json_object_object_add(
				u, "error", json_object_new_string(o ? jstr(o, "error") : err.msg));
			json_object_array_add(all, u);
			(*unresponsive)++;
		}
		json_object_put(o);
	}
	return all;
}

/* A managed save whose VM is not running: {"name", "state": "saved", "path"}. */
static void add_saved(const char *name, const char *path, void *opaque)
{
	json_object *all = opaque;
	for (size_t i = 0; i < json_object_array_length(all); i++)
		if (!strcmp(jstr(json_object_array_get_idx(all, i), "name"), name))
			return; /* running now: it is being restored */
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "state", json_object_new_string("saved"));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_array_add(all, o);
}

int client_list(int argc, char **argv)
{
	bool json = false, saved = false;
	int timeout_ms = DEFAULT_TIMEOUT_MS;
	if (parse_list_args(argc, argv, &json, &saved, &timeout_ms))
		return STATUS_USAGE;
	char dir[PATH_MAX];
	if (rundir_path(dir, sizeof(dir), false)) {
		fprintf(stderr, "kvmhost list: no runtime directory (set XDG_RUNTIME_DIR)\n");
		return STATUS_ERROR;
	}
	struct names ns = {0};
	int r = rundir_for_each(dir, add_name, &ns);
	if (r) {
		fprintf(stderr, "kvmhost list: %s: %s\n", dir, strerror(-r));
		free_asks(NULL, &ns);
		return STATUS_ERROR;
	}
	char *line = request_line("status", NULL);
	struct conn_ask *asks =
		line ? ask_every_vm(dir, &ns, line, conn_deadline(timeout_ms)) : NULL;
	free(line);
	size_t unresponsive = 0;
	json_object *all = asks ? list_json(asks, ns.n, &unresponsive) : json_object_new_array();
	if (saved) {
		r = statedir_for_each_saved(add_saved, all);
		if (r && r != -ENOENT)
			fprintf(stderr, "kvmhost list: saved VMs: %s\n", strerror(-r));
	}
	size_t n = json_object_array_length(all);
	if (json)
		printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN));
	for (size_t i = 0; !json && i < n; i++)
		print_status_human(json_object_array_get_idx(all, i), i == 0);
	if (!json && !n)
		printf(saved ? "no VMs running or saved\n" : "no VMs running\n");
	if (unresponsive)
		fprintf(stderr, "kvmhost list: %zu VM%s did not answer in time\n", unresponsive,
			unresponsive == 1 ? "" : "s");
	json_object_put(all);
	free_asks(asks, &ns);
	return unresponsive ? STATUS_ERROR : STATUS_OK;
}

int client_discard(int argc, char **argv)
{
	char path[KVMHOST_PATH_MAX];
	if (argc != 2 || !rundir_valid_name(argv[1])) {
		fprintf(stderr, "usage: kvmhost discard NAME\n");
		return STATUS_USAGE;
	}
	int r = statedir_save_path(argv[1], path, sizeof(path));
	if (r) {
		fprintf(stderr, "kvmhost discard: no state directory: %s\n", strerror(-r));
		return STATUS_ERROR;
	}
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "kvmhost discard: no saved VM named '%s'\n", argv[1]);
		else
			fprintf(stderr, "kvmhost discard: %s: %s\n", path, strerror(errno));
		return STATUS_ERROR;
	}
	printf("%s: saved state discarded\n", argv[1]);
	return STATUS_OK;
}
