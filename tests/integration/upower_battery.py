"""A laptop battery faked with umockdev (a sysfs power_supply BAT0 and an AC
adapter) and the real upowerd watching it, on the bus in
DBUS_SYSTEM_BUS_ADDRESS. Run by realupower.py with Debian's /usr/bin/python3
(for gi) under umockdev-wrapper, inside a mount namespace whose tmpfs takes
upowerd's history files.

stdin:  level PERCENT Charging|Discharging
stdout: ready | level PERCENT STATUS"""
import os
import subprocess
import sys

import gi
gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

UPOWERD = "/usr/libexec/upowerd"
FULL = 60000000  # µWh

bed = UMockdev.Testbed.new()
ac = bed.add_device("power_supply", "AC", None, ["type", "Mains", "online", "0"], [])
bat = bed.add_device("power_supply", "BAT0", None,
                     ["type", "Battery", "present", "1", "status", "Discharging",
                      "energy_full", str(FULL), "energy_full_design", str(FULL),
                      "energy_now", str(FULL // 2), "voltage_now", "12000000"], [])
# os.environ predates the testbed's own setenv of UMOCKDEV_DIR.
env = dict(os.environ, UMOCKDEV_DIR=bed.get_root_dir())
upowerd = subprocess.Popen([UPOWERD], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=sys.stderr)
print("ready", flush=True)
for line in sys.stdin:
    parts = line.split()
    if len(parts) != 3 or parts[0] != "level":
        continue
    pct, status = int(parts[1]), parts[2]
    bed.set_attribute(bat, "energy_now", str(FULL * pct // 100))
    bed.set_attribute(bat, "status", status)
    bed.set_attribute(ac, "online", "1" if status == "Charging" else "0")
    bed.uevent(ac, "change")
    bed.uevent(bat, "change")
    print("level", pct, status, flush=True)
upowerd.terminate()
upowerd.wait()
