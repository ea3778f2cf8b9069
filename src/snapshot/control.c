/* `save` on the control socket: {"path": "/abs/FILE", "keep_running": false}. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/server.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

static json_object *result_json(const char *path, const struct snapshot_result *res,
				bool keep_running)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "bytes", json_object_new_uint64(res->bytes));
	json_object_object_add(o, "allocated_bytes", json_object_new_uint64(res->allocated));
	json_object_object_add(o, "memory_pages", json_object_new_uint64(res->pages));
	json_object_object_add(o, "ms", json_object_new_double(res->ms));
	json_object_object_add(o, "keep_running", json_object_new_boolean(keep_running));
	return o;
}

static json_object *cmd_save(void *opaque, json_object *args, struct error *err)
{
	struct vm *vm = opaque;
	json_object *path, *keep;
	if (!args || !json_object_object_get_ex(args, "path", &path) ||
	    !json_object_is_type(path, json_type_string)) {
		error_setf(err, "save needs {\"args\":{\"path\":\"/absolute/FILE\"}}");
		return NULL;
	}
	const char *p = json_object_get_string(path);
	/* The VM's working directory is not the client's: only absolute paths. */
	if (p[0] != '/' || strlen(p) > 4000) {
		error_setf(err, "save: the path must be absolute (and under 4000 bytes)");
		return NULL;
	}
	bool keep_running = json_object_object_get_ex(args, "keep_running", &keep) &&
			    json_object_get_boolean(keep);
	if (vm_stopping(vm)) {
		error_setf(err, "save: the VM is stopping");
		return NULL;
	}
	if (vm_migrating(vm)) {
		error_setf(err, "save: a migration is in flight");
		return NULL;
	}
	struct snapshot_result res;
	if (snapshot_save(vm, p, keep_running, &res, err))
		return NULL;
	log_info("VM '%s' saved to %s (%.1f ms, %llu memory pages)", vm->cfg.name, p, res.ms,
		 (unsigned long long)res.pages);
	if (!keep_running)
		vm_request_exit(vm, VM_EXIT_QUIT, 0);
	return result_json(p, &res, keep_running);
}

int snapshot_attach_control(struct control *ctl, struct vm *vm)
{
	return control_register(ctl, "save", cmd_save, vm);
}
