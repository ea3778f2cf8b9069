/* The one error convention (after QEMU's Error **, without allocation): a
 * function that can fail returns a negative errno; where the caller needs
 * more than the errno - a message naming the cause, the exit status it
 * calls for - it also takes a `struct error *` and fills it. Only main
 * turns one into an exit status; the others add context or report it. */
#ifndef KVMHOST_ERROR_H
#define KVMHOST_ERROR_H

#include "util/exit_status.h"

#define ERROR_MSG_MAX 1024

struct error {
	enum kvmhost_status status; /* STATUS_OK: nothing went wrong (yet) */
	int errnum;		    /* the cause's errno (positive), 0 where none */
	char msg[ERROR_MSG_MAX];
};

/* Fills err (which may be NULL) and returns -errnum (-EINVAL for 0), so a
 * failing function can end with `return error_set(...)`. */
int error_set(struct error *err, enum kvmhost_status status, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The common case: a cause that calls for the generic status 1, errno EINVAL. */
int error_setf(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A system call's failure: the message, ": ", strerror(errnum); status 1. */
int error_set_errno(struct error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Puts "CONTEXT" in front of a message a callee set ("--disk X: " + its
 * reason), keeping its status and errno; returns -errnum like error_set. */
int error_prepend(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The cause a callee found calls for `status` here (a disk that cannot be
 * opened: STATUS_DISK), whatever the callee said. */
void error_set_status(struct error *err, enum kvmhost_status status);
/* The status a failure calls for: err's own where one was set, else `dflt`. */
enum kvmhost_status error_status(const struct error *err, enum kvmhost_status dflt);

#endif
