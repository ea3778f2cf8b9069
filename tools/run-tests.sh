#!/usr/bin/env bash
# Runs every test: unit and integration, in the normal build and again in the
# ASan+UBSan build. Prints "N passed, N failed, N skipped" at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --asan || exit 1

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23

passed=0 failed=0 skipped=0 rc=0
for b in build build-asan; do
	echo "=== tests in $b"
	meson test -C "$b" --print-errorlogs --num-processes 1 "$@"
	r=$?
	((r)) && rc=1
	log="$b/meson-logs/testlog.json"
	if [[ -f $log ]]; then
		read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK": p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	fi
done
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit $rc
