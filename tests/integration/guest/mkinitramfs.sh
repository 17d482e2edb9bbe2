#!/usr/bin/env bash
# mkinitramfs.sh OUT GUESTIO MODULES: write to OUT a gzipped newc initramfs
# for the test guest: busybox (busybox-static), our /init, the static
# silt-guestio and the kernel modules listed, in load order, in
# MODULES/order (from scripts/guest-kernel.sh).
set -euo pipefail
out=$1 guestio=$2 mods=$3
here=$(cd "$(dirname "$0")" && pwd)
bb=$(command -v busybox) || { echo "mkinitramfs.sh: no busybox (package busybox-static)" >&2; exit 1; }
# a dynamically linked busybox would need its libraries in the image
if ldd "$bb" >/dev/null 2>&1; then echo "mkinitramfs.sh: $bb is not static (install busybox-static)" >&2; exit 1; fi
root=$(mktemp -d /tmp/siltfs-initramfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/modules"
cp "$bb" "$root/bin/busybox"
cp "$guestio" "$root/bin/silt-guestio"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
cp "$mods"/order "$mods"/*.ko "$root/modules/"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 > "$out"
