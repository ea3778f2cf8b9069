/* The VM's own control commands (pause, resume, quit, poweroff, regs,
 * net-link) and its status part, which control/vm_status.c builds. `regs`
 * reads each vCPU's registers on that vCPU's thread, the only one that may
 * use its fd. */
#include "control/vm_commands.h"
#include "control/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "control/server.h"
#include "control/vm_status.h"
#include "core/vm.h"

static json_object *pause_resume(struct vm_commands *vc, bool pause)
{
	if (pause)
		vm_pause(vc->vm);
	else
		vm_resume(vc->vm);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(vm_state_name(vc->vm)));
	control_emit_event(vc->ctl, pause ? "paused" : "resumed", NULL);
	return o;
}

static json_object *cmd_pause(void *opaque, json_object *args, struct error *err)
{
	(void)args, (void)err;
	return pause_resume(opaque, true);
}

static json_object *cmd_resume(void *opaque, json_object *args, struct error *err)
{
	(void)args, (void)err;
	return pause_resume(opaque, false);
}

static json_object *cmd_quit(void *opaque, json_object *args, struct error *err)
{
	struct vm_commands *vc = opaque;
	(void)args, (void)err;
	vm_request_exit(vc->vm, VM_EXIT_QUIT, 0);
	return json_object_new_object();
}

static json_object *cmd_poweroff(void *opaque, json_object *args, struct error *err)
{
	struct vm_commands *vc = opaque;
	(void)args, (void)err;
	vm_request_poweroff(vc->vm);
	return json_object_new_object();
}

struct regs_snapshot {
	struct kvm_regs *regs;
	struct kvm_sregs *sregs;
	bool *ok;
};

/* Runs on each vCPU's own thread: only it may touch its fd. */
static void read_regs(struct vcpu *vcpu, void *arg)
{
	struct regs_snapshot *s = arg;
	int i = vcpu->index;
	s->ok[i] = ioctl(vcpu->fd, KVM_GET_REGS, &s->regs[i]) == 0 &&
		   ioctl(vcpu->fd, KVM_GET_SREGS, &s->sregs[i]) == 0;
}

static json_object *hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return json_object_new_string(buf);
}

static json_object *regs_json(const struct kvm_regs *r, const struct kvm_sregs *sr)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "rip", hex(r->rip));
	json_object_object_add(o, "rsp", hex(r->rsp));
	json_object_object_add(o, "rflags", hex(r->rflags));
	json_object_object_add(o, "rax", hex(r->rax));
	json_object_object_add(o, "rsi", hex(r->rsi));
	json_object_object_add(o, "cs", hex(sr->cs.selector));
	json_object_object_add(o, "cr0", hex(sr->cr0));
	json_object_object_add(o, "cr3", hex(sr->cr3));
	json_object_object_add(o, "cr4", hex(sr->cr4));
	json_object_object_add(o, "efer", hex(sr->efer));
	return o;
}

static json_object *cmd_regs(void *opaque, json_object *args, struct error *err)
{
	struct vm *vm = ((struct vm_commands *)opaque)->vm;
	(void)args;
	uint32_t n = vm->nr_vcpus;
	struct regs_snapshot s = {calloc(n, sizeof(*s.regs)), calloc(n, sizeof(*s.sregs)),
				  calloc(n, sizeof(*s.ok))};
	json_object *out = NULL;
	if (!s.regs || !s.sregs || !s.ok) {
		error_setf(err, "out of memory");
		goto done;
	}
	/* A vCPU that has ended is reported as such below; the rest answered. */
	(void)vm_run_on_all(vm, read_regs, &s, true);
	out = json_object_new_array();
	for (uint32_t i = 0; i < n; i++) {
		json_object *o =
			s.ok[i] ? regs_json(&s.regs[i], &s.sregs[i]) : json_object_new_object();
		if (!s.ok[i])
			json_object_object_add(o, "error",
					       json_object_new_string("vCPU not running"));
		json_object_object_add(o, "index", json_object_new_int((int)i));
		json_object_array_add(out, o);
	}
done:
	free(s.regs);
	free(s.sregs);
	free(s.ok);
	return out;
}

/* net-link {"id": ID, "up": bool}: the link status bit, as a cable pulled. */
static json_object *cmd_net_link(void *opaque, json_object *args, struct error *err)
{
	struct vm_commands *vc = opaque;
	json_object *id, *up;
	if (!args || !json_object_object_get_ex(args, "id", &id) ||
	    !json_object_object_get_ex(args, "up", &up) ||
	    !json_object_is_type(up, json_type_boolean)) {
		error_setf(err, "net-link needs {\"args\":{\"id\":ID,\"up\":true|false}}");
		return NULL;
	}
	struct vm_net *n = vm_find_net(vc->vm, json_object_get_string(id));
	if (!n) {
		char quoted[40];
		error_setf(err, "net-link: no net '%s'",
			   protocol_quote(json_object_get_string(id), quoted, sizeof(quoted)));
		return NULL;
	}
	virtio_net_set_link(&n->net, json_object_get_boolean(up));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "link",
			       json_object_new_string(json_object_get_boolean(up) ? "up" : "down"));
	return o;
}

static void status_part(void *opaque, json_object *status)
{
	struct vm_commands *vc = opaque;
	vm_status_json(vc->vm, vc->guest, status);
}

int vm_commands_register(struct vm_commands *vc, struct control *ctl, struct vm *vm,
			 const struct testdev *guest)
{
	static const struct {
		const char *name;
		control_cmd_fn fn;
	} cmds[] = {{"pause", cmd_pause},	{"resume", cmd_resume}, {"quit", cmd_quit},
		    {"poweroff", cmd_poweroff}, {"regs", cmd_regs},	{"net-link", cmd_net_link}};
	*vc = (struct vm_commands){vm, ctl, guest};
	int r = 0;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]) && !r; i++)
		r = control_register(ctl, cmds[i].name, cmds[i].fn, vc);
	return r ? r : control_add_status(ctl, status_part, vc);
}
