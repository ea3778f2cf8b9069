#!/usr/bin/env python3
"""virtio-blk throughput from inside the built-in guest against the host
writing/reading the same file with dd, in the same run; flush latency.

usage: bench/bench_disk.py [path/to/kvmhost] [MiB]"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")
import kvmtest  # noqa: E402

MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 16


def dd(args):
    p = subprocess.run(["dd", *args], capture_output=True, text=True, check=True)
    m = re.search(r"copied, ([0-9.e-]+) s", p.stderr)
    return float(m.group(1))


def host_figures(path):
    total = MIB << 20
    out = {}
    for bs in (4096, 65536):
        count = str(total // bs)
        out[("write", bs)] = total / dd(["if=/dev/zero", f"of={path}", f"bs={bs}", f"count={count}",
                                         "conv=notrunc"])
        out[("write+sync", bs)] = total / dd(["if=/dev/zero", f"of={path}", f"bs={bs}",
                                              f"count={count}", "conv=notrunc,fdatasync"])
        out[("read", bs)] = total / dd([f"if={path}", "of=/dev/null", f"bs={bs}",
                                        f"count={count}"])
    fd = os.open(path, os.O_RDWR)
    lat = []
    for _ in range(20):
        os.pwrite(fd, b"x" * 4096, 0)
        t = time.perf_counter()
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
    os.close(fd)
    out["flush"] = sorted(lat)[len(lat) // 2]
    return out


def guest_figures(env, path):
    vm = env.start("diskbench", "--disk", path, "--guest-mode", "disk-bench", "--disk-blocks",
                   str(MIB * 256), "--print-every", "0", heartbeats=False)
    kvmtest.wait_for(lambda: vm.status()["guest_disk"]["done"], 600, interval=0.2,
                     what="the guest's benchmark")
    st = vm.status()
    ns = st["guest_disk"]["bench_ns"]
    d = st["disks"][0]
    requests = d["reads"] + d["writes"] + d["flushes"]
    print(f"disk_host_time_per_request_us: {d['busy_us'] / requests:.1f} (kvmhost's own share: "
          f"descriptor parsing, preadv/pwritev, fdatasync; {requests} requests)")
    vm.kill()
    total = MIB << 20
    return {("write", 4096): total / (ns[0] / 1e9), ("read", 4096): total / (ns[1] / 1e9),
            ("write", 65536): total / (ns[2] / 1e9), ("read", 65536): total / (ns[3] / 1e9),
            "flush": ns[4] / 1e9}


def main():
    kvmtest.require_kvm()
    env = kvmtest.Env()
    try:
        path = os.path.join(env.dir, "bench.img")
        with open(path, "wb") as f:
            f.truncate((MIB + 1) << 20)
        g = guest_figures(env, path)
        h = host_figures(path)
    finally:
        env.close()
    for bs in (4096, 65536):
        for op in ("write", "read"):
            gr, hr = g[(op, bs)], h[(op, bs)]
            extra = ""
            if op == "write":
                extra = f", host dd with fdatasync {h[('write+sync', bs)] / 2**20:.1f} MiB/s"
            print(f"disk_{op}_{bs // 1024}k: guest {gr / 2**20:.1f} MiB/s "
                  f"({gr / bs:.0f} requests/s), host dd {hr / 2**20:.1f} MiB/s, "
                  f"ratio {gr / hr:.3f}{extra} ({MIB} MiB sequential)")
    print(f"disk_flush_latency_us: guest {g['flush'] * 1e6:.0f}, host fdatasync "
          f"{h['flush'] * 1e6:.0f} (after a 4 KiB write)")


if __name__ == "__main__":
    main()
