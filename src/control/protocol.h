/* The control protocol: one JSON object per line each way, parsed and built
 * with json-c. Kept apart from sockets and from the VM so it can be tested
 * and fuzzed. Which commands exist is up to whoever registered them. */
#ifndef KVMHOST_PROTOCOL_H
#define KVMHOST_PROTOCOL_H

#include "util/error.h"
#include <json-c/json.h>
#include <sched.h>
#include <stddef.h>

#define PROTOCOL_MAX_LINE 65536

struct ctl_request {
	const char *cmd;   /* points into root */
	json_object *root; /* owns the parsed request; put with protocol_request_free */
	json_object *args; /* may be NULL */
	json_object *id;   /* echoed back if present */
};

/* Returns 0 or -1 with a message for the client in err; either way the
 * caller frees req (on error it may still hold the object, for its id). */
int protocol_parse_request(const char *line, size_t len, struct ctl_request *req,
			   struct error *err);
void protocol_request_free(struct ctl_request *req);

/* Reply lines, newline-terminated; caller frees. `result` is consumed. */
char *protocol_reply_ok(const struct ctl_request *req, json_object *result);
char *protocol_reply_error(const struct ctl_request *req, const char *msg);

json_object *protocol_cpu_list_json(const cpu_set_t *set);
/* At most outlen - 1 bytes of s, cut at a UTF-8 character boundary, for
 * quoting what a client sent in a reply. Returns out. */
char *protocol_quote(const char *s, char *out, size_t outlen);

#endif
