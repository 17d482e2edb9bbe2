#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, run the whole suite.
# Benchmarks are not part of it (meson test --suite bench runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
meson test -C build --no-suite bench --print-errorlogs "$@"
