#!/bin/sh
# bench_core for a commit REV and for the working tree, side by side in one
# test host (or natively where /dev/kvm works), alternating RUNS times.
# Both builds live outside the checkout: in the test host the checkout is
# 9p with cache=none, which alone makes a binary there start ~100 ms slower
# (DEVELOPERS.md), so a binary in it and one outside cannot be compared.
#
# usage: bench/before_after.sh REV [RUNS] [PART]   (PART: pio|request|pause|start)
set -eu
rev=${1:?usage: bench/before_after.sh REV [RUNS] [PART]}
runs=${2:-2}
part=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
top=${KVMHOST_BENCH_DIR:-/var/tmp/kvmhost-before-after}
short=$(git -C "$src" rev-parse --short "$rev")
mkdir -p "$top"
if [ ! -d "$top/$short" ]; then
	git -C "$src" worktree add --detach -f "$top/$short" "$rev" >/dev/null
	meson setup "$top/$short/build" "$top/$short" >/dev/null
fi
[ -d "$top/now" ] || meson setup "$top/now" "$src" >/dev/null
ninja -C "$top/$short/build" kvmhost bench/bench_core >/dev/null
ninja -C "$top/now" kvmhost bench/bench_core >/dev/null
script="$top/run.sh"
{
	echo "#!/bin/sh"
	echo "for i in \$(seq $runs); do"
	echo "  echo \"=== $short (run \$i)\"; $top/$short/build/bench/bench_core $top/$short/build/kvmhost $part"
	echo "  echo \"=== working tree (run \$i)\"; $top/now/bench/bench_core $top/now/kvmhost $part"
	echo "done"
} >"$script"
chmod +x "$script"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	exec "$script"
fi
exec "$src/tools/testhost" -- "$script"
