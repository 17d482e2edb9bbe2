#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time (SILT_FUZZ_SECONDS, default 30)
# over a corpus kept in the build tree; a crash fails the test and leaves
# its input (crash-*) in the corpus directory.
set -euo pipefail
target=$1 corpus=$2
mkdir -p "$corpus"
secs=${SILT_FUZZ_SECONDS:-30}
cd "$corpus"
nice -n 10 "$target" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
	-print_final_stats=1 "$corpus" 2>&1 | tail -n 25
rc=${PIPESTATUS[0]}
echo "fuzz: $(basename "$target") ran ${secs}s, exit $rc"
[ "$rc" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit "$rc"
