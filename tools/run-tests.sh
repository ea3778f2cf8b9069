#!/usr/bin/env bash
# Runs every test: unit and integration, in the normal build and again in the
# ASan+UBSan build. Prints "N passed, N failed, N skipped" at the end.
#
#   tools/run-tests.sh [--testhost|--native] [meson test options]
#
# The suites that need KVM (meson suite "kvm") run natively where this
# machine has a /dev/kvm that can make a VM, and otherwise (or with
# --testhost) inside a throwaway test host with a real KVM (tools/testhost);
# everything else runs natively. --native runs everything here, skipping
# what needs KVM if there is none.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=auto
case ${1:-} in
--testhost) mode=testhost && shift ;;
--native) mode=native && shift ;;
esac
tools/setup.sh --asan || exit 1

if [[ $mode == auto ]]; then
	if tools/testhost --native-kvm; then mode=native; else mode=testhost; fi
fi
echo "run-tests: KVM suites run $([[ $mode == native ]] && echo natively || echo 'in the test host')"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23

passed=0 failed=0 skipped=0 rc=0
count() { # meson's JSON test log -> passed failed skipped
	python3 - "$1" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK": p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
}
run_suite() { # build logbase command...
	local b=$1 logbase=$2 log
	shift 2
	log="$b/meson-logs/$logbase.json"
	rm -f "$log"
	"$@" --logbase "$logbase" || rc=1
	if [[ -f $log ]]; then
		read -r p f s < <(count "$log")
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	else
		echo "run-tests: no test log from: $*"
		failed=$((failed + 1)) rc=1
	fi
}
for b in build build-asan; do
	echo "=== tests in $b"
	opts=(--print-errorlogs --num-processes 1)
	if [[ $mode == native ]]; then
		run_suite "$b" testlog meson test -C "$b" "${opts[@]}" "$@"
	else
		run_suite "$b" testlog meson test -C "$b" "${opts[@]}" --no-suite kvm "$@"
		echo "=== tests in $b that need KVM, in the test host"
		run_suite "$b" testlog-kvm tools/testhost --console "$b/meson-logs/testhost-console.log" \
			-- meson test -C "$b" "${opts[@]}" --no-rebuild --suite kvm "$@"
	fi
done
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit $rc
