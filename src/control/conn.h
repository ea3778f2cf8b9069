/* The client's side of a control socket: every step - connect, send,
 * receive - bounded by a deadline, replies read in buffered lines, and many
 * VMs asked at once (for `list` and `ctl --all`), so a stopped or hung VM
 * costs its deadline and never more. */
#ifndef KVMHOST_CONN_H
#define KVMHOST_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_NO_DEADLINE 0 /* wait as long as it takes (events) */

struct conn {
	int fd;
	char *buf; /* what was received and not yet returned as a line */
	size_t len, cap;
};

/* CLOCK_MONOTONIC ns, `ms` from now. */
uint64_t conn_deadline(int ms);

/* -errno: -ETIMEDOUT if the VM did not accept in time (its backlog full
 * because it is stopped, say). */
int conn_open(struct conn *c, const char *path, uint64_t deadline);
void conn_close(struct conn *c);
int conn_send(struct conn *c, const char *line, uint64_t deadline);
/* The next line (without its newline; caller frees), or -ETIMEDOUT,
 * -ECONNRESET at end of stream, -errno. */
int conn_read_line(struct conn *c, char **line, uint64_t deadline);

/* One VM asked one thing among many. */
struct conn_ask {
	const char *name;
	struct conn c;
	char *reply; /* the reply line, or NULL */
	int err;     /* why there is none: -ETIMEDOUT, -ECONNREFUSED... */
};

/* Reads what arrived for every ask still waiting for its reply, then waits
 * up to `wait_ms` for more; returns whether any is still waiting. */
bool conn_ask_collect(struct conn_ask *asks, size_t n, int wait_ms);

#endif
