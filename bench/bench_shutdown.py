#!/usr/bin/env python3
"""Managed-save figures through the real systemd-logind (private D-Bus, stub
systemd1; see tests/integration/reallogind.py): how long logind waits from
sending PrepareForShutdown(true) to asking for poweroff.target - that is,
until every VM has saved and released its inhibitor - for 1, 4 and 16 VMs of
64 MiB (the built-in guest touches little of it; /32: its memory check wrote
32 MiB) and one 2 GiB VM whose guest wrote 1 GiB of it. The baseline, measured
in the same run: writing the same bytes to the same directory and
fdatasyncing them (what `dd conv=fdatasync` does).

usage: bench/bench_shutdown.py [path/to/kvmhost]   (root: logind runs in a
mount namespace)"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")
os.environ.setdefault("STUB_SYSTEMD1", os.path.join(HERE, "..", "build", "tests", "stub_systemd1"))
os.environ.setdefault("DBUS_TEST_CONF", os.path.join(HERE, "..", "tests", "dbus-test.conf"))
import kvmtest  # noqa: E402
from reallogind import RealLogind  # noqa: E402

DEFAULT_DELAY_S = 5.0  # logind's InhibitDelayMaxSec


def dd_baseline(directory, sizes_mib):
    """Seconds to write and fdatasync one file per size, one after another."""
    chunk = b"\xa5" * (1 << 20)
    t0 = time.monotonic()
    for i, mib in enumerate(sizes_mib):
        path = os.path.join(directory, f"dd{i}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for _ in range(mib):
            os.write(fd, chunk)
        os.fdatasync(fd)
        os.close(fd)
    took = time.monotonic() - t0
    for i in range(len(sizes_mib)):
        os.unlink(os.path.join(directory, f"dd{i}"))
    return took


def run(n, memory_mib, tagged_mib=0):
    env = kvmtest.Env()
    real = RealLogind(env.env, env.dir, delay_s=60)
    env.env = real.env
    try:
        vms = []
        for i in range(n):
            args = ["--cpus", "1", "--memory", str(memory_mib), "--print-every", "0"]
            if tagged_mib:
                args += ["--guest-mode", "memcheck", "--memcheck-mib", str(tagged_mib)]
            vms.append(env.start(f"vm{i}", *args))
        for vm in vms:
            if tagged_mib:
                kvmtest.wait_for(lambda: vm.status()["guest_memcheck"]["pages"] ==
                                 tagged_mib * 256, 120, interval=0.1, what="tagging")
            kvmtest.wait_for(lambda: vm.status()["host_shutdown"]["inhibitor"], 30,
                             what="the inhibitor")
        real.busctl("call", "PowerOff", "b", "false")
        _, _, t_prepare = real.expect_prepare(60)
        unit, t_start, _ = real.expect_start(120)
        assert unit == "poweroff.target"
        for vm in vms:
            assert vm.wait_exit(120) == 0
        waited = (t_start - t_prepare) / 1e9
        saved = sum(os.stat(os.path.join(env.statedir, f"vm{i}.kvmh")).st_blocks * 512
                    for i in range(n)) >> 20
        base = dd_baseline(env.statedir, [max(1, saved // n)] * n)
        return waited, saved, base
    finally:
        env.close()
        real.close()


def main():
    print("PrepareForShutdown(true) -> logind's StartUnit(poweroff.target), real logind")
    print(f"{'VMs':>12} {'saved MiB':>10} {'waited ms':>10} {'dd ms':>8} {'ratio':>6} "
          f"{'in 5 s':>6}")
    for n, mib, tagged, label in ((1, 64, 0, "1 x 64M"), (4, 64, 0, "4 x 64M"),
                                  (16, 64, 0, "16 x 64M"), (16, 64, 32, "16 x 64M/32"),
                                  (1, 2048, 1024, "1 x 2G/1G")):
        waited, saved, base = run(n, mib, tagged)
        print(f"{label:>12} {saved:>10} {waited * 1e3:>10.1f} {base * 1e3:>8.1f} "
              f"{waited / base:>6.2f} {'yes' if waited <= DEFAULT_DELAY_S else 'NO':>6}")


if __name__ == "__main__":
    main()
