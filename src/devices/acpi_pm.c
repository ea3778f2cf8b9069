/* PM1a's registers (acpi_pm.h): the event block handled byte by byte, so
 * any access width works, its status bits cleared by writing 1; the SCI
 * follows status & enable as a level. One lock covers both blocks: the
 * power button is pressed from outside the vCPUs. */
#include "devices/acpi_pm.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"
#include "util/vmstate.h"

void acpi_pm_init(struct acpi_pm *pm, const struct device_host *host)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	pm->host = host;
	pm->cnt = ACPI_SCI_EN;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

/* Under the lock: the SCI is level-triggered and follows status & enable. */
static void update_sci(struct acpi_pm *pm)
{
	bool level = (pm->sts & pm->en & ACPI_PWRBTN) != 0;
	if (level != pm->sci_level)
		device_set_irq(pm->host, ACPI_SCI_IRQ, level);
	pm->sci_level = level;
}

/* Byte-wise, so any access width a guest uses lands where it should. */
static void evt_access(void *dev, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct acpi_pm *pm = dev;
	(void)vcpu;
	pthread_mutex_lock(&pm->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t off = offset + i;
		uint16_t *reg = off < 2 ? &pm->sts : off < 4 ? &pm->en : NULL;
		unsigned shift = (unsigned)(off & 1) * 8;
		if (!reg) {
			if (!is_write)
				data[i] = 0;
			continue;
		}
		if (!is_write)
			data[i] = (uint8_t)(*reg >> shift);
		else if (reg == &pm->sts)
			pm->sts &= (uint16_t) ~((unsigned)data[i] << shift); /* write 1 to clear */
		else
			pm->en = (uint16_t)((pm->en & ~(0xffu << shift)) |
					    ((unsigned)data[i] << shift));
	}
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void cnt_access(void *dev, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct acpi_pm *pm = dev;
	(void)vcpu;
	if (!is_write) {
		memset(data, 0, len);
		pthread_mutex_lock(&pm->lock);
		if (offset == 0)
			memcpy(data, &pm->cnt, len < 2 ? len : 2);
		pthread_mutex_unlock(&pm->lock);
		return;
	}
	if (offset != 0 || len < 2)
		return;
	uint16_t v;
	memcpy(&v, data, 2);
	pthread_mutex_lock(&pm->lock);
	pm->cnt = (uint16_t)((v & ~ACPI_SLP_EN) | ACPI_SCI_EN);
	pthread_mutex_unlock(&pm->lock);
	if ((v & ACPI_SLP_EN) && ((v >> 10) & 7) == ACPI_SLP_TYP_S5)
		device_request_exit(pm->host, VM_EXIT_POWEROFF, 0);
}

bool acpi_pm_press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= ACPI_PWRBTN;
	pm->button_presses++;
	bool enabled = pm->en & ACPI_PWRBTN;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return enabled;
}

/* SCI_EN stays set: kvmhost's ACPI is always in ACPI mode. */
static int acpi_pm_post_load(void *dev, uint32_t version)
{
	struct acpi_pm *pm = dev;
	(void)version;
	pm->cnt |= ACPI_SCI_EN;
	update_sci(pm);
	return 0;
}

static const struct vmstate_field acpi_pm_fields[] = {
	VMS_UINT(struct acpi_pm, sts),
	VMS_UINT(struct acpi_pm, en),
	VMS_UINT(struct acpi_pm, cnt),
};

static const struct vmstate acpi_pm_state = {
	.name = "acpi-pm",
	.version = 1,
	.min_version = 1,
	.fields = acpi_pm_fields,
	.nr_fields = ARRAY_SIZE(acpi_pm_fields),
	.post_load = acpi_pm_post_load,
};

/* The state is saved once, with the event block. */
const struct device_ops acpi_pm_evt_ops = {
	.name = "acpi-pm",
	.access = evt_access,
	.state = &acpi_pm_state,
	DEVICE_LOCK(struct acpi_pm, lock),
};
const struct device_ops acpi_pm_cnt_ops = {.name = "acpi-pm1-control", .access = cnt_access};
