#!/usr/bin/env bash
# Install every Debian package siltfs needs to build, test and benchmark.
# Idempotent: only installs what is missing, so it is cheap on a warm machine.
set -euo pipefail
pkgs=(
  build-essential clang pkg-config meson ninja-build
  libfuse3-dev fuse3 liburing-dev librocksdb-dev libzstd-dev libxxhash-dev
  libsodium-dev libinih-dev libcmocka-dev libmount-dev
  fio qemu-utils e2fsprogs util-linux kmod python3 jq gnuplot-nox
  qemu-system-x86 busybox-static
  sshfs openssh-server openssh-client libcap2-bin
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "siltfs: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  log=$(mktemp /tmp/siltfs-apt.XXXXXX)
  if ! { $sudo_cmd apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "siltfs: package installation failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
fi
# The kernel the guest test boots (Debian's cloud kernel, unpacked into a
# cache folder, not installed).
"$(dirname "$0")/guest-kernel.sh"
