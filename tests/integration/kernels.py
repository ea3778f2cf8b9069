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
