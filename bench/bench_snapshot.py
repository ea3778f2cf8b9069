#!/usr/bin/env python3
"""Snapshot figures: save time and file size for 64 MiB, 512 MiB and 2 GiB
built-in guests with 10 % and 100 % of their memory touched (the guest's
memory-check mode tags every page of its region), against `dd` writing the
same number of bytes (with fsync) to the same file system in the same run;
and restore time, exec -> the guest's first heartbeat on the console. Saves
and dd runs alternate, three each, and medians are compared.

usage: bench/bench_snapshot.py [path/to/kvmhost] [restore runs]"""
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
KVMHOST = sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost"
os.environ["KVMHOST"] = KVMHOST
import kvmtest  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ROUNDS = 3  # saves and dd runs, interleaved: this host's disk varies 3x run to run
SIZES_MIB = (64, 512, 2048)
MEMCHECK_BASE_MIB = 16  # GUEST_MEMCHECK_BASE: the image, stacks and tables are below


def dd_seconds(path, nbytes):
    """dd of nbytes of non-zero data, fsynced, to the snapshot's file system."""
    src = os.path.join(os.path.dirname(path), "pattern")
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20))
    t0 = time.monotonic()
    blocks = max(1, nbytes >> 20)
    with open(path, "wb") as out, open(src, "rb") as inp:
        chunk = inp.read()
        for _ in range(blocks):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    dt = time.monotonic() - t0
    os.unlink(path)
    os.unlink(src)
    return dt


def saved_vm(env, name, mib, touched):
    check = max(1, int((mib - MEMCHECK_BASE_MIB) * touched)) if touched < 1 else \
        mib - MEMCHECK_BASE_MIB
    vm = env.start(name, "--cpus", "2", "--memory", str(mib), "--guest-mode", "memcheck",
                   "--memcheck-mib", str(check), "--heartbeat-us", "1000", "--print-every", "1")
    kvmtest.wait_for(lambda: vm.status()["guest_memcheck"]["pages"] == check * 256, 120,
                     interval=0.1, what="the guest to tag its memory")
    return vm


def save(env, mib, touched):
    """Median save and dd times over ROUNDS interleaved runs (checkpoints with
    --keep-running, the last one ending the VM), and the file's size."""
    import json
    vm = saved_vm(env, f"s{mib}-{int(touched * 100)}", mib, touched)
    path = os.path.join(env.dir, f"s{mib}.kvmh")
    saves, dds = [], []
    for r in range(ROUNDS):
        last = r == ROUNDS - 1
        p = vm.ctl("save", path, "--json", *([] if last else ["--keep-running"]))
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)
        saves.append(res["ms"])
        used = os.stat(path).st_blocks * 512
        dds.append(dd_seconds(os.path.join(env.dir, "dd.out"), used) * 1e3)
    vm.wait_exit(60)
    return path, res, used, statistics.median(saves), statistics.median(dds)


def restore_ms(env, path):
    """exec -> the first heartbeat line the restored guest prints."""
    times = []
    for i in range(RUNS):
        t0 = time.monotonic()
        p = subprocess.Popen([KVMHOST, "run", "--name", f"r{i}", "--restore", path,
                              "--console", "stdio"], env=env.env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        got = b""
        while b"heartbeat" not in got:
            r, _, _ = select.select([p.stdout], [], [], 10)
            if not r:
                raise AssertionError("no heartbeat after the restore")
            got += os.read(p.stdout.fileno(), 4096)
        times.append((time.monotonic() - t0) * 1e3)
        p.terminate()
        p.wait()
    return statistics.median(times), min(times)


def main():
    env = kvmtest.Env()
    env.dir = tempfile.mkdtemp(prefix="kvmhost-bench-", dir="/var/tmp")
    env.rundir = os.path.join(env.dir, "run")
    env.env["KVMHOST_RUNDIR"] = env.rundir
    try:
        for mib in SIZES_MIB:
            for touched in (0.1, 1.0):
                path, res, used, save_ms, dd_ms = save(env, mib, touched)
                ratio = save_ms / dd_ms if dd_ms else float("nan")
                target = dd_ms * 1.3 + 10
                print(f"save[{mib} MiB, {int(touched * 100)}% touched]: median {save_ms:.1f} ms, "
                      f"file {used / 2**20:.1f} MiB on disk ({res['bytes'] / 2**20:.0f} MiB "
                      f"apparent), dd of the same bytes median {dd_ms:.1f} ms, ratio "
                      f"{ratio:.2f} (target <= 1.3 x dd + 10 ms = {target:.0f} ms; file <= "
                      f"touched + 1 MiB; {ROUNDS} rounds each, interleaved)")
                if touched == 1.0:
                    med, low = restore_ms(env, path)
                    print(f"restore[{mib} MiB]: exec -> first heartbeat median {med:.1f} ms, "
                          f"min {low:.1f} ms ({RUNS} runs; target <= 10 ms)")
                os.unlink(path)
    finally:
        env.close()


if __name__ == "__main__":
    main()
