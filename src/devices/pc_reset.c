#include "devices/pc_reset.h"

#include <string.h>

#include "arch/x86/acpi_tables.h"
#include "core/vm.h"

#define I8042_DATA	  0x60
#define I8042_CMD	  0x64
#define I8042_PULSE_RESET 0xfe
#define RST_CNT		  0xcf9

static void i8042_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
			 uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	(void)vcpu;
	if (!is_write) {
		/* Status: output empty, input empty - nothing to wait for. */
		memset(data, 0, len);
		return;
	}
	if (offset == I8042_CMD - I8042_DATA && len == 1 && data[0] == I8042_PULSE_RESET)
		vm_request_exit(vm, VM_EXIT_RESET, 0);
}

static void rst_cnt_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
			   uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	(void)vcpu;
	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (data[0] & 0x04) /* RST_CPU */
		vm_request_exit(vm, VM_EXIT_RESET, 0);
}

static void post_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write)
{
	(void)opaque;
	(void)vcpu;
	(void)offset;
	if (!is_write)
		memset(data, 0xff, len);
}

/* PM1a event (status, enable) and control: nothing is ever pending, the
 * system is always in ACPI mode (SCI_EN), and S5 + SLP_EN is "power off". */
static void pm1_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
		       uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	(void)vcpu;
	uint64_t cnt = ACPI_PM1A_CNT - ACPI_PM1A_EVT;
	if (!is_write) {
		memset(data, 0, len);
		if (offset == cnt)
			data[0] = 1; /* SCI_EN */
		return;
	}
	if (offset != cnt || len < 2)
		return;
	uint16_t v;
	memcpy(&v, data, 2);
	if ((v & ACPI_SLP_EN) && ((v >> 10) & 7) == ACPI_SLP_TYP_S5)
		vm_request_exit(vm, VM_EXIT_POWEROFF, 0);
}

int reset_dev_register(struct vm *vm)
{
	int r = bus_register(&vm->pio_bus, I8042_DATA, 5, i8042_access, vm, "i8042");
	if (!r)
		r = bus_register(&vm->pio_bus, RST_CNT, 1, rst_cnt_access, vm, "reset-control");
	if (!r)
		r = bus_register(&vm->pio_bus, 0x80, 1, post_access, vm, "post");
	if (!r)
		r = bus_register(&vm->pio_bus, ACPI_PM1A_EVT, 6, pm1_access, vm, "acpi-pm1");
	return r;
}
