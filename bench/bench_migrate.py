#!/usr/bin/env python3
"""Migration figures: downtime and total time of `ctl NAME migrate` between
two kvmhost processes on this host over a Unix socket, for idle 512 MiB and
2 GiB built-in guests, a 512 MiB guest whose memory is all in use, and one
rewriting memory at a set rate while the copy runs. Downtime is shown two
ways: the source's (from its pause to the destination's RUNNING) and the
guest's own (kvmclock time between its last loop before the stop and its
first after, as the guest reports it). Total time is set against a plain
socket sender moving the same number of bytes over the same kind of socket
in the same run. Medians of RUNS migrations (back and forth).

usage: bench/bench_migrate.py [path/to/kvmhost] [RUNS]"""
import json
import os
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
KVMHOST = sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost"
os.environ["KVMHOST"] = KVMHOST
import kvmtest  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CHUNK = 8 << 20


def plain_send_ms(path, nbytes):
    """A plain sender: nbytes from memory of that size (touched, as a guest's
    is, so not all in the CPU's caches) over a Unix stream socket in 8 MiB
    writes, into a reader that reuses one buffer; ms from connect to the last
    byte read."""
    src = bytearray(nbytes)
    for off in range(0, nbytes, 4096):
        src[off] = 1
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    done = {}

    def reader():
        c, _ = ls.accept()
        buf = bytearray(CHUNK)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = c.recv_into(view)
            if not n:
                break
            got += n
        done["t"] = time.monotonic()
        c.close()

    t = threading.Thread(target=reader)
    t.start()
    data = memoryview(src)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t0 = time.monotonic()
    s.connect(path)
    for off in range(0, nbytes, CHUNK):
        s.sendall(data[off:off + CHUNK])
    t.join()
    s.close()
    ls.close()
    os.unlink(path)
    return (done["t"] - t0) * 1e3


def start_source(env, name, mib, mode):
    # A beat every ms: the guest's view of the stop is that fine.
    args = ["--cpus", "2", "--memory", str(mib), "--heartbeat-us", "1000", "--print-every", "0"]
    if mode != "idle":
        check = mib - 16 - (mib + 511) // 512
        dirty = "20000" if mode == "dirtying" else "0"
        args += ["--guest-mode", "memcheck", "--memcheck-mib", str(check),
                 "--memcheck-dirty", dirty]
    vm = env.start(name, *args)
    if mode != "idle":
        kvmtest.wait_for(lambda: vm.status()["guest_memcheck"]["pages"] > 0, 300,
                         interval=0.2, what="the guest to tag its memory")
    return vm


def one_case(env, mib, mode):
    sock = os.path.join(env.dir, "mig.sock")
    vm = start_source(env, f"{mode}{mib}a", mib, mode)
    rows = []
    for i in range(RUNS):
        name = vm.name[:-1] + ("b" if vm.name.endswith("a") else "a")
        dst = env.start(name, "--incoming", "unix:" + sock, wait=False)
        kvmtest.wait_for(lambda: os.path.exists(sock), 10, what="the destination")
        p = vm.ctl("migrate", "unix:" + sock, "--json")
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        vm.wait_exit(30)
        dst.wait_ready(heartbeats=False)
        kvmtest.wait_for(lambda: dst.status()["guest_stop_gap_ms"] is not None, 30,
                         what="the guest to say how long it was stopped")
        r["guest_ms"] = dst.status()["guest_stop_gap_ms"]
        if mode != "idle":
            kvmtest.wait_for(lambda: dst.status()["guest_memcheck"]["passes"] >= 1, 120,
                             interval=0.2, what="the memory check")
            assert dst.status()["guest_memcheck"]["errors"] == 0
        r["plain_ms"] = plain_send_ms(os.path.join(env.dir, "plain.sock"), r["bytes"])
        rows.append(r)
        vm = dst
    vm.ctl("quit")
    vm.wait_exit(30)
    med = {k: statistics.median(r[k] for r in rows)
           for k in ("downtime_ms", "guest_ms", "total_ms", "bytes", "plain_ms", "rounds")}
    ratio = statistics.median(r["total_ms"] / r["plain_ms"] for r in rows)
    print(f"{mode:9} {mib:5} MiB  downtime {med['downtime_ms']:6.1f} ms (guest saw "
          f"{med['guest_ms']:6.1f} ms)  total {med['total_ms']:7.1f} ms  "
          f"{med['bytes'] / 2**20:7.1f} MiB in {med['rounds']:.0f} rounds  plain sender "
          f"{med['plain_ms']:6.1f} ms  ratio {ratio:4.2f}x", flush=True)


def main():
    kvmtest.require_kvm()
    print(f"bench_migrate: medians of {RUNS} migrations each, Unix socket, this host")
    for mib, mode in ((512, "idle"), (2048, "idle"), (512, "in-use"), (512, "dirtying")):
        env = kvmtest.Env()
        try:
            one_case(env, mib, mode)
        finally:
            env.close()
    print("targets: downtime <= 50 ms for idle guests; total <= 1.5x the plain sender")


if __name__ == "__main__":
    main()
