#include "control/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/protocol.h"
#include "core/vm.h"
#include "util/util.h"

#define MAX_CLIENTS	 32
#define CLIENT_IDLE_USEC (30ull * 1000000) /* $KVMHOST_CLIENT_IDLE_MS overrides, for tests */
#define MAX_OUT		 (4u << 20)	   /* a subscriber that never reads is dropped */

struct client {
	struct control *ctl;
	int fd;
	sd_event_source *io;
	sd_event_source *timer;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len;
	bool subscribed;
	struct client *next;
};

struct control {
	struct vm *vm;
	sd_event *event;
	int fd;
	sd_event_source *listen_src;
	char path[108];
	struct client *clients;
	int nr_clients;
	control_cmd_fn ext_fn;
	void *ext_opaque;
	control_status_fn status_fn;
	void *status_opaque;
	uint64_t idle_usec;
};

static void client_free(struct client *c)
{
	struct control *ctl = c->ctl;
	for (struct client **pp = &ctl->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	ctl->nr_clients--;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static void client_update_events(struct client *c)
{
	sd_event_source_set_io_events(c->io, EPOLLIN | EPOLLRDHUP | (c->out_len ? EPOLLOUT : 0));
}

/* Returns -1 if the client is gone. */
static int client_flush(struct client *c)
{
	while (c->out_len) {
		ssize_t w = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		memmove(c->out, c->out + w, c->out_len - (size_t)w);
		c->out_len -= (size_t)w;
	}
	client_update_events(c);
	return 0;
}

static int client_send(struct client *c, char *line)
{
	if (!line)
		return -1;
	size_t n = strlen(line);
	if (c->out_len + n > MAX_OUT) {
		free(line);
		return -1;
	}
	char *grown = realloc(c->out, c->out_len + n);
	if (!grown) {
		free(line);
		return -1;
	}
	c->out = grown;
	memcpy(c->out + c->out_len, line, n);
	c->out_len += n;
	free(line);
	return client_flush(c);
}

struct regs_snapshot {
	struct kvm_regs *regs;
	struct kvm_sregs *sregs;
	bool *ok;
};

/* Runs on each vCPU's own thread: only it may touch its fd. */
static void read_regs(struct vcpu *vcpu, void *arg)
{
	struct regs_snapshot *s = arg;
	int i = vcpu->index;
	s->ok[i] = ioctl(vcpu->fd, KVM_GET_REGS, &s->regs[i]) == 0 &&
		   ioctl(vcpu->fd, KVM_GET_SREGS, &s->sregs[i]) == 0;
}

static json_object *hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return json_object_new_string(buf);
}

static json_object *regs_json(struct vm *vm, char *err, size_t errlen)
{
	uint32_t n = vm->nr_vcpus;
	struct regs_snapshot s = {calloc(n, sizeof(*s.regs)), calloc(n, sizeof(*s.sregs)),
				  calloc(n, sizeof(*s.ok))};
	json_object *out = NULL;
	if (!s.regs || !s.sregs || !s.ok) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	vm_run_on_all(vm, read_regs, &s, true);
	out = json_object_new_array();
	for (uint32_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "index", json_object_new_int((int)i));
		if (s.ok[i]) {
			const struct kvm_regs *r = &s.regs[i];
			const struct kvm_sregs *sr = &s.sregs[i];
			json_object_object_add(o, "rip", hex(r->rip));
			json_object_object_add(o, "rsp", hex(r->rsp));
			json_object_object_add(o, "rflags", hex(r->rflags));
			json_object_object_add(o, "rax", hex(r->rax));
			json_object_object_add(o, "rsi", hex(r->rsi));
			json_object_object_add(o, "cs", hex(sr->cs.selector));
			json_object_object_add(o, "cr0", hex(sr->cr0));
			json_object_object_add(o, "cr3", hex(sr->cr3));
			json_object_object_add(o, "cr4", hex(sr->cr4));
			json_object_object_add(o, "efer", hex(sr->efer));
		} else {
			json_object_object_add(o, "error",
					       json_object_new_string("vCPU not running"));
		}
		json_object_array_add(out, o);
	}
done:
	free(s.regs);
	free(s.sregs);
	free(s.ok);
	return out;
}

static json_object *handle(struct client *c, struct ctl_request *req, char *err, size_t errlen)
{
	struct control *ctl = c->ctl;
	struct vm *vm = ctl->vm;
	switch (req->cmd) {
	case CMD_STATUS: {
		struct vm_status st;
		if (vm_get_status(vm, &st)) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		json_object *o = protocol_status_json(&st);
		vm_status_free(&st);
		if (ctl->status_fn)
			ctl->status_fn(ctl->status_opaque, o);
		return o;
	}
	case CMD_PAUSE:
	case CMD_RESUME: {
		if (req->cmd == CMD_PAUSE)
			vm_pause(vm);
		else
			vm_resume(vm);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "state", json_object_new_string(vm_state_name(vm)));
		control_emit_event(ctl, req->cmd == CMD_PAUSE ? "paused" : "resumed", NULL);
		return o;
	}
	case CMD_QUIT:
		vm_request_exit(vm, VM_EXIT_QUIT, 0);
		return json_object_new_object();
	case CMD_POWEROFF:
		testdev_request_poweroff(&vm->testdev);
		return json_object_new_object();
	case CMD_SUBSCRIBE:
		c->subscribed = true;
		return json_object_new_object();
	case CMD_REGS:
		return regs_json(vm, err, errlen);
	default:
		if (ctl->ext_fn)
			return ctl->ext_fn(ctl->ext_opaque, (int)req->cmd, req->args, err, errlen);
		snprintf(err, errlen, "'%s' is not available in this VM",
			 protocol_cmd_name(req->cmd));
		return NULL;
	}
}

static int client_line(struct client *c, const char *line, size_t len)
{
	struct ctl_request req;
	char err[256];
	if (protocol_parse_request(line, len, &req, err, sizeof(err))) {
		int r = client_send(c, protocol_reply_error(&req, err));
		ctl_request_free(&req);
		return r;
	}
	json_object *result = handle(c, &req, err, sizeof(err));
	char *reply = result ? protocol_reply_ok(&req, result) : protocol_reply_error(&req, err);
	ctl_request_free(&req);
	return client_send(c, reply);
}

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct client *c = userdata;
	(void)s;
	if ((revents & EPOLLOUT) && client_flush(c) < 0)
		goto drop;
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
		return 0;
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : (client_free(c), 0);
	if (n == 0)
		goto drop; /* the client went away, maybe mid-request: nothing to undo */
	sd_event_source_set_time_relative(c->timer, c->ctl->idle_usec);
	char *grown = realloc(c->in, c->in_len + (size_t)n);
	if (!grown)
		goto drop;
	c->in = grown;
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	char *nl;
	while (c->in_len && (nl = memchr(c->in, '\n', c->in_len))) {
		size_t len = (size_t)(nl - c->in);
		if (client_line(c, c->in, len) < 0)
			goto drop;
		memmove(c->in, nl + 1, c->in_len - len - 1);
		c->in_len -= len + 1;
	}
	if (c->in_len > PROTOCOL_MAX_LINE) {
		char msg[96];
		snprintf(msg, sizeof(msg), "request too long (at most %d bytes)",
			 PROTOCOL_MAX_LINE);
		client_send(c, protocol_reply_error(NULL, msg));
		goto drop;
	}
	return 0;
drop:
	client_free(c);
	return 0;
}

static int client_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	struct client *c = userdata;
	if (!c->subscribed)
		client_free(c);
	else
		sd_event_source_set_time_relative(c->timer, c->ctl->idle_usec);
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control *ctl = userdata;
	(void)s;
	(void)revents;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		close(cfd);
		return 0;
	}
	if (ctl->nr_clients >= MAX_CLIENTS) {
		char *line = protocol_reply_error(NULL, "too many clients");
		if (line) {
			(void)send(cfd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
			free(line);
		}
		close(cfd);
		return 0;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return 0;
	}
	c->ctl = ctl;
	c->fd = cfd;
	if (sd_event_add_io(ctl->event, &c->io, cfd, EPOLLIN | EPOLLRDHUP, client_io, c) < 0 ||
	    sd_event_add_time_relative(ctl->event, &c->timer, CLOCK_MONOTONIC, ctl->idle_usec, 0,
				       client_idle, c) < 0) {
		sd_event_source_disable_unref(c->io);
		close(cfd);
		free(c);
		return 0;
	}
	c->next = ctl->clients;
	ctl->clients = c;
	ctl->nr_clients++;
	return 0;
}

int control_start(struct control **out, struct vm *vm, sd_event *event, const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_err("control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->vm = vm;
	ctl->event = event;
	ctl->idle_usec = CLIENT_IDLE_USEC;
	uint64_t ms;
	const char *env = getenv("KVMHOST_CLIENT_IDLE_MS");
	if (env && parse_u64(env, &ms) == 0 && ms > 0 && ms < 3600000)
		ctl->idle_usec = ms * 1000;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	strcpy(addr.sun_path, path);
	int r;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->fd < 0) {
		r = -errno;
		goto fail;
	}
	/* The name lock is held, so a socket here is a dead VM's leftover. */
	unlink(path);
	mode_t old = umask(0077);
	r = bind(ctl->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	umask(old);
	if (r || chmod(path, 0600) < 0 || listen(ctl->fd, 16) < 0) {
		r = r ? r : -errno;
		log_err("control socket %s: %s", path, strerror(-r));
		goto fail;
	}
	if ((r = sd_event_add_io(event, &ctl->listen_src, ctl->fd, EPOLLIN, on_accept, ctl)) < 0)
		goto fail;
	*out = ctl;
	return 0;
fail:
	if (ctl->fd >= 0) {
		close(ctl->fd);
		unlink(path);
	}
	free(ctl);
	return r;
}

void control_stop(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients) {
		struct client *c = ctl->clients;
		client_flush(c);
		client_free(c);
	}
	sd_event_source_disable_unref(ctl->listen_src);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
}

void control_set_handler(struct control *ctl, control_cmd_fn fn, void *opaque)
{
	ctl->ext_fn = fn;
	ctl->ext_opaque = opaque;
}

void control_set_status_hook(struct control *ctl, control_status_fn fn, void *opaque)
{
	ctl->status_fn = fn;
	ctl->status_opaque = opaque;
}

void control_emit_event(struct control *ctl, const char *name, json_object *fields)
{
	if (!ctl) {
		json_object_put(fields);
		return;
	}
	json_object *o = fields ? fields : json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(name));
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	struct client *c = ctl->clients, *next;
	for (; c; c = next) {
		next = c->next;
		if (!c->subscribed)
			continue;
		size_t n = strlen(s);
		char *line = malloc(n + 2);
		if (!line)
			continue;
		memcpy(line, s, n);
		memcpy(line + n, "\n", 2);
		/* Not freed here: the caller may be serving this very client.
		 * Its io source sees the hang-up and frees it. */
		if (client_send(c, line) < 0)
			shutdown(c->fd, SHUT_RDWR);
	}
	json_object_put(o);
}
