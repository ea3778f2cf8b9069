#include "control/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[] = {
	[CMD_STATUS] = "status", [CMD_PAUSE] = "pause",	      [CMD_RESUME] = "resume",
	[CMD_QUIT] = "quit",	 [CMD_POWEROFF] = "poweroff", [CMD_SUBSCRIBE] = "subscribe",
	[CMD_PIN] = "pin",	 [CMD_REGS] = "regs",	      [CMD_HOST_SLEEP] = "host-sleep",
};

const char *protocol_cmd_name(enum ctl_cmd cmd)
{
	return cmd_names[cmd];
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		goto fail;                                                                         \
	} while (0)

int protocol_parse_request(const char *line, size_t len, struct ctl_request *req, char *err,
			   size_t errlen)
{
	memset(req, 0, sizeof(*req));
	json_tokener *tok = NULL;
	if (len > PROTOCOL_MAX_LINE)
		FAIL("request too long (at most %d bytes)", PROTOCOL_MAX_LINE);
	if (memchr(line, '\0', len))
		FAIL("request contains a NUL byte");
	tok = json_tokener_new_ex(16);
	if (!tok)
		FAIL("out of memory");
	req->root = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (!req->root || jerr != json_tokener_success)
		FAIL("malformed JSON: %s",
		     jerr == json_tokener_continue ? "incomplete" : json_tokener_error_desc(jerr));
	/* Nothing but white space may follow the object. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			FAIL("trailing data after the JSON object");
	if (!json_object_is_type(req->root, json_type_object))
		FAIL("a request must be a JSON object");
	json_object_object_get_ex(req->root, "id", &req->id);
	json_object *cmd;
	if (!json_object_object_get_ex(req->root, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string))
		FAIL("missing \"cmd\" string");
	const char *name = json_object_get_string(cmd);
	bool found = false;
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++) {
		if (cmd_names[i] && !strcmp(name, cmd_names[i])) {
			req->cmd = (enum ctl_cmd)i;
			found = true;
		}
	}
	if (!found)
		FAIL("unknown command '%.64s'", name);
	if (json_object_object_get_ex(req->root, "args", &req->args) &&
	    !json_object_is_type(req->args, json_type_object))
		FAIL("\"args\" must be an object");
	json_tokener_free(tok);
	return 0;
fail:
	if (tok)
		json_tokener_free(tok);
	/* Keep a well-formed object so the error reply can echo its id. */
	if (req->root && !json_object_is_type(req->root, json_type_object))
		ctl_request_free(req);
	return -1;
}

void ctl_request_free(struct ctl_request *req)
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

json_object *protocol_status_json(const struct vm_status *st)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(st->name));
	json_object_object_add(o, "pid", json_object_new_int(st->pid));
	json_object_object_add(o, "state", json_object_new_string(st->state));
	json_object_object_add(o, "memory_mib", json_object_new_uint64(st->memory_mib));
	json_object_object_add(o, "uptime_s", json_object_new_double(st->uptime_s));
	json_object_object_add(o, "unhandled_pio", json_object_new_uint64(st->unhandled_pio));
	json_object_object_add(o, "unhandled_mmio", json_object_new_uint64(st->unhandled_mmio));
	json_object *vcpus = json_object_new_array();
	for (uint32_t i = 0; i < st->nr_vcpus; i++) {
		const struct vcpu_status *v = &st->vcpus[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_int(v->index));
		json_object_object_add(j, "tid", json_object_new_int(v->tid));
		json_object_object_add(j, "host_cpu", json_object_new_int(v->host_cpu));
		json_object_object_add(j, "state", json_object_new_string(v->state));
		/* `pinned` is the real affinity of a pinned vCPU; `desired` what was asked. */
		json_object_object_add(
			j, "pinned",
			v->has_pin && v->has_actual ? protocol_cpu_list_json(&v->actual) : NULL);
		json_object_object_add(j, "desired",
				       v->has_pin ? protocol_cpu_list_json(&v->desired) : NULL);
		json_object_object_add(j, "displaced", json_object_new_boolean(v->displaced));
		json_object_object_add(j, "heartbeats", json_object_new_uint64(v->heartbeats));
		json_object_object_add(j, "clock_backwards",
				       json_object_new_uint64(v->clock_backwards));
		json_object_object_add(j, "guest_stopped_seen",
				       json_object_new_uint64(v->guest_stopped_seen));
		json_object_object_add(j, "exits", json_object_new_uint64(v->exits));
		json_object_object_add(j, "max_heartbeat_gap_ms",
				       json_object_new_double((double)v->max_beat_gap_ns / 1e6));
		json_object_array_add(vcpus, j);
	}
	json_object_object_add(o, "vcpus", vcpus);
	json_object *disks = json_object_new_array();
	for (int i = 0; i < st->nr_disks; i++) {
		const struct disk_status *d = &st->disks[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "path", json_object_new_string(d->path));
		json_object_object_add(j, "id", json_object_new_string(d->id));
		json_object_object_add(j, "ro", json_object_new_boolean(d->ro));
		json_object_object_add(j, "capacity_sectors",
				       json_object_new_uint64(d->capacity_sectors));
		json_object_object_add(j, "reads", json_object_new_uint64(d->reads));
		json_object_object_add(j, "writes", json_object_new_uint64(d->writes));
		json_object_object_add(j, "flushes", json_object_new_uint64(d->flushes));
		json_object_object_add(j, "errors", json_object_new_uint64(d->errors));
		json_object_object_add(j, "busy_us", json_object_new_uint64(d->busy_ns / 1000));
		json_object_object_add(j, "host_flushes", json_object_new_uint64(d->host_flushes));
		json_object_object_add(j, "needs_reset", json_object_new_boolean(d->needs_reset));
		json_object_object_add(j, "mmio_base", json_object_new_uint64(d->base));
		json_object_object_add(j, "irq", json_object_new_int((int)d->gsi));
		json_object_array_add(disks, j);
	}
	json_object_object_add(o, "disks", disks);
	json_object *g = json_object_new_object();
	json_object_object_add(g, "flushed_blocks", json_object_new_uint64(st->guest_disk_flushed));
	json_object_object_add(g, "verified_blocks",
			       json_object_new_uint64(st->guest_disk_verified));
	json_object_object_add(g, "errors", json_object_new_uint64(st->guest_disk_errors));
	json_object_object_add(g, "interrupts", json_object_new_uint64(st->guest_disk_irqs));
	json_object_object_add(g, "done", json_object_new_boolean(st->guest_disk_done));
	json_object *bench = json_object_new_array();
	for (int i = 0; i < st->nr_disk_bench; i++)
		json_object_array_add(bench, json_object_new_uint64(st->guest_disk_bench_ns[i]));
	json_object_object_add(g, "bench_ns", bench);
	json_object_object_add(o, "guest_disk", g);
	json_object_object_add(o, "guest_bench_ns", json_object_new_uint64(st->guest_bench_ns));
	return o;
}
