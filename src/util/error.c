/* struct error: the message, errno and exit status of a failure, set where
 * the cause is known and carried up to whoever reports it. */
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int negative(int errnum)
{
	return errnum > 0 ? -errnum : -EINVAL;
}

static void error_vset(struct error *err, enum kvmhost_status status, int errnum, const char *fmt,
		       va_list ap)
{
	if (!err)
		return;
	err->status = status == STATUS_OK ? STATUS_ERROR : status;
	err->errnum = errnum;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int error_set(struct error *err, enum kvmhost_status status, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, status, errnum, fmt, ap);
	va_end(ap);
	return negative(errnum);
}

int error_setf(struct error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, STATUS_ERROR, EINVAL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int error_set_errno(struct error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, STATUS_ERROR, errnum, fmt, ap);
	va_end(ap);
	if (err) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
	}
	return negative(errnum);
}

int error_prepend(struct error *err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL;
	char head[ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	/* The callee's message is cut at the end, never the context. */
	size_t room = sizeof(err->msg) - 1, h = strlen(head), m = strnlen(err->msg, room);
	if (m > room - h)
		m = room - h;
	memmove(err->msg + h, err->msg, m);
	memcpy(err->msg, head, h);
	err->msg[h + m] = '\0';
	if (err->status == STATUS_OK)
		err->status = STATUS_ERROR;
	return negative(err->errnum);
}

void error_set_status(struct error *err, enum kvmhost_status status)
{
	if (err)
		err->status = status;
}

enum kvmhost_status error_status(const struct error *err, enum kvmhost_status dflt)
{
	return err && err->status != STATUS_OK ? err->status : dflt;
}
