/* The control protocol's wire format: a request line parsed strictly
 * (RFC 8259 JSON, one object with "cmd" and optional "args" and "id") and
 * each reply built as one line. No socket and no VM here: the unit tests
 * and fuzz/fuzz_protocol.c drive it directly. */
#include "control/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int protocol_parse_request(const char *line, size_t len, struct ctl_request *req, struct error *err)
{
	memset(req, 0, sizeof(*req));
	json_tokener *tok = NULL;
	if (len > PROTOCOL_MAX_LINE) {
		error_setf(err, "request too long (at most %d bytes)", PROTOCOL_MAX_LINE);
		goto fail;
	}
	if (memchr(line, '\0', len)) {
		error_setf(err, "request contains a NUL byte");
		goto fail;
	}
	tok = json_tokener_new_ex(16);
	if (!tok) {
		error_setf(err, "out of memory");
		goto fail;
	}
	/* RFC 8259 only: no single quotes, trailing commas or bad UTF-8 (whose
	 * bytes a reply would echo); trailing white space is checked below. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
					    JSON_TOKENER_VALIDATE_UTF8);
	req->root = json_tokener_parse_ex(tok, line, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	/* A bare literal or number at the end of the line (`null`, `5`) waits
	 * for more input; the line has ended, so tell the tokener. */
	if (jerr == json_tokener_continue && !req->root) {
		req->root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	if (jerr != json_tokener_success) {
		error_setf(err, "malformed JSON: %s",
			   jerr == json_tokener_continue ? "incomplete"
							 : json_tokener_error_desc(jerr));
		goto fail;
	}
	if (!req->root) {
		error_setf(err, "a request must be a JSON object");
		goto fail;
	} /* null */
	/* Nothing but white space may follow the object. */
	for (size_t i = end; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
			error_setf(err, "trailing data after the JSON object");
			goto fail;
		}
	if (!json_object_is_type(req->root, json_type_object)) {
		error_setf(err, "a request must be a JSON object");
		goto fail;
	}
	json_object_object_get_ex(req->root, "id", &req->id);
	json_object *cmd;
	if (!json_object_object_get_ex(req->root, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		error_setf(err, "missing \"cmd\" string");
		goto fail;
	}
	req->cmd = json_object_get_string(cmd);
	if ((size_t)json_object_get_string_len(cmd) != strlen(req->cmd)) {
		error_setf(err, "\"cmd\" contains a NUL character");
		goto fail;
	}
	if (json_object_object_get_ex(req->root, "args", &req->args) &&
	    !json_object_is_type(req->args, json_type_object)) {
		error_setf(err, "\"args\" must be an object");
		goto fail;
	}
	json_tokener_free(tok);
	return 0;
fail:
	if (tok)
		json_tokener_free(tok);
	/* Keep a well-formed object so the error reply can echo its id. */
	if (req->root && !json_object_is_type(req->root, json_type_object))
		protocol_request_free(req);
	return -EINVAL;
}

char *protocol_quote(const char *s, char *out, size_t outlen)
{
	size_t n = strnlen(s, outlen - 1);
	/* Cut at a character boundary: never leave half a UTF-8 sequence. */
	if (s[n] != '\0')
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

void protocol_request_free(struct ctl_request *req)
{
	if (req->root)
		json_object_put(req->root);
	memset(req, 0, sizeof(*req));
}

static char *finish(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	json_object_put(o);
	return line;
}

static json_object *reply_base(const struct ctl_request *req, bool ok)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (req && req->id)
		json_object_object_add(o, "id", json_object_get(req->id));
	return o;
}

char *protocol_reply_ok(const struct ctl_request *req, json_object *result)
{
	json_object *o = reply_base(req, true);
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	return finish(o);
}

char *protocol_reply_error(const struct ctl_request *req, const char *msg)
{
	json_object *o = reply_base(req, false);
	json_object_object_add(o, "error", json_object_new_string(msg));
	return finish(o);
}

json_object *protocol_cpu_list_json(const cpu_set_t *set)
{
	json_object *a = json_object_new_array();
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set))
			json_object_array_add(a, json_object_new_int(c));
	return a;
}
