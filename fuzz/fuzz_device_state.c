/* libFuzzer target: hostile device state, as a snapshot file or a
 * migration stream carries it, for the devices whose state is a field
 * table (util/vmstate.c): the 16550, the ACPI PM block and the built-in
 * guest's test device. The first byte picks the device; the rest is its
 * state. A restore either refuses it or leaves a device that saves, restores
 * the same and takes guest accesses - never a read or write outside it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin_guest/testdev.h"
#include "devices/acpi_pm.h"
#include "devices/serial.h"
#include "util/state.h"

static void round_trip(const struct device_ops *ops, void *dev)
{
	struct state_writer w = {0};
	device_save(ops, dev, &w);
	struct state_reader r = state_reader_init(w.buf, w.len);
	if (w.err || device_restore(ops, dev, &r) || state_reader_done(&r))
		abort(); /* what a device saves, it restores */
	state_writer_free(&w);
}

static void poke(const struct device_ops *ops, void *dev, uint64_t len)
{
	for (uint64_t off = 0; off < len; off++) {
		uint8_t b[4] = {0};
		ops->access(dev, 0, off, b, 1, false);
		ops->access(dev, 0, off, b, 1, true);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct state_reader r = state_reader_init(data + 1, size - 1);
	switch (data[0] % 3) {
	case 0: {
		struct serial s;
		serial_init(&s, -1, NULL, 4);
		if (!device_restore(&serial_ops, &s, &r))
			round_trip(&serial_ops, &s);
		poke(&serial_ops, &s, 8);
		serial_destroy(&s);
		break;
	}
	case 1: {
		struct acpi_pm pm;
		acpi_pm_init(&pm, NULL);
		if (!device_restore(&acpi_pm_evt_ops, &pm, &r))
			round_trip(&acpi_pm_evt_ops, &pm);
		poke(&acpi_pm_evt_ops, &pm, ACPI_PM1A_EVT_LEN);
		acpi_pm_destroy(&pm);
		break;
	}
	default: {
		struct testdev t;
		testdev_configure(&t, &(struct testdev_config){0}, NULL, 0);
		struct extra_device x = testdev_extra(&t);
		if (x.attach(x.dev, NULL, 1 + data[0] % 4))
			abort();
		if (!device_restore(&testdev_ops, &t, &r))
			round_trip(&testdev_ops, &t);
		x.detach(x.dev);
		break;
	}
	}
	return 0;
}
