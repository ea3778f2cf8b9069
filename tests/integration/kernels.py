"""Kernels for tests: tiny synthetic ELF "vmlinux" images (a few instructions
at the 64-bit entry, no interrupts), and Debian's real cloud kernel, fetched
with apt-get download into a cache outside the repository."""
import glob
import os
import shutil
import struct
import subprocess

from kvmtest import skip

CACHE = os.environ.get("KVMHOST_KERNEL_CACHE", "/var/tmp/kvmhost-test-kernel")


def elf_kernel(path, code):
    """An x86-64 ELF whose one PT_LOAD (at 16 MiB) is `code`, entered at its start."""
    paddr = 0x1000000
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                       paddr, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 120, paddr, paddr, len(code), len(code) + 4096, 4096)
    with open(path, "wb") as f:
        f.write(ehdr + phdr + code)
    return path


def out_str(text):
    """mov dx, 0x3f8; for each byte: mov al, b; out dx, al."""
    code = b"\x66\xba\xf8\x03"
    for ch in text.encode():
        code += bytes([0xb0, ch, 0xee])
    return code


HALT = b"\xfa\xf4\xeb\xfc"  # cli; hlt; jmp back to hlt
I8042_RESET = b"\xb0\xfe\xe6\x64" + HALT  # mov al, 0xfe; out 0x64, al
CF9_RESET = b"\x66\xba\xf9\x0c\xb0\x06\xee" + HALT  # mov dx, 0xcf9; mov al, 6; out dx, al
# What Linux's ACPI poweroff does: SLP_TYP 5 | SLP_EN into PM1a_CNT (port 0x604).
ACPI_POWEROFF = b"\x66\xba\x04\x06\x66\xb8\x00\x34\x66\xef" + HALT


def _sipi_kernel():
    """The BSP copies a real-mode trampoline to 0x8000 and starts CPU 1 with
    INIT + SIPI (vector 0x08); the AP prints "AP up" and halts."""
    tramp = bytes.fromhex("baf803")  # mov dx, 0x3f8 (16-bit)
    for ch in b"AP up\n":
        tramp += bytes([0xb0, ch, 0xee])  # mov al, ch; out dx, al
    tramp += bytes.fromhex("faf4ebfd")  # cli; hlt; jmp back to hlt
    tramp = tramp.ljust((len(tramp) + 7) // 8 * 8, b"\x90")
    code = b""
    for i in range(0, len(tramp), 8):  # mov rax, imm64; mov [0x8000+i], rax
        code += b"\x48\xb8" + tramp[i:i + 8]
        code += b"\x48\x89\x04\x25" + struct.pack("<I", 0x8000 + i)
    code += b"\x48\xbb" + struct.pack("<Q", 0xfee00000)  # mov rbx, LAPIC base

    def lapic(reg, val):  # mov dword [rbx+reg], val
        return b"\xc7\x83" + struct.pack("<II", reg, val)

    code += out_str("BSP sends SIPI\n")  # before: the two CPUs share one UART
    code += lapic(0xf0, 0x1ff)  # software-enable the LAPIC
    code += lapic(0x310, 1 << 24) + lapic(0x300, 0x4500)  # INIT to APIC id 1
    code += lapic(0x310, 1 << 24) + lapic(0x300, 0x4608)  # SIPI, vector 0x08
    return code + HALT


def debian_kernel():
    """Path of Debian's current cloud kernel (a bzImage); downloads it once."""
    found = glob.glob(os.path.join(CACHE, "boot", "vmlinuz-*"))
    if found:
        return found[0]
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        skip("apt-get/dpkg-deb not available to fetch a Debian kernel")
    os.makedirs(CACHE, exist_ok=True)
    meta = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"],
                          capture_output=True, text=True)
    pkg = next((l.split()[-1] for l in meta.stdout.splitlines() if "Depends:" in l
                and "linux-image-" in l), None)
    if not pkg:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        meta = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"],
                              capture_output=True, text=True)
        pkg = next((l.split()[-1] for l in meta.stdout.splitlines() if "Depends:" in l
                    and "linux-image-" in l), None)
    if not pkg:
        skip("no linux-image-cloud-amd64 in the apt lists")
    r = subprocess.run(["apt-get", "download", pkg], cwd=CACHE, capture_output=True, text=True)
    debs = glob.glob(os.path.join(CACHE, "*.deb"))
    if r.returncode != 0 or not debs:
        skip(f"could not download {pkg}: {r.stderr.strip()[-200:]}")
    subprocess.run(["dpkg-deb", "-x", debs[0], CACHE], check=True)
    for d in debs:
        os.unlink(d)
    return glob.glob(os.path.join(CACHE, "boot", "vmlinuz-*"))[0]


SIPI = _sipi_kernel()


INIT_MARKER = "KVMHOST-INIT-MARKER"


def debian_module(name):
    """Path of a module of the cached Debian kernel (e.g. "button.ko"), or None."""
    found = glob.glob(os.path.join(CACHE, "lib", "modules", "*", "kernel", "**", name),
                      recursive=True)
    return found[0] if found else None


def debian_modules(names):
    """Paths of the cached Debian kernel's modules `names` (without .ko) and
    of all they depend on, each after its dependencies: an insmod order."""
    order = []

    def add(name):
        path = debian_module(name + ".ko")
        if not path:
            raise AssertionError(f"the Debian kernel has no module {name}")
        if path in order:
            return
        deps = subprocess.run(["modinfo", "-F", "depends", path], capture_output=True,
                              text=True, check=True).stdout.strip()
        for dep in filter(None, deps.split(",")):
            add(dep)
        order.append(path)
    for n in names:
        add(n)
    return order


def busybox_initramfs(workdir, init_script, extra=(), modules=()):
    """A newc cpio with busybox (Debian's busybox-static), `init_script` as
    /init, and each path in `extra` at the root. `modules` (paths, in order)
    go to /modules and are loaded before the script runs."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        skip("busybox-static is not installed")
    root = os.path.join(workdir, "initramfs")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    os.makedirs(os.path.join(root, "modules"), exist_ok=True)
    load = ""
    for i, path in enumerate(modules):
        name = f"{i:02d}-{os.path.basename(path)}"
        shutil.copy(path, os.path.join(root, "modules", name))
        load += f"insmod /modules/{name}\n"
    with open(os.path.join(root, "init"), "w") as f:
        f.write("#!/bin/busybox sh\n/bin/busybox --install -s /bin\n" + load + init_script)
    os.chmod(os.path.join(root, "init"), 0o755)
    for path in extra:
        shutil.copy(path, root)
    cpio = os.path.join(workdir, "initramfs.cpio")
    subprocess.run(f"cd {root} && find . | cpio -o -H newc > {cpio}", shell=True, check=True,
                   capture_output=True)
    return cpio


def ring0_ns_per_iteration(env):
    """How long one iteration of a pure ring-0 loop takes in a guest here:
    ~1 ns where ring 0 runs natively, ~1000 where it is emulated."""
    vm = env.start("ring0-probe", "--cpus", "1", "--guest-mode", "ring0-bench", "--console",
                   "none", heartbeats=False)
    from kvmtest import wait_for
    ns = wait_for(lambda: vm.status()["guest_bench_ns"], 60, what="the ring-0 probe")
    vm.kill()
    return ns / 100000
