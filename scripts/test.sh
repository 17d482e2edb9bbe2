#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, run the whole suite.
#
#   1. gcc build (build/): unit, integration and stress tests
#   2. clang build (build-clang/), warnings as errors: the unit tests
#   3. AddressSanitizer + UBSan build (build-asan/): the unit and
#      integration tests once (not the stress ones, nor sync_schedule, a
#      measurement of the wire's timing that the sanitizers only slow
#      down); any sanitizer report, from a test program or from a daemon,
#      fails the run
#
# Benchmarks are not part of it (meson test -C build --suite bench runs
# them). Arguments go to the first meson test. SILT_QUICK=1 runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
meson test -C build --no-suite bench --print-errorlogs "$@"
[ -n "${SILT_QUICK:-}" ] && exit 0

echo "== clang, warnings as errors"
[ -f build-clang/build.ninja ] ||
	CC=clang meson setup build-clang --buildtype=debugoptimized -Dwerror=true >/dev/null
meson compile -C build-clang
meson test -C build-clang --suite unit --print-errorlogs
echo "== fuzzing the replication decoder (bounded)"
meson test -C build-clang --suite fuzz --print-errorlogs

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
[ -f build-asan/build.ninja ] ||
	meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
meson compile -C build-asan
logs="$PWD/build-asan/sanitizer-logs"
rm -rf "$logs" && mkdir -p "$logs"
# Daemons detach and their stderr goes nowhere: reports go to files.
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp"
# UBSan halts: combined with ASan it prints to stderr whatever log_path says,
# where a detached daemon's report would go unseen (lib.sh shows the
# foreground daemons' reports and fails their test)
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
export SILT_SANITIZED=1
meson test -C build-asan --suite unit --suite integration --no-suite stress --no-suite timing --print-errorlogs
# (a file with only LeakSanitizer's "suppressions used" summary is no report)
reports=$(grep -lE "ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:" "$logs"/* 2>/dev/null || true)
if [ -n "$reports" ]; then
	for f in $reports; do
		echo "---- $f"
		head -n 60 "$f"
	done
	echo "sanitizer reports above: failing" >&2
	exit 1
fi
echo "no sanitizer report"
