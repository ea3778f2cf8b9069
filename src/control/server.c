/* The VM's control socket, served on the main loop: JSON lines from up to
 * MAX_CLIENTS peers, each with its own input and a bounded output buffer,
 * so a slow or idle client can neither block the VM nor lock others out.
 * The commands and status parts are whatever modules registered; a
 * client that sends `subscribe` gets every event from then on. */
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
#include "util/event.h"
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
	uint64_t last_request_ns; /* connected, or last completed a request */
	struct client *next;
};

struct control_cmd {
	char *name;
	control_cmd_fn fn;
	void *opaque;
};

struct control_status_part {
	control_status_fn fn;
	void *opaque;
};

struct control {
	sd_event *event;
	bool bound; /* the socket file at path is ours */
	int fd;
	sd_event_source *listen_src;
	char path[108];
	struct client *clients;
	int nr_clients;
	struct control_cmd *cmds;
	int nr_cmds;
	struct control_status_part *parts;
	int nr_parts;
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
	event_io_events(c->io, EPOLLIN | EPOLLRDHUP | (c->out_len ? EPOLLOUT : 0));
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

static json_object *status_json(struct control *ctl)
{
	json_object *o = json_object_new_object();
	for (int i = 0; i < ctl->nr_parts; i++)
		ctl->parts[i].fn(ctl->parts[i].opaque, o);
	return o;
}

static json_object *handle(struct client *c, struct ctl_request *req, struct error *err)
{
	struct control *ctl = c->ctl;
	if (!strcmp(req->cmd, "status"))
		return status_json(ctl);
	if (!strcmp(req->cmd, "subscribe")) {
		c->subscribed = true;
		return json_object_new_object();
	}
	for (int i = 0; i < ctl->nr_cmds; i++)
		if (!strcmp(req->cmd, ctl->cmds[i].name))
			return ctl->cmds[i].fn(ctl->cmds[i].opaque, req->args, err);
	char name[65];
	error_setf(err, "unknown command '%s'", protocol_quote(req->cmd, name, sizeof(name)));
	return NULL;
}

static int client_line(struct client *c, const char *line, size_t len)
{
	struct ctl_request req;
	struct error err = {0};
	if (protocol_parse_request(line, len, &req, &err)) {
		int r = client_send(c, protocol_reply_error(&req, err.msg));
		protocol_request_free(&req);
		return r;
	}
	json_object *result = handle(c, &req, &err);
	char *reply =
		result ? protocol_reply_ok(&req, result) : protocol_reply_error(&req, err.msg);
	protocol_request_free(&req);
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
		/* Idle time counts from the last complete request: bytes that
		 * never make one (a space every few seconds) do not keep a slot. */
		c->last_request_ns = now_ns();
		event_timer_rearm(c->timer, c->ctl->idle_usec);
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
		event_timer_rearm(c->timer, c->ctl->idle_usec);
	return 0;
}

/* With every slot taken, the client that has gone longest without a
 * complete request makes room - a subscriber only for root - so a few
 * idle or stalling peers cannot lock everyone out. */
static bool make_room(struct control *ctl, bool root)
{
	struct client *oldest = NULL;
	for (int pass = 0; pass < (root ? 2 : 1) && !oldest; pass++)
		for (struct client *c = ctl->clients; c; c = c->next)
			if ((pass || !c->subscribed) &&
			    (!oldest || c->last_request_ns < oldest->last_request_ns))
				oldest = c;
	if (!oldest)
		return false;
	client_send(oldest, protocol_reply_error(NULL, "dropped to make room for another client"));
	client_free(oldest);
	return true;
}

/* Says why in one line and hangs up: the peer learns what went wrong. */
static void refuse(int cfd, const char *why)
{
	char *line = protocol_reply_error(NULL, why);
	if (line) {
		(void)!send(cfd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
		free(line);
	}
	close(cfd);
}

static void add_client(struct control *ctl, int cfd)
{
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	c->ctl = ctl;
	c->fd = cfd;
	c->last_request_ns = now_ns();
	if (sd_event_add_io(ctl->event, &c->io, cfd, EPOLLIN | EPOLLRDHUP, client_io, c) < 0 ||
	    sd_event_add_time_relative(ctl->event, &c->timer, CLOCK_MONOTONIC, ctl->idle_usec, 0,
				       client_idle, c) < 0) {
		sd_event_source_disable_unref(c->io);
		close(cfd);
		free(c);
		return;
	}
	c->next = ctl->clients;
	ctl->clients = c;
	ctl->nr_clients++;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control *ctl = userdata;
	(void)s, (void)revents;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		close(cfd);
		return 0;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		char why[96];
		snprintf(why, sizeof(why), "permission denied: this VM belongs to uid %u",
			 (unsigned)geteuid());
		refuse(cfd, why);
		return 0;
	}
	if (ctl->nr_clients >= MAX_CLIENTS && !make_room(ctl, cred.uid == 0)) {
		refuse(cfd, "too many clients");
		return 0;
	}
	add_client(ctl, cfd);
	return 0;
}

/* Takes PATH for our socket. Only a stale socket is removed: a live VM's
 * answers a connect (and is named by its pid); anything but a socket is
 * never touched. */
static int claim_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control socket %s: something that is not a socket is there; not removing "
			"it",
			path);
		return -EADDRINUSE;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int r = 0;
	struct ucred cred = {0};
	socklen_t clen = sizeof(cred);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		r = errno;
	else /* only for the message below: pid 0 where it cannot be read */
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
	close(fd);
	if (!r || r == EAGAIN) {
		log_err("control socket %s: in use by a running VM (pid %d)", path, (int)cred.pid);
		return -EADDRINUSE;
	}
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int control_start(struct control **out, sd_event *event, const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_err("control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
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
	r = claim_path(path);
	if (r)
		goto fail;
	mode_t old = umask(0077);
	r = bind(ctl->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	umask(old);
	if (r)
		goto fail;
	ctl->bound = true;
	if (chmod(path, 0600) < 0 || listen(ctl->fd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &ctl->listen_src, ctl->fd, EPOLLIN, on_accept, ctl);
	if (r < 0)
		goto fail;
	*out = ctl;
	return 0;
fail:
	if (ctl->fd >= 0)
		close(ctl->fd);
	if (ctl->bound)
		unlink(path); /* ours: nobody else's file is ever removed */
	free(ctl);
	log_err("control socket %s: %s", path, strerror(-r));
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
	for (int i = 0; i < ctl->nr_cmds; i++)
		free(ctl->cmds[i].name);
	free(ctl->cmds);
	free(ctl->parts);
	free(ctl);
}

int control_register(struct control *ctl, const char *name, control_cmd_fn fn, void *opaque)
{
	if (!strcmp(name, "status") || !strcmp(name, "subscribe"))
		return -EEXIST;
	for (int i = 0; i < ctl->nr_cmds; i++)
		if (!strcmp(ctl->cmds[i].name, name))
			return -EEXIST;
	struct control_cmd *grown = realloc(ctl->cmds, sizeof(*grown) * (size_t)(ctl->nr_cmds + 1));
	if (!grown)
		return -ENOMEM;
	ctl->cmds = grown;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	ctl->cmds[ctl->nr_cmds++] = (struct control_cmd){copy, fn, opaque};
	return 0;
}

int control_add_status(struct control *ctl, control_status_fn fn, void *opaque)
{
	struct control_status_part *grown =
		realloc(ctl->parts, sizeof(*grown) * (size_t)(ctl->nr_parts + 1));
	if (!grown)
		return -ENOMEM;
	ctl->parts = grown;
	ctl->parts[ctl->nr_parts++] = (struct control_status_part){fn, opaque};
	return 0;
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
