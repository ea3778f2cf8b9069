#!/usr/bin/env python3
"""Interrupts the built-in guest took with interrupts off (IF clear in the
frame its handler finds): 0 on a correct host. Single-threaded TCG delivers
some twice into a nested guest (DEVELOPERS.md), so in a test host this is
the figure that tells the two TCG modes apart:

    tools/testhost --tcg-threads single -- bench/bench_irqs_if_off.py
    tools/testhost --tcg-threads multi -- bench/bench_irqs_if_off.py

usage: bench/bench_irqs_if_off.py [path/to/kvmhost] [seconds] [vcpus]"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")
import kvmtest  # noqa: E402

SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 60
VCPUS = int(sys.argv[3]) if len(sys.argv) > 3 else 4


def main():
    env = kvmtest.Env()
    try:
        vm = env.start("ifoff", "--cpus", str(VCPUS), "--print-every", "0", heartbeats=False)
        time.sleep(SECONDS)
        st = vm.status()
        beats = sum(v["heartbeats"] for v in st["vcpus"])
        tcg = os.environ.get("KVMHOST_TESTHOST_TCG", "-") if kvmtest.IN_TESTHOST else "native"
        print(f"irqs_if_off[{VCPUS} vCPUs, {SECONDS:.0f} s, TCG {tcg}]: "
              f"{st['guest_irqs_if_off']} (last at {st['guest_irq_if_off_where']}), "
              f"{beats} heartbeats")
    finally:
        env.close()


if __name__ == "__main__":
    main()
