/* Where a migration goes: `unix:PATH` (0600, peers with the VMM's uid or
 * root only, as the control socket) or `tcp:HOST:PORT` (no encryption or
 * authentication of its own: a private network or a tunnel). Reads and
 * writes wait on the socket and on a cancel fd (an eventfd or a signalfd)
 * together, and give up after a time without progress. */
#ifndef KVMHOST_MIGRATION_NET_H
#define KVMHOST_MIGRATION_NET_H

#include "util/error.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum mig_addr_kind { MIG_ADDR_UNIX, MIG_ADDR_TCP };

struct mig_addr {
	enum mig_addr_kind kind;
	char path[108];
	char host[256];
	char port[8];
	char text[400]; /* as given */
};

int mig_addr_parse(const char *s, struct mig_addr *a, struct error *err);

struct mig_conn {
	int fd;
	int cancel_fd;	/* readable: give up (-ECANCELED) */
	int timeout_ms; /* without progress: -ETIMEDOUT */
};

/* mig_read_fn for a connection. */
int mig_conn_read(void *conn, void *buf, size_t n);
int mig_conn_writev(struct mig_conn *c, struct iovec *iov, int n);
int mig_send(struct mig_conn *c, uint32_t type, const void *payload, uint64_t len);
/* An ERROR message with the text; failures to send are the caller's to ignore. */
int mig_send_error(struct mig_conn *c, const char *text);
void mig_conn_close(struct mig_conn *c);

/* Where ADDR's name points, resolved beforehand (a sandboxed copy thread
 * cannot read resolver files). */
#define MIG_MAX_TARGETS 4
struct mig_target {
	struct sockaddr_storage addr[MIG_MAX_TARGETS];
	socklen_t len[MIG_MAX_TARGETS];
	int family[MIG_MAX_TARGETS];
	int n;
};
int mig_resolve(const struct mig_addr *a, struct mig_target *t, struct error *err);
/* Tries each of t's addresses in turn. */
int mig_connect(const struct mig_addr *a, const struct mig_target *t, struct mig_conn *c,
		struct error *err);
/* The listening socket (unix: created 0600; a stale one replaced). */
int mig_listen(const struct mig_addr *a, int *fd, struct error *err);
/* One peer; unix peers must be root or this process's uid. Closes lfd and
 * removes a unix socket's file, taken or not. */
int mig_accept(int lfd, const struct mig_addr *a, struct mig_conn *c, struct error *err);

#endif
