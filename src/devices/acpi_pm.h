/* ACPI fixed-hardware power management, PM1a: the event block (status and
 * enable) and the control block. Writing SLP_TYP S5 with SLP_EN powers the
 * VM off; the host "presses" the power button by setting PWRBTN_STS, which
 * raises the SCI while the guest has PWRBTN_EN set, as QEMU's
 * system_powerdown does. The system is always in ACPI mode (SCI_EN). */
#ifndef KVMHOST_ACPI_PM_H
#define KVMHOST_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

#define ACPI_PM1A_EVT	  0x600 /* 4 bytes: status, enable */
#define ACPI_PM1A_EVT_LEN 4
#define ACPI_PM1A_CNT	  0x604 /* 2 bytes */
#define ACPI_PM1A_CNT_LEN 2
#define ACPI_SCI_IRQ	  9
#define ACPI_SLP_EN	  (1u << 13)
#define ACPI_SLP_TYP_S5	  5
#define ACPI_SCI_EN	  (1u << 0)
#define ACPI_PWRBTN	  (1u << 8) /* PWRBTN_STS in status, PWRBTN_EN in enable */

struct acpi_pm {
	pthread_mutex_t lock;
	const struct device_host *host;
	uint16_t sts, en, cnt;
	bool sci_level;
	uint64_t button_presses;
};

void acpi_pm_init(struct acpi_pm *pm, const struct device_host *host);
void acpi_pm_destroy(struct acpi_pm *pm);
/* The event block (status, enable) and the control block: two ranges, one device. */
extern const struct device_ops acpi_pm_evt_ops;
extern const struct device_ops acpi_pm_cnt_ops;

/* Any thread: the power button is pressed. Returns whether the guest had
 * enabled the event (if not, it will see the status when it does). */
bool acpi_pm_press_power_button(struct acpi_pm *pm);

#endif
