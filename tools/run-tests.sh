#!/usr/bin/env bash
# Runs every test: unit and integration, in the normal build and again in the
# ASan+UBSan build. Prints "N passed, N failed, N skipped" at the end.
#
#   tools/run-tests.sh [--testhost|--native] [meson test options] [test names]
#
# The suites that need KVM (meson suite "kvm") run natively where this
# machine has a /dev/kvm that can make a VM, and otherwise (or with
# --testhost) inside throwaway test hosts with a real KVM (tools/testhost);
# everything else runs natively. --native runs everything here, skipping
# what needs KVM if there is none.
#
# A test host emulates its CPUs on one thread of this machine, so several
# run side by side (KVMHOST_TESTHOSTS, default: one per core that memory
# allows), taking (build, test) jobs from one queue, slowest first.
#
# Linux stalls in a test host whose single TCG thread takes two or more CPUs
# in turn (DEVELOPERS.md), so the tests that boot Linux to user space (meson
# suite "linux-guest") get a test host of their own with one CPU, first; the
# others, test hosts with two (the hotplug tests need them).
set -uo pipefail
cd "$(dirname "$0")/.."

# Inside a test host: take jobs of its kind until there are none. A job is a
# file "queue/NN KIND build test"; whoever renames it first runs it. Its
# output goes to done/, whole, for the caller to print.
if [[ ${1:-} == --worker ]]; then
	dir=$2 host=$3 kind=$4
	shift 4
	while :; do
		job=
		for f in "$dir"/queue/*" $kind "*; do
			[[ -e $f ]] && mv "$f" "$dir/taken/" 2>/dev/null && job=${f##*/} && break
		done
		[[ -n $job ]] || exit 0
		read -r _ _ b name <<<"$job"
		{
			echo "=== $name in $b (test host $host, $(date +%T))"
			meson test -C "$b" --no-rebuild --print-errorlogs --num-processes 1 --suite kvm \
				--logbase "testlog-kvm-$name" "$@" "$name" 2>&1
		} >"$dir/log.$host"
		mv "$dir/log.$host" "$dir/done/$job"
	done
fi

mode=auto
while :; do
	case ${1:-} in
	--testhost) mode=testhost && shift ;;
	--native) mode=native && shift ;;
	*) break ;;
	esac
done
options=() names=()
for a in "$@"; do [[ $a == -* ]] && options+=("$a") || names+=("$a"); done
tools/setup.sh --asan || exit 1

# The Linux tests boot Debian's cloud kernel, fetched once; a test host
# cannot fetch it (no network inside).
PYTHONPATH=tests/integration python3 -c 'import kernels; kernels.debian_kernel()' >/dev/null 2>&1 ||
	echo "run-tests: could not fetch Debian's cloud kernel: the tests that boot it will skip"

if [[ $mode == auto ]]; then
	if tools/testhost --native-kvm; then mode=native; else mode=testhost; fi
fi
echo "run-tests: KVM suites run $([[ $mode == native ]] && echo natively || echo 'in test hosts')"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23

passed=0 failed=0 skipped=0 rc=0
count() { # meson's JSON test logs -> passed failed skipped
	python3 - "$@" <<'PY'
import json, sys
p = f = s = 0
for name in sys.argv[1:]:
    for line in open(name):
        r = json.loads(line)["result"]
        if r == "OK": p += 1
        elif r == "SKIP": s += 1
        else: f += 1
print(p, f, s)
PY
}
add_counts() { # log...
	local p f s
	read -r p f s < <(count "$@")
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}
pids=()
# Without the KVM suites, the two builds side by side: each run is mostly one
# thread (a fuzzer, a test host). With them (native KVM), one after the
# other: the hotplug tests take this machine's CPUs offline.
suites=()
[[ $mode == native ]] || suites=(--no-suite kvm)
for b in build build-asan; do
	rm -f "$b/meson-logs/testlog.json"
	meson test -C "$b" --print-errorlogs --num-processes 1 "${suites[@]}" "${options[@]}" \
		"${names[@]}" --logbase testlog >"$b/meson-logs/run-tests.out" 2>&1 &
	if [[ $mode == native ]]; then wait $! || rc=1; else pids+=($!); fi
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for b in build build-asan; do
	echo "=== tests in $b"
	cat "$b/meson-logs/run-tests.out"
	if [[ -f $b/meson-logs/testlog.json ]]; then
		add_counts "$b/meson-logs/testlog.json"
	elif ! grep -q "No suitable tests defined" "$b/meson-logs/run-tests.out"; then
		echo "run-tests: no test log from $b" && failed=$((failed + 1)) rc=1
	fi
done

weight() { # a rough guess of a job's length, for the order of the queue
	local w
	case $2 in
	robust) w=200 ;; snapshot | migrate | shutdown) w=100 ;; net | linux) w=80 ;;
	sleep | boot | sandbox) w=40 ;; *) w=20 ;;
	esac
	[[ $1 == build-asan ]] && w=$((w * 5 / 2))
	echo "$w"
}
if [[ $mode == testhost ]]; then
	queue=$(mktemp -d build/.kvm-queue.XXXXXX)
	mkdir "$queue/queue" "$queue/taken" "$queue/done" "$queue/printed"
	jobs=()
	declare -A linux
	for b in build build-asan; do
		linux[$b]=$(meson test -C "$b" --no-rebuild --list --suite linux-guest 2>/dev/null |
			sed -n 's|.* / ||p' | sort -u | tr '\n' ' ')
		rm -f "$b"/meson-logs/testlog-kvm*.json
		for name in $(meson test -C "$b" --no-rebuild --list --suite kvm "${names[@]}" 2>/dev/null |
			sed -n 's|.* / ||p' | sort -u); do
			jobs+=("$(weight "$b" "$name") $b $name")
		done
	done
	i=100
	while read -r _ b name; do
		kind=single
		[[ " ${linux[$b]} " == *" $name "* ]] && kind=onecpu
		: >"$queue/queue/$i $kind $b $name" && i=$((i + 1))
	done < <(printf '%s\n' "${jobs[@]}" | sort -rn)
	mem=$(awk '/MemTotal/ { print int($2 / 1048576) }' /proc/meminfo)
	hosts=${KVMHOST_TESTHOSTS:-$(((mem - 4) / 7 < $(nproc) ? (mem - 4) / 7 : $(nproc)))}
	((hosts >= 1)) || hosts=1
	echo "=== ${#jobs[@]} KVM test jobs in $hosts test hosts"
	print_done() { # each finished job's output, whole
		local f
		for f in "$queue"/done/*; do
			[[ -e $f ]] && cat "$f" && mv "$f" "$queue/printed/"
		done
	}
	testhost() { # number kind
		tools/testhost --cpus "$([[ $2 == onecpu ]] && echo 1 || echo 2)" \
			--console "build/meson-logs/testhost-console-$1.log" -- \
			tools/run-tests.sh --worker "$queue" "$1" "$2" "${options[@]}" \
			>"build/meson-logs/testhost-$1.out" 2>&1 &
		pids+=($!) kinds+=("$2")
	}
	running() { # [kind]: test hosts still running (of that kind)
		local h n=0
		for ((h = 0; h < ${#pids[@]}; h++)); do
			[[ -z ${1:-} || ${kinds[h]} == "$1" ]] && kill -0 "${pids[h]}" 2>/dev/null && n=$((n + 1))
		done
		echo "$n"
	}
	waiting() { ls "$queue/queue" | grep -c " $1 "; }
	start_one() { # a test host for jobs that wait and have none, while there is room
		(($(running) < hosts && ${#pids[@]} < 2 * hosts + 1)) || return 1
		if (($(waiting onecpu) > 0 && $(running onecpu) == 0)); then
			echo "=== $(waiting onecpu) Linux guest jobs in a test host with one CPU ($((${#pids[@]} + 1)))"
			testhost $((${#pids[@]} + 1)) onecpu
		elif (($(waiting single) > 0)); then
			testhost $((${#pids[@]} + 1)) single
		else
			return 1
		fi
	}
	pids=() kinds=()
	while :; do
		while start_one; do :; done
		print_done
		[[ -n $(jobs -r) ]] || break
		sleep 5
	done
	print_done
	for ((h = 1; h <= ${#pids[@]}; h++)); do
		wait "${pids[h - 1]}" || {
			rc=1 && echo "=== test host $h failed:" && tail -c 4000 "build/meson-logs/testhost-$h.out"
		}
	done
	left=$(ls "$queue/queue")
	[[ -z $left ]] || { echo "run-tests: jobs never run: $left" && failed=$((failed + 1)) rc=1; }
	for job in "$queue"/taken/*; do
		read -r _ _ b name <<<"${job##*/}"
		if [[ -f $b/meson-logs/testlog-kvm-$name.json ]]; then
			add_counts "$b/meson-logs/testlog-kvm-$name.json"
		else
			echo "run-tests: no test log from $name in $b" && failed=$((failed + 1)) rc=1
		fi
	done
	rm -rf "$queue"
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
((failed == 0)) || rc=1
exit $rc
