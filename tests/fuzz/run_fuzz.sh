#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time (SILT_FUZZ_SECONDS, default 30)
# over a corpus kept in the build tree; a crash fails the test and leaves
# its input (crash-*) in the corpus directory.
set -euo pipefail
target=$1 corpus=$2 seeds=${3:-}
mkdir -p "$corpus"
# the seeds join the corpus (libFuzzer writes new inputs to the first directory)
if [ -n "$seeds" ]; then cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true; fi
secs=${SILT_FUZZ_SECONDS:-30}
cd "$corpus"
nice -n 10 "$target" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
	-print_final_stats=1 "$corpus" 2>&1 | tail -n 25
rc=${PIPESTATUS[0]}
echo "fuzz: $(basename "$target") ran ${secs}s, exit $rc"
[ "$rc" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit "$rc"
