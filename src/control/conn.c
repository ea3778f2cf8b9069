/* Control-socket connections for clients: connect, send and read lines,
 * each by a deadline (poll, never a blocking call), and many VMs asked at
 * once over one poll. A Unix connect to a full backlog fails with EAGAIN
 * rather than waiting, so it is retried until the deadline. */
#include "control/conn.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define MAX_REPLY (64u << 20)

uint64_t conn_deadline(int ms)
{
	return now_ns() + (uint64_t)ms * 1000000ull;
}

/* Milliseconds left for poll(): -1 for no deadline, 0 once it passed. */
static int left_ms(uint64_t deadline)
{
	if (deadline == CONN_NO_DEADLINE)
		return -1;
	uint64_t now = now_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

int conn_open(struct conn *c, const char *path, uint64_t deadline)
{
	*c = (struct conn){.fd = -1};
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -errno;
	/* A Unix socket's connect does not go in progress: with the listener's
	 * backlog full it says EAGAIN, and we try again until the deadline. */
	while (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;
		if (err != EAGAIN && err != EINTR) {
			conn_close(c);
			return -err;
		}
		if (left_ms(deadline) == 0) {
			conn_close(c);
			return -ETIMEDOUT;
		}
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

int conn_send(struct conn *c, const char *line, uint64_t deadline)
{
	size_t len = strlen(line), done = 0;
	while (done < len) {
		ssize_t w = send(c->fd, line + done, len - done, MSG_NOSIGNAL);
		if (w >= 0) {
			done += (size_t)w;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		struct pollfd p = {.fd = c->fd, .events = POLLOUT};
		if (poll(&p, 1, left_ms(deadline)) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* A complete line from the buffer, if there is one. */
static char *take_line(struct conn *c)
{
	char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
	if (!nl)
		return NULL;
	size_t n = (size_t)(nl - c->buf);
	char *line = malloc(n + 1);
	if (!line)
		return NULL;
	memcpy(line, c->buf, n);
	line[n] = '\0';
	memmove(c->buf, nl + 1, c->len - n - 1);
	c->len -= n + 1;
	return line;
}

/* One recv into the buffer: >0 bytes, 0 would block, <0 error or EOF. */
static int fill(struct conn *c)
{
	if (c->cap - c->len < 65536) {
		if (c->cap >= MAX_REPLY)
			return -EMSGSIZE;
		size_t cap = c->cap ? c->cap * 2 : 65536;
		char *g = realloc(c->buf, cap);
		if (!g)
			return -ENOMEM;
		c->buf = g;
		c->cap = cap;
	}
	ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (n > 0) {
		c->len += (size_t)n;
		return (int)n;
	}
	if (n == 0)
		return -ECONNRESET;
	return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

int conn_read_line(struct conn *c, char **line, uint64_t deadline)
{
	for (;;) {
		*line = take_line(c);
		if (*line)
			return 0;
		int r = fill(c);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int ms = left_ms(deadline);
		if (ms == 0 || poll(&p, 1, ms) == 0)
			return -ETIMEDOUT;
	}
}

/* Reads whatever is there for each open ask still waiting; true if any is. */
static bool serve(struct conn_ask *asks, size_t n, struct pollfd *p)
{
	bool waiting = false;
	for (size_t i = 0; i < n; i++) {
		struct conn_ask *a = &asks[i];
		p[i] = (struct pollfd){.fd = -1};
		if (a->c.fd < 0 || a->reply || a->err)
			continue;
		int r;
		while ((r = fill(&a->c)) > 0)
			;
		a->reply = take_line(&a->c);
		if (a->reply)
			continue;
		if (r < 0) {
			a->err = r;
			continue;
		}
		p[i] = (struct pollfd){.fd = a->c.fd, .events = POLLIN};
		waiting = true;
	}
	return waiting;
}

bool conn_ask_collect(struct conn_ask *asks, size_t n, int wait_ms)
{
	struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
	if (!p)
		return false;
	bool waiting = serve(asks, n, p);
	if (waiting && wait_ms > 0 && poll(p, (nfds_t)n, wait_ms) > 0)
		waiting = serve(asks, n, p);
	free(p);
	return waiting;
}
