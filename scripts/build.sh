#!/usr/bin/env bash
# Configure (once) and compile siltfs into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized
meson compile -C build
