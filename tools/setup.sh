#!/usr/bin/env bash
# Installs what kvmhost needs from Debian (only what is missing) and builds it
# into build/ (and, with --asan, the sanitizer build into build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(gcc binutils make meson ninja-build pkg-config python3 libsystemd-dev libjson-c-dev
	libcmocka-dev clang libclang-rt-14-dev util-linux dbus dbus-daemon zlib1g-dev liblzma-dev
	libzstd-dev liblz4-dev libbz2-dev busybox-static cpio e2fsprogs clang-format strace scdoc
	systemd upower umockdev gir1.2-umockdev-1.0 python3-gi libseccomp-dev iputils-ping
	iproute2 qemu-system-x86 linux-image-amd64 acpica-tools)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Quiet when all is well; the whole log when a step fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() {
	if ! "$@" >"$log" 2>&1; then
		echo "setup: failed: $*" >&2
		cat "$log" >&2
		exit 1
	fi
}
# A half-made build directory (an earlier failed setup) is started afresh.
[[ -f build/build.ninja ]] || { rm -rf build && step meson setup build; }
step ninja -C build
if [[ ${1:-} == --asan ]]; then
	# clang for the sanitizer build: it is also what the fuzzers need.
	[[ -f build-asan/build.ninja ]] || { rm -rf build-asan && step env CC=clang meson setup \
		build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; }
	step ninja -C build-asan
fi
echo "setup: built $(pwd)/build/kvmhost"
