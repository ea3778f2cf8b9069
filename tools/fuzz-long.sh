#!/usr/bin/env bash
# The long fuzz runs (not in the test suite): every libFuzzer target for
# SECONDS (default 600), two at a time, from its seeds where it has them.
# Prints each target's executions, edges covered and crashes.
# usage: tools/fuzz-long.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
tools/setup.sh --asan >/dev/null || exit 1
corpus=fuzz/corpus
protocol_seeds=$(ls "$corpus"/protocol/*.json | paste -sd, -)
declare -A seeds=([fuzz_snapshot]="-seed_inputs=$corpus/snapshot-1vcpu.bin"
	[fuzz_migration]="-seed_inputs=$corpus/migration-1vcpu.bin"
	[fuzz_protocol]="-seed_inputs=$protocol_seeds")
out=$(mktemp -d)
run() {
	local t=$1 dirs=()
	mkdir -p "$out/$t.crashes"
	# A committed corpus is copied: libFuzzer writes what it finds into it.
	if [[ -d $corpus/${t#fuzz_} ]]; then
		cp -r "$corpus/${t#fuzz_}" "$out/$t.corpus"
		dirs=("$out/$t.corpus")
	fi
	build-asan/fuzz/"$t" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$out/$t.crashes/" ${seeds[$t]:-} "${dirs[@]}" >"$out/$t.log" 2>&1
	echo $? >"$out/$t.rc"
}
targets=(fuzz_virtio_blk fuzz_protocol fuzz_linux_loader fuzz_snapshot fuzz_migration
	fuzz_virtio_net fuzz_device_state)
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	run "${targets[i]}" &
	[[ -n ${targets[i + 1]:-} ]] && run "${targets[i + 1]}" &
	wait
done
status=0
for t in "${targets[@]}"; do
	execs=$(grep -o 'number_of_executed_units: [0-9]*' "$out/$t.log" | grep -o '[0-9]*$')
	edges=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1 | grep -o '[0-9]*$')
	crashes=$(find "$out/$t.crashes" -type f | wc -l)
	rc=$(cat "$out/$t.rc")
	echo "$t: ${secs} s, ${execs:-?} executions, ${edges:-?} edges, $crashes crashes (exit $rc)"
	((crashes || rc)) && status=1
done
echo "logs and any crashing inputs: $out"
exit $status
