/* A migration's sockets (net.h): `unix:` and `tcp:` addresses parsed,
 * resolved on the main thread ahead of time, connected or accepted (unix
 * peers of our uid or root only) with deep buffers. Every read and write
 * polls the socket together with the cancel fd, so a cancel or a peer
 * silent for too long ends any wait. */
#include "migration/net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration/stream.h"
#include "util/util.h"

int mig_addr_parse(const char *s, struct mig_addr *a, struct error *err)
{
	memset(a, 0, sizeof(*a));
	if (strlen(s) >= sizeof(a->text))
		return error_setf(err, "address too long");
	snprintf(a->text, sizeof(a->text), "%s", s);
	if (!strncmp(s, "unix:", 5)) {
		a->kind = MIG_ADDR_UNIX;
		if (s[5] != '/' || strlen(s + 5) >= sizeof(a->path))
			return error_setf(err, "unix:PATH needs an absolute path under %zu bytes",
					  sizeof(a->path));
		snprintf(a->path, sizeof(a->path), "%s", s + 5);
		return 0;
	}
	const char *colon = strrchr(s, ':');
	uint64_t port;
	if (strncmp(s, "tcp:", 4) || colon == s + 3 || parse_u64(colon + 1, &port) ||
	    port > 65535 || (size_t)(colon - (s + 4)) >= sizeof(a->host))
		return error_setf(err, "'%s': expected unix:PATH or tcp:HOST:PORT", s);
	a->kind = MIG_ADDR_TCP;
	/* [::1]:port as well as 127.0.0.1:port */
	const char *host = s + 4;
	size_t n = (size_t)(colon - host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		host++, n -= 2;
	snprintf(a->host, sizeof(a->host), "%.*s", (int)n, host);
	snprintf(a->port, sizeof(a->port), "%llu", (unsigned long long)port);
	return 0;
}

/* Until fd is ready for `events`: 0, -ECANCELED, -ETIMEDOUT or -errno. */
static int wait_fd(const struct mig_conn *c, short events)
{
	struct pollfd p[2] = {{c->fd, events, 0}, {c->cancel_fd, POLLIN, 0}};
	for (;;) {
		int n = poll(p, c->cancel_fd >= 0 ? 2 : 1, c->timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (p[1].revents)
			return -ECANCELED;
		return 0;
	}
}

int mig_conn_read(void *conn, void *buf, size_t n)
{
	struct mig_conn *c = conn;
	uint8_t *p = buf;
	while (n) {
		ssize_t r = recv(c->fd, p, n, MSG_DONTWAIT);
		if (r > 0) {
			p += r, n -= (size_t)r;
			continue;
		}
		if (r == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		int w = wait_fd(c, POLLIN);
		if (w)
			return w;
	}
	return 0;
}

int mig_conn_writev(struct mig_conn *c, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			int r = wait_fd(c, POLLOUT);
			if (r)
				return r;
			continue;
		}
		while (n > 0 && (size_t)w >= iov->iov_len)
			w -= (ssize_t)iov->iov_len, iov++, n--;
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int mig_send(struct mig_conn *c, uint32_t type, const void *payload, uint64_t len)
{
	struct mig_msg_hdr h = {.type = type, .len = len};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, len}};
	return mig_conn_writev(c, iov, len ? 2 : 1);
}

int mig_send_error(struct mig_conn *c, const char *text)
{
	size_t n = strlen(text);
	return mig_send(c, MIG_ERROR, text, n < MIG_MAX_ERROR ? n : MIG_MAX_ERROR);
}

void mig_conn_close(struct mig_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int unix_sockaddr(const struct mig_addr *a, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", a->path);
	return 0;
}

static int connect_one(struct mig_conn *c, const struct sockaddr *sa, socklen_t len)
{
	if (connect(c->fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	int r = wait_fd(c, POLLOUT), e = 0;
	socklen_t el = sizeof(e);
	if (!r && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		r = -errno;
	return r ? r : -e;
}

/* Deep buffers both ways: the source keeps writing while the destination
 * maps a run of fresh pages, and the reverse. Root may go past wmem_max. */
static void deep_buffers(int fd)
{
	int n = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &n, sizeof(n)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof(n)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

int mig_resolve(const struct mig_addr *a, struct mig_target *t, struct error *err)
{
	memset(t, 0, sizeof(*t));
	if (a->kind == MIG_ADDR_UNIX) {
		struct sockaddr_un *sa = (struct sockaddr_un *)&t->addr[0];
		unix_sockaddr(a, sa);
		t->len[0] = sizeof(*sa);
		t->family[0] = AF_UNIX;
		t->n = 1;
		return 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int g = getaddrinfo(a->host, a->port, &hints, &res);
	if (g)
		return error_setf(err, "%s: %s", a->text, gai_strerror(g));
	for (struct addrinfo *ai = res; ai && t->n < MIG_MAX_TARGETS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(t->addr[0]))
			continue;
		memcpy(&t->addr[t->n], ai->ai_addr, ai->ai_addrlen);
		t->len[t->n] = ai->ai_addrlen;
		t->family[t->n++] = ai->ai_family;
	}
	freeaddrinfo(res);
	return t->n ? 0 : error_setf(err, "%s: no address", a->text);
}

int mig_connect(const struct mig_addr *a, const struct mig_target *t, struct mig_conn *c,
		struct error *err)
{
	int r = -EADDRNOTAVAIL;
	for (int i = 0; i < t->n && r; i++) {
		mig_conn_close(c);
		c->fd = socket(t->family[i], SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		r = c->fd < 0 ? -errno
			      : connect_one(c, (const struct sockaddr *)&t->addr[i], t->len[i]);
	}
	if (r) {
		mig_conn_close(c);
		return error_set_errno(err, -r, "cannot connect to %s", a->text);
	}
	int one = 1;
	if (a->kind == MIG_ADDR_TCP)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	deep_buffers(c->fd);
	return 0;
}

static int listen_unix(const struct mig_addr *a, int *fd)
{
	struct sockaddr_un sa;
	unix_sockaddr(a, &sa);
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (*fd < 0)
		return -errno;
	mode_t old = umask(0177); /* 0600 from the start: no window */
	int r = bind(*fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EADDRINUSE) {
		/* A file nobody listens on is left over; one that answers is not ours. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool alive = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		struct stat st;
		if (!alive && lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(a->path);
		r = bind(*fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	int e = errno;
	umask(old);
	return r < 0 ? -e : 0;
}

static int listen_tcp(const struct mig_addr *a, int *fd)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
	if (getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res))
		return -EADDRNOTAVAIL;
	int r = -EADDRNOTAVAIL, one = 1;
	for (struct addrinfo *ai = res; ai && r; ai = ai->ai_next) {
		*fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (*fd < 0)
			continue;
		(void)setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		r = bind(*fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
		if (r) {
			close(*fd);
			*fd = -1;
		}
	}
	freeaddrinfo(res);
	return r;
}

int mig_listen(const struct mig_addr *a, int *fd, struct error *err)
{
	*fd = -1;
	int r = a->kind == MIG_ADDR_UNIX ? listen_unix(a, fd) : listen_tcp(a, fd);
	if (!r && listen(*fd, 1) < 0)
		r = -errno;
	if (r) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return error_set_errno(err, -r, "cannot listen on %s", a->text);
	}
	return 0;
}

static int check_peer(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	return cr.uid == 0 || cr.uid == geteuid() ? 0 : -EPERM;
}

/* The next connection from an allowed peer into c->fd: 0 or -errno
 * (-ECANCELED when told to stop). */
static int accept_peer(int lfd, const struct mig_addr *a, struct mig_conn *c)
{
	struct mig_conn l = {.fd = lfd, .cancel_fd = c->cancel_fd, .timeout_ms = -1};
	for (;;) {
		c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c->fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			int r = wait_fd(&l, POLLIN);
			if (r)
				return r;
			continue;
		}
		if (a->kind != MIG_ADDR_UNIX || !check_peer(c->fd))
			return 0;
		log_warn("%s: a peer with another uid was refused", a->text);
		mig_conn_close(c);
	}
}

int mig_accept(int lfd, const struct mig_addr *a, struct mig_conn *c, struct error *err)
{
	int r = accept_peer(lfd, a, c);
	close(lfd);
	if (a->kind == MIG_ADDR_UNIX)
		unlink(a->path);
	if (r)
		return error_setf(err, "waiting on %s: %s", a->text,
				  r == -ECANCELED ? "stopped" : strerror(-r));
	int one = 1;
	if (a->kind == MIG_ADDR_TCP)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	deep_buffers(c->fd);
	return 0;
}
