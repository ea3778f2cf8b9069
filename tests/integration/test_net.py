"""Networking: virtio-net on a tap, in network namespaces the tests make and
delete. Judged by what crosses the wire - pings answered by the built-in
guest's own stack, its ARP entry, its gratuitous ARPs seen by a raw socket -
and by the counters in `status` agreeing with it."""
import os
import time

from kvmtest import SLOWDOWN, main, wait_for
from nettest import NetNS, announced_since
from reallogind import with_real_logind
from test_sandbox import CORPUS, all_filtered, replay_inputs

GUEST = "10.77.0.2"
HOST = "10.77.0.1/24"


def net_vm(env, ns, name, net, *extra):
    return env.start(name, "--net", net, "--guest-ip", GUEST, *extra, prefix=ns.prefix)


def test_ping_1000(env):
    ns = NetNS(env, "p")
    vm = net_vm(env, ns, "n", "tap=kt0,id=lan")
    ns.address("kt0", HOST)
    sent, got, rtts = ns.ping(GUEST, 1000, interval="0.005")
    assert (sent, got) == (1000, 1000), (sent, got)
    st = vm.status()
    net = st["nets"][0]
    assert net["id"] == "lan" and net["tap"] == "kt0" and net["link"] == "up", net
    assert ns.neighbour(GUEST) == net["mac"]  # ARP answered with the device's MAC
    # What the guest answered, what the device carried and what ping saw agree.
    g = st["guest_net"]
    assert g["replies"] >= 1001 and g["rx"] >= 1001, g  # 1000 echos and an ARP
    assert net["tx_packets"] >= g["replies"] and net["rx_packets"] >= g["rx"], (net, g)
    assert net["tx_dropped"] == 0 and net["bad_chains"] == 0, net
    # The receive thread is sandboxed like every other.
    tasks = all_filtered(vm.proc.pid, 3)
    assert any(t["comm"] == "net-rx" for t in tasks.values()), tasks
    assert vm.ctl("quit").returncode == 0 and vm.wait_exit() == 0
    # A tap kvmhost made goes with it.
    assert "kt0" not in ns.run("ip", "link").stdout


def test_link_down_and_up(env):
    ns = NetNS(env, "l")
    vm = net_vm(env, ns, "n", "tap=kt1")
    ns.address("kt1", HOST)
    pinged = ns.ping(GUEST, 3)
    assert pinged[1] == 3, pinged
    p = vm.ctl("net-link", "0", "down")
    assert p.returncode == 0, p.stderr
    assert vm.status()["nets"][0]["link"] == "down"
    assert ns.ping(GUEST, 3, interval="0.2", wait="1")[1] == 0
    assert vm.ctl("net-link", "0", "up").returncode == 0
    wait_for(lambda: ns.ping(GUEST, 1, wait="1")[1] == 1, 10, what="the link back")
    p = vm.ctl("net-link", "nope", "up")
    assert p.returncode != 0 and "no net" in p.stderr


def test_restore_reopens_the_tap_by_name(env):
    ns = NetNS(env, "r")
    vm = net_vm(env, ns, "n", "tap=kt5,mac=52:54:00:aa:bb:cc")
    ns.address("kt5", HOST)
    pinged = ns.ping(GUEST, 3)
    assert pinged[1] == 3, pinged
    path = os.path.join(env.dir, "t.kvmh")
    assert vm.ctl("save", path).returncode == 0 and vm.wait_exit() == 0
    assert "kt5" not in ns.run("ip", "link").stdout  # ours: gone with the process
    vm2 = env.start("n", "--restore", path, prefix=ns.prefix)
    net = vm2.status()["nets"][0]
    assert net["tap"] == "kt5" and net["mac"] == "52:54:00:aa:bb:cc", net
    ns.address("kt5", HOST)
    pinged = ns.ping(GUEST, 5)
    assert pinged[1] == 5, pinged


def test_bad_net_options(env):
    ns = NetNS(env, "b")
    cases = [("bridge=nosuchbr0", "bridge nosuchbr0 does not exist"),
             ("tap=kt0,mac=01:00:00:00:00:01", "unicast"),
             ("tap=kt0,mac=zz", "unicast"),
             ("tap=waytoolongnameforatap0", "expected tap=NAME"),
             ("tap=kt0,bridge=br0", "one of them"),
             ("speed=fast", "expected tap=NAME")]
    for spec, needle in cases:
        p = ns.run(os.environ.get("KVMHOST", "kvmhost"), "run", "--console", "none",
                   "--net", spec, check=False)
        assert p.returncode == 8 and needle in p.stderr, (spec, p.returncode, p.stderr)
    # A name that is not a tap (a bridge): refused, saying so.
    ns.bridge("br9", "10.77.9.1/24")
    p = ns.run(os.environ.get("KVMHOST", "kvmhost"), "run", "--console", "none", "--net",
               "tap=br9", check=False)
    assert p.returncode == 8 and "br9" in p.stderr, p.stderr


def test_announce_after_restore_and_migration(env):
    ns = NetNS(env, "a")
    ns.bridge("br0", HOST)
    cap = ns.capture_announcements("br0")
    vm = net_vm(env, ns, "n", "bridge=br0,id=lan")
    pinged = ns.ping(GUEST, 3)
    assert pinged[1] == 3, pinged
    mac = vm.status()["nets"][0]["mac"]
    # Saved and restored: the MAC goes with it, a new tap joins the bridge.
    path = os.path.join(env.dir, "n.kvmh")
    assert vm.ctl("save", path).returncode == 0 and vm.wait_exit() == 0
    t0 = time.monotonic()
    vm2 = env.start("n", "--restore", path, prefix=ns.prefix)
    seen = announced_since(cap, t0, GUEST)
    assert seen and seen[1] == mac, (seen, cap.seen)
    pinged = ns.ping(GUEST, 5)
    assert pinged[1] == 5, pinged
    assert vm2.status()["nets"][0]["mac"] == mac
    # Migrated to another process on the same bridge: announced again.
    sock = os.path.join(env.dir, "m.sock")
    dst = env.start("n2", "--incoming", "unix:" + sock, wait=False, prefix=ns.prefix)
    wait_for(lambda: os.path.exists(sock), 10, what="the destination")
    t1 = time.monotonic()
    p = vm2.ctl("migrate", "unix:" + sock)
    assert p.returncode == 0, p.stderr
    assert vm2.wait_exit(20) == 0
    seen = announced_since(cap, t1, GUEST)
    assert seen and seen[1] == mac, (seen, cap.seen)
    dst.wait_ready(heartbeats=False)
    pinged = ns.ping(GUEST, 5)
    assert pinged[1] == 5, pinged
    assert dst.status()["guest_net"]["announced"] >= 1


def test_announce_after_host_sleep(env):
    """The real logind puts the host to sleep and wakes it: the guest's
    gratuitous ARP is on the bridge within 100 ms of logind's signal (times
    KVMHOST_TEST_SLOWDOWN in the test host, where ASan under TCG took 214)."""
    real = with_real_logind(env)
    ns = NetNS(env, "s")
    ns.bridge("br0", HOST)
    cap = ns.capture_announcements("br0")
    vm = net_vm(env, ns, "n", "bridge=br0")
    wait_for(lambda: any(i[:2] == ("sleep", "kvmhost") for i in real.inhibitors()), 10,
             what="its sleep inhibitor")
    pinged = ns.ping(GUEST, 5)
    assert pinged[1] == 5, pinged
    real.hold_jobs()
    real.busctl("call", "Suspend", "b", "false")
    assert real.expect_prepare()[:2] == ("PrepareForSleep", True)
    assert real.expect_start()[0] == "suspend.target"
    assert vm.status()["state"] == "host-sleep"
    time.sleep(0.5)
    assert announced_since(cap, 0, GUEST, timeout=0.1) is None  # none before the wake
    # The job ends: logind sends PrepareForSleep(false). Counted from here, so
    # the figure also holds logind's own part of the wake.
    woke = time.monotonic()
    real.hold_jobs(False)
    assert real.expect_prepare()[:2] == ("PrepareForSleep", False)
    seen = announced_since(cap, woke, GUEST)
    assert seen, cap.seen
    latency_ms = (seen[0] - woke) * 1e3
    assert latency_ms <= 100 * SLOWDOWN, latency_ms
    sent, got, _ = ns.ping(GUEST, 100)
    assert (sent, got) == (100, 100)
    assert vm.status()["nets"][0]["link"] == "up"


def test_two_vms_on_a_bridge(env):
    ns = NetNS(env, "br")
    ns.bridge("br0", HOST)
    a = env.start("a", "--net", "bridge=br0", "--guest-ip", "10.77.0.2", "--guest-ping",
                  "10.77.0.3", prefix=ns.prefix)
    b = env.start("b", "--net", "bridge=br0", "--guest-ip", "10.77.0.3", "--guest-ping",
                  "10.77.0.2", prefix=ns.prefix)
    wait_for(lambda: a.status()["guest_net"]["pongs"] >= 20 and
             b.status()["guest_net"]["pongs"] >= 20, 30, what="each guest to ping the other")
    assert a.status()["nets"][0]["mac"] != b.status()["nets"][0]["mac"]
    # And the host reaches both, over the same bridge.
    assert ns.ping("10.77.0.2", 5)[1] == 5 and ns.ping("10.77.0.3", 5)[1] == 5


def test_hostile_guest_on_the_net_device(env):
    """What the virtio-net fuzz target found, replayed by the guest itself
    against net 0 through KVM into the sandboxed VMM: it stays up or ends
    saying why, never by the sandbox or a signal."""
    ns = NetNS(env, "h")
    inputs = sorted(os.listdir(os.path.join(CORPUS, "virtio_net")))[::5]
    assert len(inputs) >= 15
    replay_inputs(env, "virtio_net", inputs, ("--net", "tap=kh{i}"), prefix=ns.prefix)


if __name__ == "__main__":
    main([test_ping_1000, test_link_down_and_up, test_restore_reopens_the_tap_by_name,
          test_bad_net_options,
          test_announce_after_restore_and_migration, test_announce_after_host_sleep,
          test_two_vms_on_a_bridge, test_hostile_guest_on_the_net_device])
